"""Seed 002: a Django REST framework style campaign API at ``/campaigns/``, over Herald.

The seed's campaign is a Herald campaign seen through other names: ``organization_id`` is
the tenant, ``edition_id`` the campaign's edition scope, ``segment_id`` its one segment,
``email_message_id`` its email template, ``sms_body`` an SMS template Herald stores for it,
``paused`` (which the seed lacks) shows as ``sending``. Every operation calls the use cases
the native routes call (``chalicelib.services``); nothing here decides what a campaign may
do, and nothing here writes.

Envelopes follow DRF: lists are ``{count, next, previous, results}`` with absolute links,
validation errors are 400 ``{"<field>": ["message"]}``, other errors ``{"detail": ...}``,
and every error also keeps Herald's ``error`` object. DRF routers serve a trailing slash;
API Gateway (and Chalice's local gateway) match ``/campaigns/`` to ``/campaigns``, so one
route serves both. The decisions are written up in docs/api-seed-002.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args
from zoneinfo import ZoneInfo

from chalice import Blueprint
from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from chalicelib.api.dialects.common import (
    drf_errors,
    fields_renamed,
    native,
    page_link,
    page_number,
)
from chalicelib.api.links import route_url
from chalicelib.api.models import ApiModel, Input
from chalicelib.api.routing import FORM, JSON, Call, Handler, tenant_routes
from chalicelib.domain import clock
from chalicelib.domain.campaigns import (
    Audience,
    Campaign,
    CampaignFields,
    CampaignFilter,
    CampaignName,
    CampaignStatus,
    Channel,
    EditionId,
    NewCampaign,
    ResourceId,
    ScheduledTime,
    resolve_scheduled_at,
    sort_key,
)
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.feedback import campaign_stats
from chalicelib.domain.templates import SMS_SOURCE_MAX, SmsTemplate
from chalicelib.services import campaigns as service
from chalicelib.services import references

blueprint = Blueprint(__name__)
# The channels the seed's content fields (email_message_id, sms_body) can fill; a campaign
# of another channel (made natively) is listed and read here, never made.
SeedChannel = Literal["email", "sms"]
TAG = "seed 002: /campaigns/"
_COLLECTION = "/campaigns"
_ITEM = "/campaigns/{id}"
_BODIES = (JSON, FORM)  # DRF's default parsers take both
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
_VIEW_THREADS = 8  # counters of a page's campaigns are read concurrently

Status = Literal["draft", "scheduled", "calculating", "sending", "sent", "failed", "cancelled"]
STATUS_OF: dict[CampaignStatus, Status] = {
    "draft": "draft",
    "scheduled": "scheduled",
    "calculating": "calculating",
    "sending": "sending",
    "paused": "sending",  # the seed has no pause: to its clients the campaign is sending
    "sent": "sent",
    "failed": "failed",
    "cancelled": "cancelled",
}
Ordering = Literal[
    "created",
    "-created",
    "modified",
    "-modified",
    "name",
    "-name",
    "scheduled_at",
    "-scheduled_at",
    "total_recipients",
    "-total_recipients",
]
# The native field an error names → the seed field a client sent (None: not a field).
_SEED_FIELDS = {
    "audience": "segment_id",
    "sender_ids": "sender_id",
    "body": "sms_body",  # the SMS template made of it
    "status": None,
}


# -- shapes ----------------------------------------------------------------------------
class Seed002Campaign(ApiModel):
    """A campaign with exactly the seed's fields."""

    id: str
    name: str = Field(description="Human-readable campaign name")
    organization_id: str
    edition_id: str | None
    channel: Channel = Field(description="Delivery channel")
    created: datetime
    modified: datetime
    email_message_id: str | None
    sms_body: str | None
    status: Status = Field(description="Current campaign status")
    scheduled_at: datetime | None = Field(
        description="When to send (stored UTC, displayed in the campaign's timezone)"
    )
    total_recipients: int = Field(description="Total number of recipients to send to")
    sent_count: int = Field(description="Number of messages successfully sent")
    failed_count: int = Field(description="Number of messages that failed to send")
    user_count: int | None = Field(description="Snapshot count of users at send time")
    error_message: str | None = Field(description="Error details if campaign failed")
    started_at: datetime | None = Field(description="When sending started")
    completed_at: datetime | None = Field(description="When sending finished")


