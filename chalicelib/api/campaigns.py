"""Campaigns: create, list, read, edit and delete them, and move them through their states.

Actions are sub-resources (``POST /v1/campaigns/{id}/schedule``, ``/send``, ``/pause``,
``/resume``, ``/cancel``, ``/test``); an action the campaign's state does not allow is a
409 naming that state. Before a campaign may be scheduled or sent, every list, segment,
template and sender it names must exist, and templates and senders must be of the
campaign's channel (422 naming the position, e.g. ``template_ids.1``). The state machine
and scheduling design are in docs/campaigns.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from chalice import Blueprint
from pydantic import BeforeValidator, Field, computed_field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.campaigns import (
    Campaign,
    CampaignFields,
    CampaignFilter,
    CampaignStatus,
    Channel,
    NewCampaign,
    Ordering,
    ScheduledTime,
    Step,
    family_of,
)
from chalicelib.domain.contacts import TimezoneName
from chalicelib.pipeline.send.trial import TestSendResult, send_test
from chalicelib.services import campaigns as service
from chalicelib.services import flows, limits
from chalicelib.services.campaigns import TEST_ADDRESSES_MAX

blueprint = Blueprint(__name__)
_PATH = "/v1/campaigns/{campaign_id}"


# -- shapes ----------------------------------------------------------------------------
class CreateCampaign(NewCampaign, Input):
    """A new draft: a name and a channel at least; the rest can be set until it is scheduled."""


class UpdateCampaign(CampaignFields, Input):
    """Change any of these (left out: unchanged; null clears a nullable field)."""


def _listed(value: Any) -> Any:
    """``status=sent`` or ``status=sent,failed`` or ``status=sent&status=failed``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CampaignListQuery(ListQuery):
    search: str | None = Field(
        default=None, max_length=200, description="Case-insensitive part of the name."
    )
    status: Annotated[list[CampaignStatus], BeforeValidator(_listed)] = Field(
        default_factory=list, description="One or more statuses (repeated or comma-separated)."
    )
    channel: Channel | None = None
    edition_id: str | None = Field(default=None, max_length=64)
    ordering: Ordering = Field(default="-created", description="A field; '-' for descending.")

    def filters(self) -> CampaignFilter:
        return CampaignFilter(
            search=self.search or None,
            statuses=frozenset(self.status),
            channel=self.channel,
            edition_id=self.edition_id,
        )


class ScheduleCampaign(Input):
    scheduled_at: ScheduledTime
    timezone: TimezoneName | None = Field(
        default=None,
        description="Reads an offset-less scheduled_at and becomes the campaign's timezone.",
    )


class TestSend(Input):
    addresses: list[str] = Field(
        min_length=1,
        max_length=TEST_ADDRESSES_MAX,
        description="Email addresses (email campaigns) or E.164 numbers (SMS campaigns).",
    )


class TestSendResults(ApiModel):
    results: list[TestSendResult]


class CampaignView(Campaign, ApiModel):
    """A campaign as the API shows it: the broadcast's pools at the top level."""

    steps: list[Step] = Field(exclude=True)
    revision: int = Field(default=0, exclude=True)
    held: bool = Field(default=False, exclude=True)  # seed 003's SCHEDULED
    planned_batches: int | None = Field(default=None, exclude=True)
    planning_done: bool = Field(default=False, exclude=True)
    plan_chains: int | None = Field(default=None, exclude=True)

    @computed_field(description="A broadcast's pool; a workflow's are on its send nodes.")  # type: ignore[prop-decorator]
    @property
    def template_ids(self) -> list[str]:
        return self.main_step.template_ids if self.family == "broadcast" else []

    @computed_field(description="A broadcast's pool; a workflow's are on its send nodes.")  # type: ignore[prop-decorator]
    @property
    def sender_ids(self) -> list[str]:
        return self.main_step.sender_ids if self.family == "broadcast" else []

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignView:
        return cls.model_validate(campaign.model_dump())


class CampaignDetail(CampaignView):
    """A campaign with its progress, counted by the senders once per batch."""

    sent: int = 0
    failed: int = 0
    skipped: dict[str, int] = Field(
        default_factory=dict, description="Recipients not sent to, by reason."
    )

    @classmethod
    def read(cls, tenant_id: str, campaign: Campaign) -> CampaignDetail:
        """The view of ``campaign`` with its counters (one Query, none before it started)."""
        values = campaign.model_dump()
        if campaign.started_at is not None:
            counts = service.counts(tenant_id, campaign)
            values.update(
                sent=counts.get("sent", 0),
                failed=counts.get("failed", 0),
                skipped=service.skipped(counts),
            )
        return cls.model_validate(values)


