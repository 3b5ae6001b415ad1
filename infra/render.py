"""Render Herald's CloudFormation stack into ``infra/out/`` and check it with cfn-lint.

    python -m infra.render [--stage dev] [--out infra/out] [--region us-east-1] [--no-lint]

Steps: build the merge template from ``herald_resources(Settings(stage=...))``; run
``chalice package --merge-template``, which zips the app code (``deployment.zip``) and the
pip-installed requirements.txt as a layer (``layer-deployment.zip``), and writes ``sam.json``;
add to both zips the bytecode of every module a cold start imports (``infra.bytecode``);
then break the one dependency cycle chalice's output has once functions know the API's URL
(see ``infra.gateway``). ``sam.json`` and the zips beside it are what ``aws cloudformation
package`` and ``deploy`` take (docs/deploy.md). Needs no AWS credentials; needs PyPI (or a
mirror) unless chalice's cache in ``.chalice/deployments/`` holds this requirements.txt's layer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cfnlint.api import ManualArgs, Match, lint_file  # type: ignore[import-untyped]
from chalice.cli.factory import CLIFactory
from chalice.constants import MISSING_DEPENDENCIES_TEMPLATE

from chalicelib.resources import herald_resources
from chalicelib.settings import Settings
from infra.bytecode import PackagedAppError, add_cold_start_bytecode
from infra.gateway import detach_api_integrations
from infra.naming import SETTINGS_ENV_PREFIX, Stack, setting_variable
from infra.template import merge_template

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "infra" / "out"
TEMPLATE_FILE = "sam.json"  # the name chalice gives the CloudFormation (SAM) template
MERGE_FILE = "merge-template.json"
_CHALICE = "import sys; from chalice.cli import main; sys.exit(main())"
# chalice only warns when it finds no Lambda-compatible wheel, and packages on without it.
_MISSING_DEPENDENCIES = MISSING_DEPENDENCIES_TEMPLATE.split("%s")[0].strip()


class RenderError(RuntimeError):
    """``chalice package`` failed; the message carries its output."""


def stack_for(stage: str) -> Stack:
    """The stack for ``stage``, with the API Gateway stage ``chalice package`` will give it."""
    settings = Settings(stage=stage)
    chalice_config = CLIFactory(project_dir=str(ROOT)).create_config_obj(stage)
    return Stack(settings, herald_resources(settings), chalice_config.api_gateway_stage)


def render(stage: str = "dev", out: Path = DEFAULT_OUT, region: str | None = None) -> Path:
    """Write the deployable template and its code package to ``out``; returns the template."""
    stack = stack_for(stage)
    region = region or stack.settings.region
    out.mkdir(parents=True, exist_ok=True)
    merge_path = out / MERGE_FILE
    merge_path.write_text(json.dumps(merge_template(stack), indent=2) + "\n")
    _chalice_package(stack, merge_path, out, region)
    add_cold_start_bytecode(out, stack.settings.stage, region)
    template_path = out / TEMPLATE_FILE
    template = json.loads(template_path.read_text())
    detach_api_integrations(template, stack)
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    return template_path


def _chalice_package(stack: Stack, merge_path: Path, out: Path, region: str) -> None:
    # chalice imports app.py, which names its queues from the environment's settings: give it
    # this stage and nothing else of the caller's HERALD_* (an endpoint, another stage).
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_ENV_PREFIX)}
    env[setting_variable("stage")] = stack.settings.stage
    env["AWS_DEFAULT_REGION"] = region
    command = [
        *(sys.executable, "-c", _CHALICE),
        *("--project-dir", str(ROOT), "package", "--stage", stack.settings.stage),
        *("--merge-template", str(merge_path), str(out)),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise RenderError(f"chalice package failed:\n{result.stdout}{result.stderr}")
    if _MISSING_DEPENDENCIES in result.stdout:
        raise RenderError(
            f"{result.stdout}\nThe layer lacks these packages; once fixed, delete "
            ".chalice/deployments/managed-layer-*.zip, which chalice would otherwise reuse."
        )


def lint(template: Path, region: str) -> list[Match]:
    """cfn-lint's findings (errors, warnings and informational) for ``template``."""
    return list(lint_file(template, config=ManualArgs(regions=[region])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.render", description=__doc__)
    parser.add_argument("--stage", default="dev", help="Herald stage (default: dev)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--region", default=None, help="region to lint for (HERALD_REGION)")
    parser.add_argument("--no-lint", action="store_true", help="skip cfn-lint")
    args = parser.parse_args(argv)
    region = args.region or Settings(stage=args.stage).region
    try:
        template = render(args.stage, args.out, region)
    except (RenderError, PackagedAppError) as error:
        sys.stderr.write(f"{error}\n")
        return 1
    packages = ", ".join(sorted(p.name for p in template.parent.glob("*.zip")))
    sys.stdout.write(f"wrote {template} and {packages}\n")
    if args.no_lint:
        return 0
    findings = lint(template, region)
    for finding in findings:
        sys.stdout.write(f"{finding}\n")
    errors = [f for f in findings if f.rule.id.startswith("E")]
    sys.stdout.write(f"cfn-lint: {len(errors)} errors, {len(findings) - len(errors)} other\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
