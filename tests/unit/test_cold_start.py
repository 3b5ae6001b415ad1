"""What a Lambda cold start imports and what the layer ships (issue 7's budgets).

Times are measured by ``bench/footprint.py``; these tests keep the design that meets them:
``import app`` loads neither the X-Ray SDK, nor Jinja, nor pydantic-settings, and builds no
API model's validator; the layer (``requirements.txt``) does not bring botocore, which the
Lambda runtime provides.
"""

from __future__ import annotations

import os
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.fresh_python import ROOT, probe

_COLD_IMPORT = """
import json, sys
import app
from chalicelib.api.models import ApiModel
from chalicelib.api.routing import OPERATIONS

declared = {m for op in OPERATIONS for m in (op.body, op.query, op.response) if m is not None}
api_models = [m for m in declared if issubclass(m, ApiModel)]
built = sorted(m.__name__ for m in api_models if m.__pydantic_complete__)
print(json.dumps({"modules": sorted(sys.modules), "api_models": len(api_models), "built": built}))
"""
RUNTIME_PROVIDES = {"boto3", "botocore", "s3transfer"}


def cold_import() -> dict[str, Any]:
    """What a fresh interpreter holds right after ``import app``, as in a Lambda cold start."""
    env = {**os.environ, "HERALD_STAGE": "dev", "AWS_DEFAULT_REGION": "us-east-1"}
    return probe(_COLD_IMPORT, env)


def pinned(requirements: Path) -> dict[str, str]:
    """``name == version`` lines of a requirements file, by canonical name."""
    pins = {}
    for line in requirements.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-r")):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def needed_by(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, as installed here."""
    needed: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return needed


def test_import_app_loads_no_tracing_sdk_template_engine_or_settings_library() -> None:
    modules = {name.split(".")[0] for name in cold_import()["modules"]}

    assert modules & {"aws_xray_sdk", "jinja2", "pydantic_settings", "dotenv"} == set()
    assert "app" in modules


def test_import_app_builds_no_api_model_a_route_declares() -> None:
    imported = cold_import()

    assert imported["api_models"] > 50
    assert imported["built"] == []


def test_the_layer_requires_nothing_the_lambda_runtime_provides() -> None:
    shipped = pinned(ROOT / "requirements.txt")

    assert needed_by(set(shipped)) & RUNTIME_PROVIDES == set()
    assert "aws-xray-sdk" not in shipped


def test_every_installed_requirement_is_pinned_at_the_installed_version() -> None:
    # A fresh `make venv` installs exactly these versions, nothing resolved on the day.
    pins = pinned(ROOT / "requirements.txt") | pinned(ROOT / "requirements-dev.txt")
    installers = {"pip", "setuptools", "wheel"}  # chalice's, provided by the venv itself

    assert needed_by(set(pins)) - installers == set(pins)
    assert {name: distribution(name).version for name in pins} == pins