class Seed002CampaignPage(ApiModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Seed002Campaign]


class Seed002Stats(ApiModel):
    """The seed's stats; rates are fractions (0.0 to 1.0) as Herald's stats define them."""

    total_recipients: int
    sent: int
    failed: int
    delivered: int
    opened: int
    clicked: int
    bounced: int
    unsubscribed: int
    delivery_rate: float
    open_rate: float
    click_rate: float
    unsubscribe_rate: float


def _page_size(value: Any) -> int:
    """DRF's ``PageNumberPagination``: a ``page_size`` over the maximum is the maximum; one
    that is not a positive whole number is the default."""
    try:
        size = int(str(value).strip())
    except ValueError:
        return PAGE_SIZE_DEFAULT
    return min(size, PAGE_SIZE_MAX) if size > 0 else PAGE_SIZE_DEFAULT


def _known_orderings(value: Any) -> Any:
    """DRF's ``OrderingFilter``: comma-separated fields, each ``-`` for descending; one it
    does not know is dropped, and with none left the default applies."""
    if not isinstance(value, str):
        return value
    known = [part.strip() for part in value.split(",") if part.strip() in get_args(Ordering)]
    return known or ["-created"]


class Seed002ListQuery(Input):
    """The seed's filters; any other parameter (``format``, a cache-buster ``_``,
    ``limit``/``offset``) is ignored, as DRF and django-filter ignore it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    channel: Channel | None = Field(default=None, description="Delivery channel")
    edition_id: str | None = Field(default=None, max_length=64)
    ordering: Annotated[list[Ordering], BeforeValidator(_known_orderings)] = Field(
        default=["-created"],
        description="Ordering: fields separated by commas, '-' for descending (e.g. "
        "'-scheduled_at,name'); unknown fields are ignored",
    )
    organization_id: str | None = Field(default=None, max_length=64)
    page: str = Field(
        default="1", description="A page number within the paginated result set (or 'last')."
    )
    page_size: Annotated[int, BeforeValidator(_page_size)] = Field(
        default=PAGE_SIZE_DEFAULT,
        description="Number of results to return per page (default: 100, at most 1000).",
    )
    search: str | None = Field(
        default=None,
        max_length=200,
        description="Search by campaign name: every word (space or comma separated) must occur",
    )
    status: Status | None = Field(default=None, description="Current campaign status")


_READ_ONLY = "Read-only: accepted and ignored, as Django REST framework does."


class Seed002CampaignPatch(Input):
    """A campaign's writable fields; those absent stay as they are.

    The representation's read-only fields are accepted and ignored (as DRF does), so a
    client may send back what it read. ``edition_id`` is set at creation only.
    """

    name: CampaignName | None = None
    channel: SeedChannel | None = None
    organization_id: str | None = Field(
        default=None, max_length=64, description="Your tenant id (optional); another is 400."
    )
    edition_id: EditionId | None = Field(default=None, description="Set at creation only.")
    segment_id: ResourceId | None = Field(default=None, description="A Herald segment id.")
    email_message_id: ResourceId | None = Field(
        default=None, description="A Herald email template id (email campaigns)."
    )
    sms_body: str | None = Field(
        default=None,
        min_length=1,
        max_length=SMS_SOURCE_MAX,
        description="The SMS text, a template like any other (SMS campaigns).",
    )
    sender_id: ResourceId | None = Field(
        default=None,
        description="Herald extension: the sender to send as (default: the tenant's first "
        "sender of the channel, verified ones first).",
    )
    id: Any = Field(default=None, description=_READ_ONLY)
    created: Any = Field(default=None, description=_READ_ONLY)
    modified: Any = Field(default=None, description=_READ_ONLY)
    status: Any = Field(default=None, description=_READ_ONLY)
    scheduled_at: ScheduledTime | None = Field(
        default=None,
        description="When to send: a draft holds it (/schedule/ without a body sends then); "
        "a scheduled campaign is rescheduled to it.",
    )
    total_recipients: Any = Field(default=None, description=_READ_ONLY)
    sent_count: Any = Field(default=None, description=_READ_ONLY)
    failed_count: Any = Field(default=None, description=_READ_ONLY)
    user_count: Any = Field(default=None, description=_READ_ONLY)
    error_message: Any = Field(default=None, description=_READ_ONLY)
    started_at: Any = Field(default=None, description=_READ_ONLY)
    completed_at: Any = Field(default=None, description=_READ_ONLY)

    @field_validator("name", "channel")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("This field may not be null.")
        return value


class Seed002CampaignBody(Seed002CampaignPatch):
    """Create and PUT: ``name`` is required; ``channel`` defaults to ``email`` (the seed
    marks nothing required; a campaign needs a name)."""

    name: CampaignName
    channel: SeedChannel = "email"


class Seed002Schedule(Input):
    """The seed shows no body: without one, the campaign's stored ``scheduled_at`` is used."""

    scheduled_at: ScheduledTime | None = None


