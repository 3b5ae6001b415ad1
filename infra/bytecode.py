"""Ship the bytecode of every module a cold start imports inside the package zips.

``chalice package`` zips sources only, and Lambda unpacks the function and its layers
read-only (``/var/task``, ``/opt``), so Python cannot cache what it compiles: without
bytecode in the zips every cold start compiles each module it imports, Herald's and its
libraries' alike, which took longer than the imports themselves. ``add_cold_start_bytecode``
unpacks both zips, imports ``app`` from them in a fresh interpreter (boto3 and botocore come
from this environment, as they come from the Lambda runtime), then runs every import that
Herald's loaded modules make inside a function (the imports deferred to first use, such as
Jinja's), and adds a ``__pycache__`` entry for every module file all that loaded. Only
those: compiling the whole layer would add about 4 MB for modules no handler reads.

The ``.pyc`` files are unchecked-hash ones (PEP 552): Python uses them without comparing the
source's time or size, which a zip does not keep exactly. Tracebacks name the files where
Lambda puts them.
"""

from __future__ import annotations

import ast
import json
import os
import py_compile
import subprocess
import sys
import tempfile
import zipfile
from importlib.util import cache_from_source
from pathlib import Path

from infra.naming import SETTINGS_ENV_PREFIX, setting_variable

APP_ZIP = "deployment.zip"
LAYER_ZIP = "layer-deployment.zip"
# Where Lambda unpacks each zip.
MOUNTS = {APP_ZIP: "/var/task", LAYER_ZIP: "/opt"}
# chalice builds the layer for this interpreter's version, so its bytecode is this one's.
LAYER_SITE_PACKAGES = "python/lib/python{}.{}/site-packages".format(*sys.version_info[:2])
# argv: the app's root, the layer's site-packages, a JSON file of ``deferred_imports``.
_LIST_IMPORTED = """
import json, sys
app_root, site_packages, deferred_file = sys.argv[1:]
deferred = json.load(open(deferred_file))
sys.path[:0] = [app_root, site_packages]
import app
if not app.__file__.startswith(app_root):
    raise SystemExit(f"imported {app.__file__}, not the packaged app")

def loaded():
    files = {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
    return {f for f in files if f.endswith(".py")}

scanned = set()
while unscanned := (loaded() & deferred.keys()) - scanned:
    for path in sorted(unscanned):
        for statement in deferred[path]:
            exec(statement, {})
    scanned |= unscanned
print(json.dumps(sorted(loaded())))
"""


class PackagedAppError(RuntimeError):
    """``import app`` from the package failed (a dependency missing from the layer, say);
    the message carries the traceback."""


def add_cold_start_bytecode(out: Path, stage: str, region: str) -> None:
    """Add to the zips in ``out`` the bytecode of what ``import app`` and its deferred imports
    load."""
    with tempfile.TemporaryDirectory() as scratch:
        roots = {name: Path(scratch, name.removesuffix(".zip")) for name in MOUNTS}
        for name, root in roots.items():
            with zipfile.ZipFile(out / name) as archive:
                archive.extractall(root)
        site_packages = roots[LAYER_ZIP] / LAYER_SITE_PACKAGES
        imported = _imported_files(roots[APP_ZIP], site_packages, stage, region)
        for name, root in roots.items():
            sources = [path.relative_to(root) for path in imported if path.is_relative_to(root)]
            with zipfile.ZipFile(out / name, "a", zipfile.ZIP_DEFLATED) as archive:
                for source in sources:
                    compiled = Path(cache_from_source(str(source)))
                    py_compile.compile(
                        str(root / source),
                        cfile=str(root / compiled),
                        dfile=f"{MOUNTS[name]}/{source.as_posix()}",
                        doraise=True,
                        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                    )
                    archive.write(root / compiled, compiled.as_posix())


def _imported_files(app_root: Path, site_packages: Path, stage: str, region: str) -> list[Path]:
    """The ``.py`` files a fresh interpreter loads to import ``app`` from the unpacked zips and
    to run the imports its modules defer to first use."""
    # As in the function: this stage's settings only, nothing of the caller's HERALD_*.
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_ENV_PREFIX)}
    env[setting_variable("stage")] = stage
    env["AWS_DEFAULT_REGION"] = region
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)  # app.py imports every function's modules
    with tempfile.NamedTemporaryFile("w", suffix=".json") as deferred:
        json.dump(deferred_imports(app_root), deferred)
        deferred.flush()
        command = [sys.executable, "-I", "-B", "-c", _LIST_IMPORTED]
        command += [str(app_root), str(site_packages), deferred.name]
        result = subprocess.run(  # noqa: S603
            command, cwd=app_root, env=env, capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise PackagedAppError(f"importing app from the package failed:\n{result.stderr}")
    return [Path(path) for path in json.loads(result.stdout.strip().splitlines()[-1])]


def deferred_imports(app_root: Path) -> dict[str, list[str]]:
    """Per Herald source file under ``app_root``: the absolute imports its functions make
    (what it defers to first use), as statements to run once the file is loaded."""
    found: dict[str, list[str]] = {}
    for path in sorted(app_root.rglob("*.py")):
        statements = [
            ast.unparse(node)
            for function in ast.walk(ast.parse(path.read_text()))
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not node.level)
        ]
        if statements:
            found[str(path)] = statements
    return found
