"""The buffer behind aggregated event callbacks, in DynamoDB.

Layout:
- ``T#<tenant>#CALLBACK#<campaign>#<event>#<window start> / <chunk key>``: the addresses
  one feedback batch (or one send batch) adds to a window, written with ONE PutItem per
  (campaign, event) per batch, never one write per event. The chunk key is derived from
  the messages in it, so a retried batch overwrites its own chunk instead of adding a
  second; a chunk holds at most a batch's addresses, far below DynamoDB's 400 KB.
- ``SYS#CALLBACKDUE / <due second>#<tenant>#<campaign>#<event>#<window start>``: one
  pointer per open window, so the one-minute tick can find every window that is due
  without knowing the tenants (the only tenant-named item in the system scope: it holds
  ids, no tenant data). Deleted when the window is flushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.feedback import CallbackEvent, Channel
from chalicelib.resources import TableSpec
from chalicelib.store.table import Condition, ConditionFailed, system_table, tenant_table

_DUE = "CALLBACKDUE"
_EXPIRY = timedelta(days=2)  # a window nobody flushed is dropped by TTL, never kept forever
CLAIM_SECONDS = 120


@dataclass(frozen=True)
class Window:
    """One (tenant, campaign, event) aggregation window and when it is due."""

    tenant_id: str
    campaign_id: str
    event: CallbackEvent
    start: int
    due: int

    @property
    def due_key(self) -> str:
        return f"{self.due:010d}#{self.tenant_id}#{self.campaign_id}#{self.event}#{self.start}"


@dataclass(frozen=True)
class Chunk:
    """Addresses buffered for a window, with where and how to post them."""

    url: str
    channel: Channel
    addresses: list[str]
    first_at: int


def _partition(campaign_id: str, event: str, start: int) -> str:
    return f"CALLBACK#{campaign_id}#{event}#{start}"


def buffer_chunk(window: Window, chunk_key: str, chunk: Chunk, now: datetime) -> None:
    """Add one batch's addresses to ``window`` (idempotent per ``chunk_key``)."""
    tenant_table(window.tenant_id).put(
        _partition(window.campaign_id, window.event, window.start),
        chunk_key,
        {
            "chunk_key": chunk_key,  # key attributes do not come back from a Query
            "url": chunk.url,
            "channel": chunk.channel,
            "addresses": chunk.addresses,
            "first_at": chunk.first_at,
            TableSpec.ttl_attribute: int((now + _EXPIRY).timestamp()),
        },
    )


def register_window(window: Window, now: datetime) -> bool:
    """Record that ``window`` has something to flush; True only for the first caller."""
    try:
        system_table().put(
            _DUE,
            window.due_key,
            {
                "tenant_id": window.tenant_id,
                "campaign_id": window.campaign_id,
                "event": window.event,
                "start": window.start,
                "due": window.due,
                TableSpec.ttl_attribute: int((now + _EXPIRY).timestamp()),
            },
            condition=Condition.absent(),
        )
    except ConditionFailed:
        return False
    return True


def due_windows(now: datetime, limit: int = 500) -> list[Window]:
    """Open windows whose time has come, oldest first (one Query of the pointer partition)."""
    cutoff = int(now.timestamp())
    found: list[Window] = []
    for item in system_table().query_all(_DUE, limit=limit):
        if item["due"] > cutoff or len(found) >= limit:
            break
        found.append(_window(item))
    return found


def _window(item: dict[str, Any]) -> Window:
    return Window(
        tenant_id=item["tenant_id"],
        campaign_id=item["campaign_id"],
        event=item["event"],
        start=item["start"],
        due=item["due"],
    )


def claim_window(window: Window, now: datetime) -> bool:
    """Take the right to flush ``window`` for ``CLAIM_SECONDS``; False if another flush has
    it or it was flushed already. A flush that dies loses its claim when it expires."""
    moment = int(now.timestamp())
    try:
        system_table().update(
            _DUE,
            window.due_key,
            set_values={"claimed_until": moment + CLAIM_SECONDS},
            condition=Condition(
                "attribute_exists(pk) AND (attribute_not_exists(claimed_until)"
                " OR claimed_until < :now)",
                values={":now": moment},
            ),
        )
    except ConditionFailed:
        return False
    return True


def read_window(window: Window) -> list[tuple[str, Chunk]]:
    """Every chunk buffered for ``window`` with its key."""
    items = tenant_table(window.tenant_id).query_all(
        _partition(window.campaign_id, window.event, window.start), consistent=True
    )
    return [
        (
            item["chunk_key"],
            Chunk(
                url=item["url"],
                channel=item["channel"],
                addresses=list(item["addresses"]),
                first_at=item["first_at"],
            ),
        )
        for item in items
    ]


def clear_window(window: Window, chunk_keys: Sequence[str]) -> None:
    """Forget the flushed chunks, then the pointer (so a crash in between re-flushes)."""
    tenant_table(window.tenant_id).batch_delete(
        (_partition(window.campaign_id, window.event, window.start), key) for key in chunk_keys
    )
    system_table().delete(_DUE, window.due_key)
