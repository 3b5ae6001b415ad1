"""Campaigns: create, list, read, edit and delete them, and move them through their states.

Actions are sub-resources (``POST /v1/campaigns/{id}/schedule``, ``/send``, ``/pause``,
``/resume``, ``/cancel``, ``/test``); an action the campaign's state does not allow is a
409 naming that state. Before a campaign may be scheduled or sent, every list, segment,
template and sender it names must exist, and templates and senders must be of the
campaign's channel (422 naming the position, e.g. ``template_ids.1``). The state machine
and scheduling design are in docs/campaigns.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from chalice import Blueprint
from pydantic import BeforeValidator, Field, TypeAdapter, computed_field
from pydantic import ValidationError as PydanticValidationError

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.channels.http import check_url
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
    check_channels,
    check_pools,
    edit,
)
from chalicelib.domain.contacts import EmailAddress, PhoneNumber, TimezoneName
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.senders import Sender
from chalicelib.domain.templates import Template
from chalicelib.pipeline import scheduling
from chalicelib.pipeline.sender import TestSendResult, send_test
from chalicelib.store import campaigns as store
from chalicelib.store.counters import read_counts, skipped_by_reason
from chalicelib.store.lists import get_lists
from chalicelib.store.segments import get_segments
from chalicelib.store.senders import get_sender
from chalicelib.store.templates import get_template

blueprint = Blueprint(__name__)
_PATH = "/v1/campaigns/{campaign_id}"
TEST_ADDRESSES_MAX = 10
_ADDRESS_TYPES: dict[str, TypeAdapter[str]] = {
    "email": TypeAdapter(EmailAddress),
    "sms": TypeAdapter(PhoneNumber),
}


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
    planned_batches: int | None = Field(default=None, exclude=True)
    planning_done: bool = Field(default=False, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def template_ids(self) -> list[str]:
        return self.main_step.template_ids

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sender_ids(self) -> list[str]:
        return self.main_step.sender_ids

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
            counts = read_counts(tenant_id, campaign.id)
            values.update(
                sent=counts.get("sent", 0),
                failed=counts.get("failed", 0),
                skipped=skipped_by_reason(counts),
            )
        return cls.model_validate(values)


# -- checks ----------------------------------------------------------------------------
def check_sendable(tenant_id: str, campaign: Campaign) -> None:
    """422 naming the first list, segment, template or sender that is missing or of the
    wrong channel: what must hold before a campaign may be scheduled or sent."""
    audience = campaign.audience
    sources = (
        ("list", "list_ids", audience.list_ids, get_lists),
        ("segment", "segment_ids", audience.segment_ids, get_segments),
        ("list", "within_list_ids", audience.within_list_ids, get_lists),
    )
    for kind, field, ids, read in sources:
        found = read(tenant_id, ids) if ids else {}
        for index, source_id in enumerate(ids):
            if source_id not in found:
                raise ValidationFailed(
                    f"{kind} '{source_id}' not found", field=f"audience.{field}.{index}"
                )
    _check_content(tenant_id, campaign)


def check_callback(fields: CampaignFields) -> None:
    """422 when ``event_callback`` aims at an address Herald must never call (SSRF).

    The URL's shape is checked by the model; where it points needs DNS and the
    loopback setting, so that half runs here, on every API that accepts the field.
    """
    if fields.event_callback:
        check_url(fields.event_callback, field="event_callback")


def create_checked(tenant_id: str, fields: NewCampaign, now: datetime) -> Campaign:
    """Create a draft campaign (every API creates so)."""
    check_callback(fields)
    return store.create_campaign(tenant_id, fields, now)


def edit_checked(
    tenant_id: str, campaign_id: str, fields: CampaignFields, now: datetime
) -> Campaign:
    """Apply an edit; a scheduled campaign must stay ready to start (every API edits so)."""
    check_callback(fields)
    current = store.get_campaign(tenant_id, campaign_id)
    if current.status == "scheduled":
        check_sendable(tenant_id, edit(current, fields, now))
    return store.update_campaign(tenant_id, campaign_id, fields, now)


def schedule_checked(
    tenant_id: str, campaign_id: str, when: datetime, timezone: str | None, now: datetime
) -> Campaign:
    """Schedule (or reschedule) a campaign once everything it names is there to send."""
    check_sendable(tenant_id, store.get_campaign(tenant_id, campaign_id))
    return scheduling.schedule_campaign(tenant_id, campaign_id, when, timezone, now)


def send_checked(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Send a draft or scheduled campaign now, once everything it names is there to send."""
    check_sendable(tenant_id, store.get_campaign(tenant_id, campaign_id))
    return scheduling.send_now(tenant_id, campaign_id, now)


def _check_content(tenant_id: str, campaign: Campaign) -> None:
    check_channels(
        campaign,
        _channels(get_template, tenant_id, campaign.template_ids),
        _channels(get_sender, tenant_id, campaign.sender_ids),
    )


def _channels(
    read: Callable[[str, str], Template | Sender], tenant_id: str, ids: list[str]
) -> dict[str, str]:
    """The channel of each id that exists (a pool has at most 20: one GetItem each)."""
    found: dict[str, str] = {}
    for item_id in ids:
        try:
            found[item_id] = read(tenant_id, item_id).channel
        except NotFound:
            continue
    return found


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
    campaign = create_checked(call.tenant_id, call.body, clock.now())
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
    campaigns, cursor = store.list_campaigns(
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
    campaign = store.get_campaign(call.tenant_id, call.params["campaign_id"])
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    _PATH,
    "PATCH",
    auth="tenant",
    tag="campaigns",
    summary="Edit a draft or scheduled campaign",
    body=UpdateCampaign,
    response=CampaignDetail,
)
def update_campaign(call: Call) -> CampaignDetail:
    campaign = edit_checked(call.tenant_id, call.params["campaign_id"], call.body, clock.now())
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
    store.delete_campaign(call.tenant_id, call.params["campaign_id"])


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
    campaign = schedule_checked(
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
    campaign = send_checked(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/pause",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Pause a sending campaign: remaining batches wait",
    response=CampaignDetail,
)
def pause_campaign(call: Call) -> CampaignDetail:
    campaign = store.apply_action(call.tenant_id, call.params["campaign_id"], "pause", clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/resume",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Resume a paused campaign where it stopped",
    response=CampaignDetail,
)
def resume_campaign(call: Call) -> CampaignDetail:
    campaign = store.apply_action(call.tenant_id, call.params["campaign_id"], "resume", clock.now())
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
    campaign = scheduling.cancel(call.tenant_id, call.params["campaign_id"], clock.now())
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
    campaign = store.get_campaign(call.tenant_id, call.params["campaign_id"])
    address = _ADDRESS_TYPES[campaign.channel]
    addresses = []
    for index, given in enumerate(body.addresses):
        try:
            addresses.append(address.validate_python(given))
        except PydanticValidationError as error:
            message = error.errors(include_url=False)[0]["msg"]
            raise ValidationFailed(
                f"not a valid {campaign.channel} address: {message}", field=f"addresses.{index}"
            ) from None
    check_pools(campaign)
    _check_content(call.tenant_id, campaign)
    return TestSendResults(results=send_test(call.tenant_id, campaign, addresses))
