"""What happened to a campaign's messages: stats, the message list, one message's timeline.

``GET /v1/campaigns/{id}/stats`` sums the campaign's sharded counters (one Query) into
counts and rates (denominators in docs/feedback.md); a flow's add its per node and per
A/B variant counts from the same read (docs/flows.md). ``/messages`` lists the ledger's
message records, optionally of one status; ``/messages/{message_id}`` is one record with
its timeline. ``/callback-deliveries`` shows failed attempts to the event callback URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain.feedback import (
    CampaignStats,
    MessageStatus,
    TimelineEntry,
    campaign_stats,
    message_timeline,
)
from chalicelib.domain.flows.stats import NodeStats, VariantStats, flow_stats
from chalicelib.store import ledger
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.counters import read_counts
from chalicelib.store.webhooks import DeliveryAttempt, recent_attempts

blueprint = Blueprint(__name__)
_PATH = "/v1/campaigns/{campaign_id}"


class MessageView(ApiModel):
    """One message of a campaign and, when read alone, its timeline."""

    message_id: str
    contact_id: str
    channel: str
    step: str
    address: str
    status: str
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    template_id: str | None = None
    sender_id: str | None = None
    error: str | None = None
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    status_detail: str | None = None
    clicked_link: str | None = None
    replied_at: datetime | None = Field(
        default=None, description="When the contact first replied (SES inbound)."
    )
    auto_replied_at: datetime | None = Field(
        default=None, description="When an automatic answer (out of office) first came."
    )
    timeline: list[TimelineEntry] | None = None

    @classmethod
    def of(cls, record: ledger.MessageRecord, *, with_timeline: bool = False) -> MessageView:
        stored: dict[str, Any] = record.model_dump()
        view = cls.model_validate(stored)  # extra attributes are ignored
        if with_timeline:
            view.timeline = message_timeline(record.sent_at, stored)
        return view


class MessagesQuery(ListQuery):
    status: MessageStatus | None = None


class FlowCampaignStats(CampaignStats):
    """A campaign's stats; a flow's (``workflow``, ``sequence``, ``event_triggered``) add
    its enrolments, messages, exits and goals, and per node and per A/B variant counts
    (docs/flows.md, "Stats"). A broadcast's stats have none of the flow fields."""

    enrollments: int | None = None
    messages: int | None = None
    conversions: int | None = None
    exited: dict[str, int] | None = Field(default=None, description="Exits by reason.")
    nodes: dict[str, NodeStats] | None = Field(default=None, description="Per node id.")
    variants: dict[str, dict[str, VariantStats]] | None = Field(
        default=None, description="Per ab_split node id, per variant name."
    )


@endpoint(
    blueprint,
    f"{_PATH}/stats",
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="Campaign stats: counts and rates (delivered, opened, clicked, bounced, ...); "
    "a flow's per node and per A/B variant too",
    response=FlowCampaignStats,
)
def get_stats(call: Call) -> CampaignStats:
    campaign = get_campaign(call.tenant_id, call.params["campaign_id"])
    counts = read_counts(call.tenant_id, campaign.id)
    stats = campaign_stats(campaign.total_recipients or 0, counts)
    if campaign.workflow is None:
        return stats
    flow = flow_stats([node.id for node in campaign.workflow.nodes], counts)
    return FlowCampaignStats(**stats.model_dump(), **flow.model_dump())


@endpoint(
    blueprint,
    f"{_PATH}/messages",
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="A campaign's messages, optionally of one status (a page may be short; follow "
    "next_cursor until it is null)",
    query=MessagesQuery,
    response=ListPage[MessageView],
)
def list_messages(call: Call) -> ListPage[MessageView]:
    campaign = get_campaign(call.tenant_id, call.params["campaign_id"])
    query: MessagesQuery = call.query
    records, cursor = ledger.list_messages(
        call.tenant_id,
        campaign.id,
        [step.id for step in campaign.steps],
        status=query.status,
        limit=query.limit,
        cursor=query.cursor,
    )
    return ListPage[MessageView](items=[MessageView.of(r) for r in records], next_cursor=cursor)


@endpoint(
    blueprint,
    f"{_PATH}/messages/{{message_id}}",
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="One message with its timeline (sent, delivered, opened, ...)",
    response=MessageView,
)
def get_message(call: Call) -> MessageView:
    campaign = get_campaign(call.tenant_id, call.params["campaign_id"])
    record = ledger.get_message(call.tenant_id, campaign.id, call.params["message_id"])
    return MessageView.of(record, with_timeline=True)


@endpoint(
    blueprint,
    f"{_PATH}/callback-deliveries",
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="Failed attempts to POST this campaign's event callbacks, newest first",
    query=ListQuery,
    response=ListPage[DeliveryAttempt],
)
def list_callback_deliveries(call: Call) -> ListPage[DeliveryAttempt]:
    campaign = get_campaign(call.tenant_id, call.params["campaign_id"])
    attempts, cursor = recent_attempts(
        call.tenant_id, campaign.id, call.query.limit, call.query.cursor
    )
    return ListPage[DeliveryAttempt](items=attempts, next_cursor=cursor)
