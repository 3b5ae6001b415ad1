"""What a Lambda cold start and a deployment pay: import time, resident memory, package size.

``cold_start()`` imports ``app`` in fresh interpreters, as Lambda's first invocation of an
execution environment does, and reports the median time of the import alone (timed inside
the child, so the interpreter's own start-up is apart: reported too) and the resident
memory right after it (the floor under every invocation's "Max Memory Used").

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
_CHILD = """
import json, re, sys, time
sys.path[:0] = sys.argv[1:]
started = time.perf_counter()
import app
imported = time.perf_counter() - started
assert app.__file__.startswith(sys.argv[1]), app.__file__
status = open("/proc/self/status").read()
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(json.dumps({"import_s": imported, "rss_mb": peak_kb / 1024}))
"""
_LAMBDA_ENV = {
    "HERALD_STAGE": "dev",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "herald",
    "POWERTOOLS_METRICS_NAMESPACE": "Herald",
}


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
    """Median import time of ``app`` and resident memory after it, over ``runs`` fresh
    interpreters importing from the rendered package (``package()`` first), unpacked as
    Lambda unpacks it: the app zip and the layer, with the bytecode they ship and no more
    (``-B``: nothing compiled here is cached). boto3 and botocore come from this
    environment, as they come from the Lambda runtime."""
    if not (PACKAGE_OUT / "deployment.zip").exists():
        package()
    env = {**os.environ, **_LAMBDA_ENV}
    imports, processes, rss = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        app_root, layer_root = Path(scratch, "task"), Path(scratch, "opt")
        for name, root in (("deployment.zip", app_root), ("layer-deployment.zip", layer_root)):
            with zipfile.ZipFile(PACKAGE_OUT / name) as archive:
                archive.extractall(root)
        [site_packages] = layer_root.glob("python/lib/python3.*/site-packages")
        command = [sys.executable, "-I", "-B", "-c", _CHILD, str(app_root), str(site_packages)]
        for _ in range(runs):
            started = time.perf_counter()
            output = subprocess.run(
                command, cwd=app_root, env=env, capture_output=True, check=True
            ).stdout
            processes.append(time.perf_counter() - started)
            child = json.loads(output.decode().strip().splitlines()[-1])
            imports.append(child["import_s"])
            rss.append(child["rss_mb"])
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    return {
        "import_ms": round(statistics.median(imports) * 1000),
        "process_ms": round(statistics.median(processes) * 1000),
        "bare_interpreter_ms": round(statistics.median(bare) * 1000),
        "rss_after_import_mb": round(statistics.median(rss), 1),
        "runs": runs,
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
