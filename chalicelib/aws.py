"""The one place that makes boto3 clients.

Clients are created lazily (so that moto, imported by tests, intercepts them) and cached
per service for the life of the process, honouring ``Settings.aws_endpoint_url``. botocore
clients are thread-safe, so the sender's pool shares them. They come from one shared
session (made under the lock, since sessions are not thread-safe): a session per client
reloads botocore's data files each time, which doubled the local stack's start-up.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings

_RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"}, max_pool_connections=32)
_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """A cached boto3 client for ``service`` pointed at the configured endpoint."""
    cached = _clients.get(service)
    if cached is not None:
        return cached
    with _lock:
        if service not in _clients:
            settings = get_settings()
            _clients[service] = _shared_session().client(
                service,  # type: ignore[call-overload]
                region_name=settings.region,
                endpoint_url=settings.aws_endpoint_url,
                config=_RETRIES,
            )
        return _clients[service]


@functools.cache
def _shared_session() -> boto3.session.Session:
    return boto3.session.Session()


def reset_clients() -> None:
    """Forget every cached client (tests switch endpoints and moto contexts)."""
    with _lock:
        _clients.clear()
