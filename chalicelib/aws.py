"""The one place that makes boto3 clients.

Clients are created lazily (so that moto, imported by tests, intercepts them) and cached
per service for the life of the process, honouring ``Settings.aws_endpoint_url``. botocore
clients are thread-safe, so the sender's pool shares them. They come from one shared
session (made under the lock, since sessions are not thread-safe): a session per client
reloads botocore's data files each time, which doubled the local stack's start-up.

An endpoint on this machine (the embedded stack's moto) is signed for with fixed fake
credentials, whatever the shell has: the admin CLI next to ``make run`` then works in a
shell without AWS credentials, and a real account's keys never reach the emulator.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings

_RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"}, max_pool_connections=32)
_lock = threading.Lock()
_clients: dict[str, Any] = {}
_EMULATOR_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


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
                **signing_credentials(settings.aws_endpoint_url),
            )
        return _clients[service]


def signing_credentials(endpoint_url: str | None) -> dict[str, str]:
    """Fake credentials for an endpoint on this machine (an emulator); none for AWS, where
    the default chain (the Lambda role, the operator's profile) signs."""
    host = urlsplit(endpoint_url).hostname if endpoint_url else None
    if host is None:
        return {}
    if host == "localhost":
        return _EMULATOR_CREDENTIALS
    try:
        return _EMULATOR_CREDENTIALS if ipaddress.ip_address(host).is_loopback else {}
    except ValueError:  # a name, not an address: not known to be this machine
        return {}


@functools.cache
def _shared_session() -> boto3.session.Session:
    return boto3.session.Session()


def reset_clients() -> None:
    """Forget every cached client (tests switch endpoints and moto contexts)."""
    with _lock:
        _clients.clear()
