"""Senders in DynamoDB.

Layout (scope prefix added by ScopedTable): ``T#<tenant>#SENDER / <sender id>``. Each
sender also gets a small integer (``chalicelib.store.numbering``, kind ``sender``): seed
003's API names its "domains" (bounce domains, i.e. verified sender domains) by integer
ids, and its dialect maps those to senders through this number.

The last SES verification status seen is stored on the sender (``verification``), so a
listing shows it without one SES call per sender; a single GET refreshes it.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.senders import (
    SECRET_FIELDS,
    IdentityStatus,
    Sender,
    SenderChannel,
    SenderFields,
    check_sender,
)
from chalicelib.store.numbering import allocate_number, release_number, resolve_number
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_SENDER = "SENDER"
NUMBER_KIND = "sender"


def new_sender_id() -> str:
    return "snd_" + uuid.uuid4().hex


def _item(sender: Sender) -> dict[str, Any]:
    return sender.model_dump(mode="json")


def _not_found(sender_id: str) -> NotFound:
    return NotFound(f"sender '{sender_id}' not found", field="sender_id")


def create_sender(
    tenant_id: str,
    channel: SenderChannel,
    fields: SenderFields,
    verification: IdentityStatus | None = None,
    owned_identities: list[str] | None = None,
    *,
    sender_id: str | None = None,
    provider_fields: dict[str, str] | None = None,
) -> Sender:
    """Store a new sender (ValidationFailed, naming the field, if it is incomplete).

    Its write-only fields (``SECRET_FIELDS``) are never stored here; ``provider_fields``
    are what the service learned from the provider (a platform application's ARN, a
    bot's id).
    """
    values = fields.model_dump(exclude_none=True)
    check_sender(channel, values, creating=True)
    values = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    sender_id = sender_id or new_sender_id()
    now = clock.now()
    sender = Sender(
        id=sender_id,
        number=allocate_number(tenant_id, NUMBER_KIND, sender_id),
        channel=channel,
        verification=verification,
        owned_identities=owned_identities or [],
        created_at=now,
        updated_at=now,
        **values,
        **(provider_fields or {}),
    )
    tenant_table(tenant_id).put(_SENDER, sender.id, _item(sender), condition=Condition.absent())
    return sender


def get_sender(tenant_id: str, sender_id: str) -> Sender:
    """The sender, or NotFound (field ``sender_id``), also for another tenant's id."""
    item = tenant_table(tenant_id).get(_SENDER, sender_id)
    if item is None:
        raise _not_found(sender_id)
    return Sender.model_validate(item)


def get_sender_by_number(tenant_id: str, number: int) -> Sender:
    sender_id = resolve_number(tenant_id, NUMBER_KIND, number)
    if sender_id is None:
        raise NotFound(f"sender number {number} not found", field="number")
    return get_sender(tenant_id, sender_id)


def list_senders(
    tenant_id: str, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[Sender], str | None]:
    page = tenant_table(tenant_id).query(_SENDER, limit=limit, cursor=cursor)
    return [Sender.model_validate(i) for i in page.items], page.cursor


def all_senders(tenant_id: str) -> list[Sender]:
    """Every sender of a tenant (a tenant has a handful; admin transfers revisit them all)."""
    return [Sender.model_validate(i) for i in tenant_table(tenant_id).query_all(_SENDER)]


def replace_sender(tenant_id: str, current: Sender, updated: Sender) -> Sender:
    """Store ``updated`` in place of ``current``; Conflict if it changed meanwhile."""
    try:
        tenant_table(tenant_id).put(
            _SENDER,
            current.id,
            _item(updated),
            condition=Condition.equals("updated_at", _item(current)["updated_at"]),
        )
    except ConditionFailed:
        raise Conflict(
            f"sender '{current.id}' changed concurrently; retry", field="sender_id"
        ) from None
    return updated


def record_owned_identities(tenant_id: str, sender: Sender, owned: list[str]) -> None:
    """Store which of its identities the tenant owns now (after a claim or a transfer).

    Skipped when the sender was deleted or its identities changed meanwhile: whoever
    changed them computed ``owned_identities`` from the owners at that moment.
    """
    if owned == sender.owned_identities:
        return
    with contextlib.suppress(ConditionFailed):
        tenant_table(tenant_id).update(
            _SENDER,
            sender.id,
            set_values={"owned_identities": owned},
            condition=Condition.equals("updated_at", _item(sender)["updated_at"]),
        )


def record_verification(tenant_id: str, sender: Sender, status: IdentityStatus) -> Sender:
    """Remember ``status`` on the sender when it differs from what is stored (else no write).

    Best effort and race-free: it only writes while the sender still has the address the
    status is about, and never fails the read that observed it.
    """
    stored = sender.verification
    if stored is not None and (stored.verified, stored.status, stored.identity) == (
        status.verified,
        status.status,
        status.identity,
    ):
        return sender
    # ConditionFailed: deleted, or its address changed meanwhile; the status is moot.
    with contextlib.suppress(ConditionFailed):
        tenant_table(tenant_id).update(
            _SENDER,
            sender.id,
            set_values={"verification": status.model_dump(mode="json")},
            condition=Condition.equals("from_email", sender.from_email),
        )
    return sender.model_copy(update={"verification": status})


def delete_sender(tenant_id: str, sender_id: str) -> Sender:
    removed = tenant_table(tenant_id).delete(_SENDER, sender_id)
    if removed is None:
        raise _not_found(sender_id)
    sender = Sender.model_validate(removed)
    release_number(tenant_id, NUMBER_KIND, sender.number)
    return sender


def count_senders(tenant_id: str, *, at_most: int) -> int:
    """How many senders the tenant has, counted up to ``at_most`` (for its limit)."""
    return tenant_table(tenant_id).count(_SENDER, at_most=at_most)
