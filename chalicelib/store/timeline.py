"""Contacts' event timelines in DynamoDB.

Layout (tenant scope prefix added by ScopedTable): ``TIMELINE#<contact id> / <occurred at,
fixed-width UTC>#<event id>``, so one Query reads a contact's events newest first. Items
expire through the table's TTL attribute after ``event_timeline_retention_days``; what
segments need for ever (count, first and last time per event name) lives on the contact.

The write is conditional on the item not existing: the same event delivered twice (an SQS
redelivery, EventBridge's at-least-once delivery) lands on the same key and is refused,
which is how the caller knows not to count it again.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
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
