"""What a Lambda cold start and a deployment pay: import time, resident memory, package size.

``cold_start()`` imports ``app`` in fresh interpreters from the package, as each Lambda
function's first invocation of an execution environment does: with
``AWS_LAMBDA_FUNCTION_NAME`` set to that function's name, so app.py imports only what the
function runs (app.py's docstring). Per function it reports the median time of the import
alone (timed inside the child, so the interpreter's own start-up is apart: reported too),
the resident memory right after it (the floor under every invocation's "Max Memory Used"),
and ``first_use_ms``: the same import followed by every import the loaded Herald modules
defer to first use (Jinja, email_validator, dnspython...), all of them, timed together. A
first invocation runs only the ones its path reaches (some are error paths), so that is an
upper bound of what a first call adds to the import.

``cold_import_ms``, the figure with the ≤ 250 ms target, is the slowest function's import:
every function's Lambda init (the import) is at most that. Deferred first-use imports are
not in it (they were not in issue 19's figure either; they stand beside it as
``first_use_ms``). ``whole_app`` is ``import app`` with no function named, as the figure was
measured before the functions imported apart (and as ``chalice package`` and the tests still
import it): kept for comparison. The runs are interleaved (one of each function, then the
next round), so a change in the machine's load falls on every function alike.

``package()`` runs ``chalice package`` through ``infra.render`` (the same command the stack
is built from) and measures what it wrote: the app's ``deployment.zip`` and, with
``automatic_layer``, the dependencies' ``layer-deployment.zip``; zipped, and unzipped
(Lambda limits the unzipped size of a function and its layers to 250 MB).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_OUT = ROOT / "bench" / "out" / "package"
# The child reads its peak resident set from /proc (VmHWM): getrusage's ru_maxrss would
# report the benchmark's own size, which a forked child inherits across exec on Linux.
# argv: the app's root, the layer's site-packages, a JSON file of the deferred imports
# (file → statements) that the parent found once, so the child only times them.
_CHILD = """
import json, re, sys, time
app_root, site_packages, deferred_file = sys.argv[1:]
deferred = json.load(open(deferred_file))
sys.path[:0] = [app_root, site_packages]
started = time.perf_counter()
import app
imported = time.perf_counter() - started
assert app.__file__.startswith(app_root), app.__file__
status = open("/proc/self/status").read()
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
api_loaded = "chalicelib.api" in sys.modules
modules = len(sys.modules)

def loaded():
    return {getattr(m, "__file__", None) for m in list(sys.modules.values())} & deferred.keys()

first_use, scanned = 0.0, set()
while unscanned := loaded() - scanned:
    statements = [line for path in sorted(unscanned) for line in deferred[path]]
    scanned |= unscanned
    started = time.perf_counter()
    for statement in statements:
        exec(statement, {})
    first_use += time.perf_counter() - started
print(json.dumps({"import_s": imported, "first_use_s": imported + first_use,
                  "rss_mb": peak_kb / 1024, "modules": modules, "api_loaded": api_loaded}))
"""
_LAMBDA_ENV = {
    "HERALD_STAGE": "dev",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "herald",
    "POWERTOOLS_METRICS_NAMESPACE": "Herald",
}
WHOLE_APP = "whole_app"  # no function named: every function's modules


def measure() -> dict[str, Any]:
    """The package, then the cold start from it: the benchmark's footprint section."""
    package_sizes = package()
    cold = cold_start()
    return {
        "figures": {"package_mb": package_sizes["zipped_mb"], "cold_import_ms": cold["import_ms"]},
        "package": package_sizes,
        "cold_start": cold,
    }


def cold_start(runs: int = 7) -> dict[str, Any]:
    """Per Lambda function, and for the whole app: median import time of ``app``, with the
    deferred imports too, and resident memory after it, over ``runs`` fresh interpreters
    each importing from the rendered package (``package()`` first), unpacked as Lambda
    unpacks it: the app zip and the layer, with the bytecode they ship and no more (``-B``:
    nothing compiled here is cached). boto3 and botocore come from this environment, as
    they come from the Lambda runtime."""
    from chalicelib.resources import herald_resources
    from chalicelib.settings import Settings
    from infra.bytecode import deferred_imports

    if not (PACKAGE_OUT / "deployment.zip").exists():
        package()
    settings = Settings(stage=_LAMBDA_ENV["HERALD_STAGE"])
    names = {h: settings.function_name(h) for h in herald_resources(settings).handlers}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in [*names, WHOLE_APP]}
    with tempfile.TemporaryDirectory() as scratch:
        app_root, layer_root = Path(scratch, "task"), Path(scratch, "opt")
        for name, root in (("deployment.zip", app_root), ("layer-deployment.zip", layer_root)):
            with zipfile.ZipFile(PACKAGE_OUT / name) as archive:
                archive.extractall(root)
        [site_packages] = layer_root.glob("python/lib/python3.*/site-packages")
        deferred_file = Path(scratch, "deferred.json")
        deferred_file.write_text(json.dumps(deferred_imports(app_root)))
        command = [sys.executable, "-I", "-B", "-c", _CHILD]
        command += [str(app_root), str(site_packages), str(deferred_file)]
        env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
        env.update(_LAMBDA_ENV)
        for _ in range(runs):
            for handler, taken in samples.items():
                function = {"AWS_LAMBDA_FUNCTION_NAME": names[handler]} if handler in names else {}
                started = time.perf_counter()
                output = subprocess.run(
                    command, cwd=app_root, env={**env, **function}, capture_output=True, check=True
                ).stdout
                child = json.loads(output.decode().strip().splitlines()[-1])
                child["process_s"] = time.perf_counter() - started
                taken.append(child)
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    whole = _medians(samples.pop(WHOLE_APP))
    functions = {handler: _medians(runs_of) for handler, runs_of in samples.items()}
    slowest = max(functions, key=lambda handler: functions[handler]["import_ms"])
    return {
        "import_ms": functions[slowest]["import_ms"],
        "slowest_function": slowest,
        "rss_after_import_mb": max(f["rss_after_import_mb"] for f in functions.values()),
        "functions": functions,
        WHOLE_APP: whole,
        "bare_interpreter_ms": round(statistics.median(bare) * 1000),
        "runs": runs,
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    return {
        "import_ms": round(median("import_s") * 1000),
        "first_use_ms": round(median("first_use_s") * 1000),
        "process_ms": round(median("process_s") * 1000),
        "rss_after_import_mb": round(median("rss_mb"), 1),
        "modules": round(median("modules")),
        "imports_api": any(run["api_loaded"] for run in runs),
    }


def package() -> dict[str, Any]:
    """Sizes of the deployment package ``chalice package`` builds (MB, 10^6 bytes)."""
    from infra.render import render

    started = time.perf_counter()
    render(out=PACKAGE_OUT)
    sizes: dict[str, Any] = {}
    for name in ("deployment.zip", "layer-deployment.zip"):
        path = PACKAGE_OUT / name
        if path.exists():
            with zipfile.ZipFile(path) as archive:
                unzipped = sum(entry.file_size for entry in archive.infolist())
            sizes[name] = {
                "zipped_mb": round(path.stat().st_size / 1e6, 2),
                "unzipped_mb": round(unzipped / 1e6, 2),
            }
    return {
        **sizes,
        "zipped_mb": round(sum(s["zipped_mb"] for s in sizes.values()), 2),
        "unzipped_mb": round(sum(s["unzipped_mb"] for s in sizes.values()), 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