# -- errors ----------------------------------------------------------------------------
def _seed_terms(channel: str) -> AbstractContextManager[None]:
    """Name a refused field as the seed does (``template_ids`` → ``email_message_id``…)."""

    def rename(native_field: str) -> str | None:
        head = native_field.split(".", 1)[0]
        if head == "template_ids":
            return "email_message_id" if channel == "email" else "sms_body"
        return _SEED_FIELDS.get(head, head)

    return fields_renamed(rename)


# -- translation -------------------------------------------------------------------------
def _check_organization(tenant_id: str, organization_id: str | None) -> None:
    """A body's ``organization_id`` is a foreign key to the caller's own organization."""
    if organization_id is not None and organization_id != tenant_id:
        raise ValidationFailed(
            f'Invalid pk "{organization_id}" - object does not exist.', field="organization_id"
        )


def _segment_audience(tenant_id: str, segment_id: str | None) -> Audience:
    if segment_id is None:
        return Audience()
    try:
        references.segment(tenant_id, segment_id)
    except NotFound:
        raise ValidationFailed(
            f'Invalid pk "{segment_id}" - object does not exist.', field="segment_id"
        ) from None
    return Audience(segment_ids=[segment_id])


def _email_template(tenant_id: str, template_id: str) -> str:
    try:
        template = references.template(tenant_id, template_id)
    except NotFound:
        raise ValidationFailed(
            f'Invalid pk "{template_id}" - object does not exist.', field="email_message_id"
        ) from None
    if template.channel != "email":
        raise ValidationFailed(
            f"template '{template_id}' is an SMS template", field="email_message_id"
        )
    return template.id


def _sender(tenant_id: str, sender_id: str, channel: str) -> str:
    try:
        sender = references.sender(tenant_id, sender_id)
    except NotFound:
        raise ValidationFailed(
            f'Invalid pk "{sender_id}" - object does not exist.', field="sender_id"
        ) from None
    if sender.channel != channel:
        raise ValidationFailed(
            f"sender '{sender_id}' is for {sender.channel}; this campaign sends {channel}",
            field="sender_id",
        )
    return sender.id


def _refuse_foreign_content(body: Seed002CampaignPatch, channel: str) -> None:
    if body.email_message_id is not None and channel != "email":
        raise ValidationFailed(
            "an sms campaign has sms_body, not email_message_id", field="email_message_id"
        )
    if body.sms_body is not None and channel != "sms":
        raise ValidationFailed(
            "an email campaign has email_message_id, not sms_body", field="sms_body"
        )


