"""Every pipeline module has a place in the import-linter layers.

A module that no layer names is checked by no layer: a new queue handler that imported a
service's caller, or a contract that imported a handler, would pass ``make lint``. So a new
module under chalicelib/pipeline must be added to the handlers' layer or the contracts'.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["name"].startswith("Layers:"))["layers"]
    return {name for layer in layers for name in re.split(r"[|:\s]+", layer) if name}


def pipeline_modules() -> set[str]:
    package = ROOT / "chalicelib" / "pipeline"
    modules = {f"chalicelib.pipeline.{p.stem}" for p in package.glob("*.py")}
    modules |= {f"chalicelib.pipeline.{p.parent.name}" for p in package.glob("*/__init__.py")}
    return modules - {"chalicelib.pipeline.__init__"}


def test_every_pipeline_module_is_in_a_layer():
    assert pipeline_modules() - layered_modules() == set()


def test_the_layers_name_only_modules_that_exist():
    named = {m for m in layered_modules() if m.startswith("chalicelib.pipeline.")}
    assert named - pipeline_modules() == set()
