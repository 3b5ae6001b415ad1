"""A probe run in a fresh interpreter: what a Lambda cold start holds after ``import app``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def probe(code: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter at the repository's root with ``env``; the JSON
    object its last line of output prints."""
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result
