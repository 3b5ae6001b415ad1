"""Herald's own events onto its EventBridge bus, ten per PutEvents.

Everything Herald announces (``contact.saved``, events posted by clients, ...) goes through
``publish_events``: the detail-type is the event name and the detail always names its
tenant, which is what the bus rule that feeds the triggers queue matches on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.aws import client
from chalicelib.settings import get_settings

PUT_EVENTS_LIMIT = 10
ENTRY_MAX_BYTES = 256 * 1024  # EventBridge's limit for one entry
EVENT_SOURCE = "herald"
_ATTEMPTS = 4


@dataclass(frozen=True)
class BusEvent:
    """One event: ``name`` becomes the detail-type, ``detail`` the body (plus tenant_id)."""

    name: str
    detail: Mapping[str, Any]
    time: datetime | None = None
    resources: tuple[str, ...] = field(default=())


def publish_events(tenant_id: str, events: Iterable[BusEvent]) -> int:
    """Put ``events`` on Herald's bus; returns how many were accepted.

    Entries EventBridge fails (throttling, internal errors) are retried with back-off; if
    some still fail, RuntimeError, so a caller never believes an event was published when
    it was not. An entry over 256 KB raises ValueError before anything is sent.
    """
    bus = get_settings().event_bus_name
    entries = [_entry(bus, tenant_id, event) for event in events]
    for start in range(0, len(entries), PUT_EVENTS_LIMIT):
        _put_batch(entries[start : start + PUT_EVENTS_LIMIT])
    return len(entries)


def _entry(bus: str, tenant_id: str, event: BusEvent) -> dict[str, Any]:
    body = {**event.detail, "tenant_id": tenant_id}
    detail = json.dumps(body, separators=(",", ":"), default=str)
    entry: dict[str, Any] = {
        "EventBusName": bus,
        "Source": EVENT_SOURCE,
        "DetailType": event.name,
        "Detail": detail,
    }
    if event.time is not None:
        entry["Time"] = event.time
    if event.resources:
        entry["Resources"] = list(event.resources)
    if len(detail.encode()) + len(event.name) > ENTRY_MAX_BYTES:
        raise ValueError(f"event {event.name!r} is larger than EventBridge's 256 KB")
    return entry


def _put_batch(entries: list[dict[str, Any]]) -> None:
    pending = entries
    for attempt in range(_ATTEMPTS):
        response = client("events").put_events(Entries=pending)
        if not response.get("FailedEntryCount"):
            return
        results = response.get("Entries", [])
        pending = [e for e, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
        time.sleep(min(0.1 * 2**attempt, 1.0))
    raise RuntimeError(f"EventBridge refused {len(pending)} of {len(entries)} events")
