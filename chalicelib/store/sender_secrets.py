"""The secrets a sender needs at send time and the API never returns (a Telegram bot's
token), kept apart from the sender item.

Layout (scope prefix added by ScopedTable): ``T#<tenant>#SENDERSECRET / <sender id>``
holding ``secret``. A separate item, so that reading, listing or exporting senders never
loads a secret, and only the send path asks for one (cached for a minute per process, as
the send pipeline caches senders). Push credentials are not here: SNS keeps them in the
platform application Herald makes, and Herald does not keep a copy.
"""

from __future__ import annotations

import threading
import time

from chalicelib.store.table import tenant_table

_SECRET = "SENDERSECRET"  # noqa: S105  (a partition name)
CACHE_SECONDS = 60.0
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, str | None]] = {}


def put_secret(tenant_id: str, sender_id: str, secret: str) -> None:
    tenant_table(tenant_id).put(_SECRET, sender_id, {"secret": secret})
    with _lock:
        _cache.pop((tenant_id, sender_id), None)


def sender_secret(tenant_id: str, sender_id: str) -> str | None:
    """The sender's secret (None when it has none or was deleted), cached briefly."""
    key = (tenant_id, sender_id)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    item = tenant_table(tenant_id).get(_SECRET, sender_id)
    secret = str(item["secret"]) if item else None
    with _lock:
        _cache[key] = (time.monotonic(), secret)
    return secret


def delete_secret(tenant_id: str, sender_id: str) -> None:
    tenant_table(tenant_id).delete(_SECRET, sender_id)
    with _lock:
        _cache.pop((tenant_id, sender_id), None)


def forget_cached_secrets() -> None:
    """Drop cached secrets (tests that switch moto accounts under a running process)."""
    with _lock:
        _cache.clear()
