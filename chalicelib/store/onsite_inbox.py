"""Contacts' on-site inboxes in DynamoDB.

Layout (scope prefix added by ScopedTable):
- ``T#<tenant>#INBOX#<contact id> / <message id>``  one item per message, ``expires_at``
  (the table's TTL) ``Settings.onsite_retention_days`` after it was stored
- gsi1 ``T#<tenant>#INBOX#<contact id> / <created_at>#<message id>``  newest first

The message id is a digest of Herald's message id (campaign step, contact, channel), so
a send retried after a crash stores the same message again instead of a second one.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.contacts import utc
from chalicelib.domain.errors import NotFound
from chalicelib.domain.onsite import InboxMessage
from chalicelib.settings import get_settings
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_INBOX = "INBOX#{contact_id}"


def inbox_message_id(herald_message_id: str | None) -> str:
    """The id a message is stored under: a digest of Herald's message id, so a retried
    send stores the same message again (a random id outside a campaign: a test send)."""
    source = herald_message_id or uuid.uuid4().hex
    return "in_" + hashlib.sha256(source.encode()).hexdigest()[:32]


def store_message(
    tenant_id: str, contact_id: str, message: InboxMessage, *, campaign_message_id: str | None
) -> InboxMessage:
    """Put ``message`` in the contact's inbox; the same message again (a retried send)
    changes nothing and returns the one stored first."""
    partition = _INBOX.format(contact_id=contact_id)
    expires = utc(message.created_at) + timedelta(days=get_settings().onsite_retention_days)
    item: dict[str, Any] = {
        **message.model_dump(mode="json"),
        "campaign_message_id": campaign_message_id,
        "expires_at": int(expires.timestamp()),
    }
    try:
        tenant_table(tenant_id).put(
            partition,
            message.id,
            item,
            condition=Condition.absent(),
            index_keys={"gsi1": (partition, f"{item['created_at']}#{message.id}")},
        )
    except ConditionFailed:
        return get_message(tenant_id, contact_id, message.id)
    return message


def get_message(tenant_id: str, contact_id: str, message_id: str) -> InboxMessage:
    item = tenant_table(tenant_id).get(_INBOX.format(contact_id=contact_id), message_id)
    if item is None or _expired(item):
        raise NotFound(f"inbox message '{message_id}' not found", field="inbox_message_id")
    return InboxMessage.model_validate(item)


def campaign_of(tenant_id: str, contact_id: str, message_id: str) -> tuple[str | None, str | None]:
    """(campaign id, Herald message id) of a stored message, for its open receipt."""
    item = tenant_table(tenant_id).get(_INBOX.format(contact_id=contact_id), message_id)
    if item is None:
        return None, None
    return item.get("campaign_id"), item.get("campaign_message_id")


def list_messages(
    tenant_id: str, contact_id: str, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[InboxMessage], str | None]:
    """A page of the contact's inbox, newest first (expired ones are left out at once,
    before DynamoDB's TTL sweep removes them)."""
    page = tenant_table(tenant_id).query(
        _INBOX.format(contact_id=contact_id),
        index="gsi1",
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return [InboxMessage.model_validate(i) for i in page.items if not _expired(i)], page.cursor


def mark_read(
    tenant_id: str, contact_id: str, message_id: str, at: datetime
) -> tuple[InboxMessage, bool]:
    """Record that the contact read the message; returns it and whether this was the
    first time. NotFound for a message not in this contact's inbox."""
    table = tenant_table(tenant_id)
    partition = _INBOX.format(contact_id=contact_id)
    try:
        item = table.update(
            partition,
            message_id,
            set_values={"read_at": utc(at).isoformat()},
            condition=Condition("attribute_exists(pk) AND attribute_not_exists(read_at)"),
        )
    except ConditionFailed:
        return get_message(tenant_id, contact_id, message_id), False
    return InboxMessage.model_validate(item), True


def _expired(item: dict[str, Any]) -> bool:
    expires = item.get("expires_at")
    return expires is not None and int(expires) <= clock.now().timestamp()
