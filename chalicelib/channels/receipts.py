"""Delivery receipts the channels themselves know: a message stored in a contact's
on-site inbox is delivered, one the Telegram Bot API accepted is in the chat.

There is no provider to publish these, so the channel queues them on the feedback queue
(``ChannelReceipt``), and the feedback worker applies them exactly as it applies SES and
SNS events: the status only moves forward and each kind counts once per message, so a
send retried after a crash reports the same receipt again harmlessly. A receipt may
reach the worker before the sender's ledger write; the worker then retries it shortly
(the record race window, chalicelib/pipeline/feedback.py). Test sends carry no campaign
and report nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from chalicelib.domain.channels import ChannelName
from chalicelib.domain.feedback import (
    TAG_CAMPAIGN,
    TAG_MESSAGE,
    TAG_TENANT,
    DeliveryEvent,
    EventKind,
)
from chalicelib.pipeline.messages import ChannelReceipt
from chalicelib.pipeline.queues import enqueue


def message_tags(tenant_id: str, campaign_id: str, message_id: str) -> dict[str, str]:
    """The tags a campaign message carries, for a receipt about one no longer in hand."""
    return {TAG_TENANT: tenant_id, TAG_CAMPAIGN: campaign_id, TAG_MESSAGE: message_id}


def report(
    kind: EventKind,
    channel: ChannelName,
    tags: Mapping[str, str],
    *,
    recipient: str,
    provider_message_id: str,
    at: datetime,
) -> None:
    """Queue ``kind`` (delivered, opened) for the campaign message ``tags`` name."""
    tenant_id, campaign_id = tags.get(TAG_TENANT), tags.get(TAG_CAMPAIGN)
    message_id = tags.get(TAG_MESSAGE)
    if not (tenant_id and campaign_id and message_id):
        return
    event = DeliveryEvent(
        kind=kind,
        channel=channel,
        provider="herald",
        provider_event=f"{channel}.{kind}",
        provider_message_id=provider_message_id,
        occurred_at=at,
        sent_at=at,
        recipients=(recipient,),
        tenant_id=tenant_id,
        campaign_id=campaign_id,
        message_id=message_id,
    )
    receipt = ChannelReceipt(tenant_id=tenant_id, event=event.model_dump(mode="json"))
    enqueue("feedback", [receipt.as_message()])
