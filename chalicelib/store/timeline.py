"""Contacts' event timelines in DynamoDB.

Layout (tenant scope prefix added by ScopedTable): ``TIMELINE#<contact id> / <occurred at,
fixed-width UTC>#<event id>``, so one Query reads a contact's events newest first. Items
expire through the table's TTL attribute after ``event_timeline_retention_days``; what
segments need for ever (count, first and last time per event name) lives on the contact.

The write is conditional on the item not existing: the same event delivered twice (an SQS
redelivery, EventBridge's at-least-once delivery) lands on the same key and is refused,
which is how the caller knows not to count it again.

A producer's own ``event_id`` (``POST /v1/events``, or a detail's ``event_id`` on the bus)
is unique per tenant for 7 days: ``EVENTID#<event id> / -`` holds who claimed it first,
so a repeat is answered as a duplicate and never processed again.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.events import TimelineEvent
from chalicelib.resources import TableSpec
from chalicelib.settings import get_settings
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_TTL_ATTRIBUTE = TableSpec.ttl_attribute


def _partition(contact_id: str) -> str:
    return f"TIMELINE#{contact_id}"


def _sort_key(event: TimelineEvent) -> str:
    moment = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{moment}#{event.id}"


def record_on_timeline(tenant_id: str, contact_id: str, event: TimelineEvent) -> bool:
    """Write ``event`` on the contact's timeline; False when it is there already."""
    retention = timedelta(days=get_settings().event_timeline_retention_days)
    item: dict[str, Any] = {
        **event.model_dump(mode="json", exclude={"properties"}),
        "properties": json.dumps(event.properties, separators=(",", ":")),
        _TTL_ATTRIBUTE: int((event.received_at + retention).timestamp()),
    }
    try:
        tenant_table(tenant_id).put(
            _partition(contact_id), _sort_key(event), item, condition=Condition.absent()
        )
    except ConditionFailed:
        return False
    return True


def list_timeline(
    tenant_id: str, contact_id: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[TimelineEvent], str | None]:
    """A page of the contact's events, newest first."""
    page = tenant_table(tenant_id).query(
        _partition(contact_id), limit=limit, cursor=cursor, newest_first=True
    )
    events = [
        TimelineEvent.model_validate({**item, "properties": json.loads(item["properties"])})
        for item in page.items
    ]
    return events, page.cursor


# -- event ids: the same event twice is recorded once --------------------------------
EVENT_ID_RETENTION = timedelta(days=7)


def _event_id_partition(event_id: str) -> str:
    return f"EVENTID#{event_id}"


def claim_event_id(tenant_id: str, event_id: str, owner: str, now: datetime) -> str | None:
    """Claim a producer's ``event_id`` for ``owner`` (the delivery that carries it) for
    EVENT_ID_RETENTION. None when the claim is ``owner``'s (new, or claimed by the same
    delivery before: a retry); else the owner that holds it (the event is a duplicate).

    One conditional PutItem: the id is free when absent or past its time (TTL deletes
    late, so the condition reads the time itself), or held by the same owner already.
    """
    at = int(now.timestamp())
    item = {"owner": owner, _TTL_ATTRIBUTE: int((now + EVENT_ID_RETENTION).timestamp())}
    free = Condition(
        "attribute_not_exists(pk) OR #c_t < :c_now OR #c_o = :c_owner",
        {"#c_t": _TTL_ATTRIBUTE, "#c_o": "owner"},
        {":c_now": at, ":c_owner": owner},
    )
    table = tenant_table(tenant_id)
    for _ in range(2):  # the holder's item may vanish (TTL) between our write and read
        try:
            table.put(_event_id_partition(event_id), "-", item, condition=free)
        except ConditionFailed:
            held = table.get(_event_id_partition(event_id), "-")
            if held is not None:
                return str(held["owner"])
            continue
        return None
    raise ConditionFailed(f"event id {event_id!r} could not be claimed")


def release_event_id(tenant_id: str, event_id: str, owner: str) -> None:
    """Give a claim back (its event could not be published after all)."""
    with contextlib.suppress(ConditionFailed):
        tenant_table(tenant_id).delete(
            _event_id_partition(event_id), "-", condition=Condition.equals("owner", owner)
        )