# -- resource --------------------------------------------------------------------------
@endpoint(
    blueprint,
    "/v1/campaigns",
    "POST",
    idempotent=True,
    auth="tenant",
    tag="campaigns",
    status=201,
    summary="Create a draft campaign",
    body=CreateCampaign,
    response=CampaignDetail,
)
def create_campaign(call: Call) -> CampaignDetail:
    body: CreateCampaign = call.body
    create = flows.create if family_of(body.type or "broadcast") == "flow" else service.create
    campaign = create(call.tenant_id, body, clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    "/v1/campaigns",
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="List campaigns: search, status, channel and edition filters, ordering, cursor",
    query=CampaignListQuery,
    response=ListPage[CampaignView],
)
def list_campaigns(call: Call) -> ListPage[CampaignView]:
    query: CampaignListQuery = call.query
    campaigns, cursor = service.page(
        call.tenant_id, query.filters(), query.ordering, query.limit, query.cursor
    )
    return ListPage[CampaignView](items=[CampaignView.of(c) for c in campaigns], next_cursor=cursor)


@endpoint(
    blueprint,
    _PATH,
    "GET",
    auth="tenant",
    tag="campaigns",
    summary="Get a campaign with its progress (sent, failed, skipped by reason)",
    response=CampaignDetail,
)
def get_campaign(call: Call) -> CampaignDetail:
    campaign = service.get(call.tenant_id, call.params["campaign_id"])
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    _PATH,
    "PATCH",
    auth="tenant",
    tag="campaigns",
    summary="Edit a draft or scheduled campaign (a workflow: draft or paused)",
    body=UpdateCampaign,
    response=CampaignDetail,
)
def update_campaign(call: Call) -> CampaignDetail:
    edit = flows.edit if _is_flow(call) else service.edit
    campaign = edit(call.tenant_id, call.params["campaign_id"], call.body, clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    _PATH,
    "DELETE",
    auth="tenant",
    tag="campaigns",
    status=204,
    summary="Delete a draft or finished campaign (cancel a scheduled or running one first)",
)
def delete_campaign(call: Call) -> None:
    delete = flows.delete if _is_flow(call) else service.delete
    delete(call.tenant_id, call.params["campaign_id"], clock.now())


def _is_flow(call: Call) -> bool:
    """Whether the campaign the path names is of the flow family (its use cases differ;
    a campaign never changes family). 404 for an unknown id."""
    return service.get(call.tenant_id, call.params["campaign_id"]).family == "flow"


# -- actions ---------------------------------------------------------------------------
@endpoint(
    blueprint,
    f"{_PATH}/schedule",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Schedule a draft, or reschedule a scheduled campaign",
    body=ScheduleCampaign,
    response=CampaignDetail,
)
def schedule_campaign(call: Call) -> CampaignDetail:
    body: ScheduleCampaign = call.body
    campaign = service.schedule(
        call.tenant_id, call.params["campaign_id"], body.scheduled_at, body.timezone, clock.now()
    )
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/send",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Send a draft or scheduled campaign now",
    response=CampaignDetail,
)
def send_campaign(call: Call) -> CampaignDetail:
    campaign = service.send_now(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/pause",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Pause a sending campaign (remaining batches wait) or an active workflow",
    response=CampaignDetail,
)
def pause_campaign(call: Call) -> CampaignDetail:
    pause = flows.pause if _is_flow(call) else service.pause
    campaign = pause(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/resume",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Resume a paused campaign where it stopped (a workflow: active again)",
    response=CampaignDetail,
)
def resume_campaign(call: Call) -> CampaignDetail:
    resume = flows.resume if _is_flow(call) else service.resume
    campaign = resume(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/cancel",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Cancel a campaign that is not finished: nothing more is sent",
    response=CampaignDetail,
)
def cancel_campaign(call: Call) -> CampaignDetail:
    cancel = flows.cancel if _is_flow(call) else service.cancel
    campaign = cancel(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/test",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Send the campaign to the given addresses only (not counted, in any state)",
    body=TestSend,
    response=TestSendResults,
)
def send_test_messages(call: Call) -> TestSendResults:
    body: TestSend = call.body
    decided = service.check_test_send(call.tenant_id, call.params["campaign_id"], body.addresses)
    limits.charge_test_send(call.tenant_id, decided.campaign.channel, decided.addresses)
    return TestSendResults(results=send_test(call.tenant_id, decided.campaign, decided.addresses))
