"""The embedded AWS: moto, provisioning, pollers and emulators (see docs/local.md)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