def _fields(
    tenant_id: str, body: Seed002CampaignPatch, current: Campaign | None
) -> tuple[dict[str, Any], str | None]:
    """The native fields for what ``body`` sets, each checked against the stores, and the
    ``sms_body`` text (the service makes it the campaign's SMS template).

    A channel change without new content clears the template and sender of the other
    channel; an empty ``sms_body`` clears the template.
    """
    given = body.model_fields_set
    _check_organization(tenant_id, body.organization_id)
    channel = body.channel or (current.channel if current else "email")
    _refuse_foreign_content(body, channel)
    switched = current is not None and channel != current.channel
    values: dict[str, Any] = {
        name: getattr(body, name) for name in ("name", "channel") if name in given
    }
    if current is None:
        values["channel"] = channel
    sms_text = None
    if current is None and "edition_id" in given:
        values["edition_id"] = body.edition_id
    if "segment_id" in given:
        values["audience"] = _segment_audience(tenant_id, body.segment_id)
    if "sender_id" in given:
        values["sender_ids"] = (
            [_sender(tenant_id, body.sender_id, channel)] if body.sender_id else []
        )
    elif switched:
        values["sender_ids"] = []
    if channel == "email" and "email_message_id" in given:
        template_id = body.email_message_id
        values["template_ids"] = [_email_template(tenant_id, template_id)] if template_id else []
    elif channel == "sms" and "sms_body" in given:
        sms_text = body.sms_body
        if not sms_text:
            values["template_ids"] = []
    elif switched:
        values["template_ids"] = []
    return values, sms_text


# -- views -------------------------------------------------------------------------------
def _sms_body(tenant_id: str, campaign: Campaign) -> str | None:
    if campaign.channel != "sms" or not campaign.template_ids:
        return None
    try:
        content = references.template(tenant_id, campaign.template_ids[0]).content
    except NotFound:
        return None
    return content.body if isinstance(content, SmsTemplate) else None


def shown(tenant_id: str, campaign: Campaign) -> Seed002Campaign:
    """The seed's view of ``campaign``: its counters once it started, its SMS text."""
    counts = service.counts(tenant_id, campaign)
    email = campaign.channel == "email"
    scheduled_at = campaign.scheduled_at
    return Seed002Campaign(
        id=campaign.id,
        name=campaign.name,
        organization_id=tenant_id,
        edition_id=campaign.edition_id,
        channel=campaign.channel,
        created=campaign.created_at,
        modified=campaign.updated_at,
        email_message_id=campaign.template_ids[0] if email and campaign.template_ids else None,
        sms_body=_sms_body(tenant_id, campaign),
        status=STATUS_OF[campaign.status],
        scheduled_at=scheduled_at.astimezone(ZoneInfo(campaign.timezone)) if scheduled_at else None,
        total_recipients=_to_send(campaign, counts),
        sent_count=counts.get("sent", 0),
        failed_count=counts.get("failed", 0),
        user_count=campaign.total_recipients,
        error_message=campaign.error_message,
        started_at=campaign.started_at,
        completed_at=campaign.completed_at,
    )


def _shown_all(tenant_id: str, campaigns: list[Campaign]) -> list[Seed002Campaign]:
    with ThreadPoolExecutor(max_workers=_VIEW_THREADS) as pool:
        return list(pool.map(lambda campaign: shown(tenant_id, campaign), campaigns))


# -- pagination --------------------------------------------------------------------------
# -- routes ------------------------------------------------------------------------------
_route = tenant_routes(blueprint, TAG, error_envelope=drf_errors)


