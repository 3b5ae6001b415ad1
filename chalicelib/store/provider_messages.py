"""Provider message id → Herald message, for provider events that carry no tags.

SES events carry the tags Herald set at send time (tenant, campaign, message), so email
needs no lookup. An SNS SMS or push delivery status names only SNS's message id and the
phone number or endpoint: nothing says which tenant sent it. So every SMS and push send
leaves one pointer here, in the system scope because the reader does not know the tenant
yet (it holds ids only):

- ``SYS#PROVIDERMSG / <provider message id>``: tenant_id, campaign_id, message_id,
  expiring after ``RETENTION`` (SNS reports final SMS status within 72 hours, a push's
  within seconds).

Written with BatchWriteItem, 25 per call, once per send batch. Email does not write them:
that would be one more write unit per recipient for a lookup the tags make unnecessary;
the lookup still serves any email id that was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.resources import TableSpec
from chalicelib.store.table import system_table

_PARTITION = "PROVIDERMSG"
RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class MessageRef:
    """Where a provider's message lives in Herald."""

    tenant_id: str
    campaign_id: str
    message_id: str


def remember_provider_messages(
    refs: Iterable[tuple[str, MessageRef]], now: datetime, retention: timedelta = RETENTION
) -> int:
    """Record ``(provider message id, ref)`` pairs; returns how many were written.
    Replies come later than SMS status: their pointers are kept longer (``retention``)."""
    expires_at = int((now + retention).timestamp())
    return system_table().batch_put(
        (
            _PARTITION,
            provider_message_id,
            {
                "tenant_id": ref.tenant_id,
                "campaign_id": ref.campaign_id,
                "message_id": ref.message_id,
                TableSpec.ttl_attribute: expires_at,
            },
        )
        for provider_message_id, ref in refs
    )


def find_provider_message(provider_message_id: str) -> MessageRef | None:
    item = system_table().get(_PARTITION, provider_message_id)
    if item is None:
        return None
    return MessageRef(item["tenant_id"], item["campaign_id"], item["message_id"])