@_route(_COLLECTION, "GET", "List campaigns", query=Seed002ListQuery, response=Seed002CampaignPage)
def list_campaigns(call: Call) -> Seed002CampaignPage:
    params: Seed002ListQuery = call.query
    if params.organization_id not in (None, call.tenant_id):
        matching: list[Campaign] = []  # a filter on another organization matches nothing
    else:
        statuses = frozenset(n for n, s in STATUS_OF.items() if s == params.status)
        filters = CampaignFilter(
            statuses=statuses,
            channel=params.channel,
            edition_id=params.edition_id,
            family="broadcast",
        )
        found = service.matching(call.tenant_id, filters, "-created")
        words = _search_words(params.search)
        matching = _ordered(
            call.tenant_id,
            [c for c in found if all(w in c.name.casefold() for w in words)],
            params.ordering,
        )
    size = params.page_size
    pages = max(1, -(-len(matching) // size))
    page = page_number(params.page, pages)
    return Seed002CampaignPage(
        count=len(matching),
        next=page_link(call.request, page + 1, route_url(call.request)) if page < pages else None,
        previous=page_link(call.request, page - 1, route_url(call.request)) if page > 1 else None,
        results=_shown_all(call.tenant_id, matching[(page - 1) * size : page * size]),
    )


def _search_words(search: str | None) -> list[str]:
    """DRF's ``SearchFilter`` terms: split on spaces and commas, each must match."""
    return [w.casefold() for w in re.split(r"[\s,]+", search or "") if w]


def _ordered(tenant_id: str, campaigns: list[Campaign], ordering: Sequence[str]) -> list[Campaign]:
    """``campaigns`` (newest first) sorted by each field of ``ordering`` in turn, on the
    values the client sees: ``total_recipients`` as shown (0 before a campaign starts)."""
    shown_totals: dict[str, int] = {}
    if any(o.removeprefix("-") == "total_recipients" for o in ordering):
        with ThreadPoolExecutor(max_workers=_VIEW_THREADS) as pool:
            totals = pool.map(
                lambda c: (c.id, _to_send(c, service.counts(tenant_id, c))), campaigns
            )
            shown_totals = dict(totals)
    result = list(campaigns)
    for field in reversed(ordering):
        name = field.removeprefix("-")
        if name == "total_recipients":
            result.sort(key=lambda c: shown_totals[c.id], reverse=field.startswith("-"))
        else:
            key = cast(Ordering, name)
            result.sort(key=lambda c: sort_key(c, key)[:2], reverse=field.startswith("-"))
    return result


def _to_send(campaign: Campaign, counts: dict[str, int]) -> int:
    """The seed's ``total_recipients``: "Total number of recipients to send to", the
    audience snapshot (``user_count``) less the contacts skipped (suppressed, capped…)."""
    snapshot = campaign.total_recipients or 0
    return max(0, snapshot - sum(service.skipped(counts).values()))


@_route(
    _COLLECTION,
    "POST",
    "Create campaign",
    status=201,
    body=Seed002CampaignBody,
    response=Seed002Campaign,
    content_types=_BODIES,
)
def create_campaign(call: Call) -> Seed002Campaign:
    body: Seed002CampaignBody = call.body
    with _seed_terms(body.channel):
        values, sms_text = _fields(call.tenant_id, body, None)
        fields = native(NewCampaign, values)
        campaign = service.create(call.tenant_id, fields, clock.now(), sms_text=sms_text)
    return shown(call.tenant_id, campaign)


@_route(_ITEM, "GET", "Retrieve campaign", response=Seed002Campaign)
def retrieve_campaign(call: Call) -> Seed002Campaign:
    return shown(call.tenant_id, service.get(call.tenant_id, call.params["id"], family="broadcast"))


def _update(call: Call) -> Seed002Campaign:
    body: Seed002CampaignPatch = call.body
    current = service.get(call.tenant_id, call.params["id"], family="broadcast")
    with _seed_terms(body.channel or current.channel):
        values, sms_text = _fields(call.tenant_id, body, current)
        fields = native(CampaignFields, values)
        move, plan = _new_time(body, current)
        campaign = service.edit(
            call.tenant_id,
            current.id,
            fields,
            clock.now(),
            move=move,
            plan=plan,
            sms_text=sms_text,
        )
    return shown(call.tenant_id, campaign)


def _new_time(
    body: Seed002CampaignPatch, current: Campaign
) -> tuple[service.Move | None, service.Plan | None]:
    """What a ``scheduled_at`` in a PATCH/PUT does: a draft holds it (null: clears it);
    a scheduled campaign is rescheduled to it. The time it has already changes nothing."""
    if "scheduled_at" not in body.model_fields_set:
        return None, None
    given = body.scheduled_at
    if given is not None:
        given = resolve_scheduled_at(given, current.timezone)
    if given == current.scheduled_at:
        return None, None
    if current.status == "scheduled":
        if given is None:
            raise ValidationFailed(
                "a scheduled campaign keeps a time: cancel it, or give a new one",
                field="scheduled_at",
            )
        return service.Move("schedule", given), None
    return None, service.Plan(when=given, clear=given is None)


@_route(
    _ITEM,
    "PUT",
    "Update campaign (name and channel required)",
    body=Seed002CampaignBody,
    response=Seed002Campaign,
    content_types=_BODIES,
)
def replace_campaign(call: Call) -> Seed002Campaign:
    return _update(call)


@_route(
    _ITEM,
    "PATCH",
    "Partially update campaign",
    body=Seed002CampaignPatch,
    response=Seed002Campaign,
    content_types=_BODIES,
)
def patch_campaign(call: Call) -> Seed002Campaign:
    return _update(call)


@_route(
    f"{_ITEM}/cancel", "POST", "Cancel campaign", response=Seed002Campaign, content_types=_BODIES
)
def cancel_campaign(call: Call) -> Seed002Campaign:
    service.get(call.tenant_id, call.params["id"], family="broadcast")
    campaign = service.cancel(call.tenant_id, call.params["id"], clock.now())
    return shown(call.tenant_id, campaign)


@_route(
    f"{_ITEM}/schedule",
    "POST",
    "Schedule campaign (at its scheduled_at, or the body's: ISO 8601 or Unix seconds)",
    body=Seed002Schedule,
    response=Seed002Campaign,
    content_types=_BODIES,
)
def schedule_campaign(call: Call) -> Seed002Campaign:
    campaign_id, body = call.params["id"], call.body
    current = service.get(call.tenant_id, campaign_id, family="broadcast")
    with _seed_terms(current.channel):
        campaign = service.schedule(
            call.tenant_id,
            campaign_id,
            body.scheduled_at,  # none: the campaign's own
            None,
            clock.now(),
            use_default_sender=True,
        )
    return shown(call.tenant_id, campaign)


def _send_now_route(action: str, summary: str) -> Callable[[Handler], Handler]:
    return _route(
        f"{_ITEM}/{action}", "POST", summary, response=Seed002Campaign, content_types=_BODIES
    )


# The seed names no action paths: send_now (DRF's default for a send_now action) is the
# one documented; send and send-now serve clients generated from other router configs.
@_send_now_route("send", "Send campaign now (alias of send_now)")
@_send_now_route("send-now", "Send campaign now (alias of send_now)")
@_send_now_route("send_now", "Send campaign now")
def send_campaign_now(call: Call) -> Seed002Campaign:
    campaign_id = call.params["id"]
    current = service.get(call.tenant_id, campaign_id, family="broadcast")
    with _seed_terms(current.channel):
        campaign = service.send_now(
            call.tenant_id, campaign_id, clock.now(), use_default_sender=True
        )
    return shown(call.tenant_id, campaign)


@_route(f"{_ITEM}/stats", "GET", "Get campaign stats", response=Seed002Stats)
def campaign_stats_view(call: Call) -> Seed002Stats:
    campaign = service.get(call.tenant_id, call.params["id"], family="broadcast")
    counts = service.counts(call.tenant_id, campaign)
    stats = campaign_stats(_to_send(campaign, counts), counts)
    return Seed002Stats.model_validate(stats.model_dump())
