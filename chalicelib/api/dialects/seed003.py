"""Seed 003: ``/campaign/<campaign>`` with numeric ids and its own campaign states, over Herald.

Numbers: every campaign, list, segment and sender has a tenant-scoped integer beside its
native id (``chalicelib.store.numbering``); this API speaks only in those. A ``domain``
is a sender (the seed's bounce domain: an email sender whose SES identity is verified;
an SMS sender makes an SMS campaign). ``list`` with ``segments[]`` targets the segments'
contacts within the list (an intersection: ``Audience.within_list_ids``).

States read the seed's arrows literally: ``DRAFT⮂SCHEDULED⮂READY⇒SENDING⇒(DONE|ERROR)``,
``⮂`` moves are a request's, ``⇒`` happen by themselves. READY is armed (it starts at
``when`` by itself); SCHEDULED holds a time and never sends. ``when`` alone never changes
the state (``state_of``):

=========  ====================================  =================  =======================
state      native campaign                       sends by itself?   a request may move to
=========  ====================================  =================  =======================
DRAFT      draft (may hold a planned ``when``)    no                 SCHEDULED
SCHEDULED  draft, held, holding its ``when``      no                 DRAFT, READY
READY      scheduled: starts at ``when``          yes, at ``when``   SCHEDULED
SENDING    calculating, sending or paused        (DONE or ERROR)    none
DONE       sent                                  (final)            none
ERROR      failed or cancelled                   (final)            none
=========  ====================================  =================  =======================

Moving to READY with no ``when``, or one already past, starts the campaign at once.
Everything else is a 409 naming the current state. A request's edit and move are one
use case of ``chalicelib.services.campaigns``, decided in full before anything is
written, so a refused one writes nothing. The decisions are written up in
docs/api-seed-003.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

from chalice import Blueprint
from pydantic import AliasChoices, BeforeValidator, Field, PositiveInt, RootModel

from chalicelib.api.dialects.common import fields_renamed, native
from chalicelib.api.models import ApiModel, Input
from chalicelib.api.routing import FORM, JSON, Call, tenant_routes
from chalicelib.domain import clock
from chalicelib.domain.campaigns import (
    Audience,
    CallbackUrl,
    Campaign,
    CampaignFields,
    CampaignName,
    CampaignStatus,
    Channel,
    IdPool,
    NewCampaign,
    ScheduledTime,
    resolve_scheduled_at,
)
from chalicelib.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from chalicelib.domain.lists import ContactList
from chalicelib.domain.segments import Segment
from chalicelib.domain.senders import Sender, usability
from chalicelib.services import campaigns as service
from chalicelib.services import references

blueprint = Blueprint(__name__)
TAG = "seed 003: /campaign"
_BODIES = (JSON, FORM)
_NUMBER = re.compile(r"^[1-9][0-9]{0,15}$")
T = TypeVar("T")

State = Literal["DRAFT", "SCHEDULED", "READY", "SENDING", "DONE", "ERROR"]
STATES: tuple[State, ...] = get_args(State)
_STATE_OF_STATUS: dict[CampaignStatus, State] = {
    "scheduled": "READY",
    "calculating": "SENDING",
    "sending": "SENDING",
    "paused": "SENDING",
    "sent": "DONE",
    "failed": "ERROR",
    "cancelled": "ERROR",
}
Step = Literal["hold", "release", "arm", "disarm"]
# The seed's two-way arrows: the moves a request may make (see ``_translated``).
MOVES: dict[tuple[State, State], Step] = {
    ("DRAFT", "SCHEDULED"): "hold",
    ("SCHEDULED", "DRAFT"): "release",
    ("SCHEDULED", "READY"): "arm",
    ("READY", "SCHEDULED"): "disarm",
}
# A native field an error names → the parameter that set it.
_SEED_FIELDS = {
    "scheduled_at": "when",
    "template_ids": "templates[]",
    "sender_ids": "domain",
    "channel": "domain",
    "audience": "list",
    "status": "state",
}
CREATED_AS: frozenset[State] = frozenset({"DRAFT", "SCHEDULED", "READY"})
EDITABLE: frozenset[State] = frozenset({"DRAFT", "SCHEDULED", "READY"})
# A READY campaign is cancelled before it is deleted, so it never starts.
DELETABLE: frozenset[State] = frozenset(STATES) - {"SENDING"}
_BY_ITSELF: dict[State, str] = {
    "READY": "it becomes SENDING by itself",
    "SENDING": "it becomes DONE or ERROR by itself",
    "DONE": "DONE is final",
    "ERROR": "ERROR is final",
}


def state_of(campaign: Campaign) -> State:
    """The seed state of a campaign: a held draft is SCHEDULED, a scheduled one READY."""
    if campaign.status == "draft":
        return "SCHEDULED" if campaign.held else "DRAFT"
    return _STATE_OF_STATUS[campaign.status]


# -- errors ----------------------------------------------------------------------------
class StateRefused(InvalidTransition):
    """A move the seed's state diagram does not let a request make (409)."""

    def __init__(self, current: State, requested: str) -> None:
        super().__init__(current, requested, field="state")
        allowed = [target for (source, target) in MOVES if source == current]
        reasons = [f"a request may move it to {' or '.join(allowed)}"] if allowed else []
        reasons += [_BY_ITSELF[current]] if current in _BY_ITSELF else []
        self.message = (
            f"cannot move from {current} to {requested}: the campaign is {current}; "
            + "; ".join(reasons)
        )
        self.args = (self.message,)


class StateLocked(Conflict):
    """A change a campaign in this state cannot take (409, naming the state)."""

    code = "campaign_locked"

    def __init__(self, current: State, operation: str, allowed: frozenset[State]) -> None:
        states = ", ".join(s for s in STATES if s in allowed)
        super().__init__(
            f"a {current} campaign cannot be {operation}; only {states} campaigns can",
            field="state",
        )


def _seed_terms() -> AbstractContextManager[None]:
    """Name a refused native field as this API does (``scheduled_at`` → ``when``…)."""

    def rename(native_field: str) -> str | None:
        if native_field.startswith("audience.segment_ids"):
            return "segments[]" + native_field.removeprefix("audience.segment_ids")
        head, dot, rest = native_field.partition(".")
        if head == "audience":
            return _SEED_FIELDS[head]
        return _SEED_FIELDS.get(head, head) + dot + rest

    return fields_renamed(rename)


@contextmanager
def _in_seed_states(tenant_id: str, campaign_id: str, requested: str) -> Iterator[None]:
    """A native refusal (the campaign moved meanwhile, e.g. the planner started it) told
    in the seed's states."""
    try:
        yield
    except InvalidTransition:
        current = state_of(service.get(tenant_id, campaign_id))
        raise StateRefused(current, requested) from None


# -- shapes ----------------------------------------------------------------------------
def _blank_is_none(value: Any) -> Any:
    """A form sends an empty value for "none"."""
    return None if value == "" else value


def _as_list(value: Any) -> Any:
    """``segments[]`` once, repeated, or empty (``segments[]=``: no segments)."""
    if isinstance(value, (str, int)):
        value = [value]
    if isinstance(value, list):
        return [item for item in value if item != ""]
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


OptionalNumber = Annotated[PositiveInt | None, BeforeValidator(_blank_is_none)]


class Seed003CampaignParams(Input):
    """POST and PUT parameters, form-encoded or JSON. Those absent stay as they are."""

    name: CampaignName | None = Field(default=None, description="Campaign name")
    domain: OptionalNumber = Field(
        default=None, description="Domain id: a sender (email: verified by SES)."
    )
    list_number: OptionalNumber = Field(
        default=None, alias="list", description="ID of the contact list targeted"
    )
    segments: Annotated[list[PositiveInt] | None, BeforeValidator(_as_list)] = Field(
        default=None,
        validation_alias=AliasChoices("segments[]", "segments"),
        description="IDs of segments within the list (repeatable); none: the whole list.",
    )
    state: Annotated[State | None, BeforeValidator(_upper)] = Field(
        default=None, description="DRAFT, SCHEDULED or READY (SENDING, DONE, ERROR by itself)."
    )
    when: Annotated[ScheduledTime | None, BeforeValidator(_blank_is_none)] = Field(
        default=None, description="Scheduled send time: Unix seconds or ISO 8601."
    )
    event_callback: Annotated[CallbackUrl | None, BeforeValidator(_blank_is_none)] = Field(
        default=None, description="URL called back (form POST) when events occur."
    )
    templates: IdPool | None = Field(
        default=None,
        validation_alias=AliasChoices("templates[]", "templates"),
        description="Herald extension: the campaign's template ids (native ids).",
    )
    id: Any = Field(
        default=None,
        description="Read-only, accepted so that a GET can be sent back: the campaign's own "
        "id is ignored, another is 422.",
    )
    herald: Any = Field(default=None, description="Read-only (what GET shows): ignored.")


class Seed003HeraldFields(ApiModel):
    """Herald's own fields of the campaign: an extension, not part of the seed."""

    id: str = Field(description="The native id (/v1/campaigns/{id}).")
    status: CampaignStatus
    channel: Channel
    templates: list[str]
    total_recipients: int | None


class Seed003Campaign(ApiModel):
    """The campaign: the seed's fields, and Herald's under ``herald``."""

    id: int
    name: str
    domain: int | None
    list_number: int | None = Field(serialization_alias="list")
    segments: list[int]
    state: State
    when: int | None = Field(description="Unix seconds")
    event_callback: str | None
    herald: Seed003HeraldFields


class Seed003NativeRef(ApiModel):
    id: str = Field(description="The native id.")


class Seed003List(ApiModel):
    id: int
    name: str
    description: str
    member_count: int
    herald: Seed003NativeRef


class Seed003Segment(ApiModel):
    id: int
    name: str
    description: str
    herald: Seed003NativeRef


class Seed003Domain(ApiModel):
    """A sender as a seed-003 domain; ``enabled``: usable (email: SES verified it)."""

    id: int
    domain: str | None = Field(description="The email sender's domain (none for SMS).")
    channel: Channel
    enabled: bool
    herald: Seed003NativeRef


class Seed003Lists(RootModel[list[Seed003List]]):
    pass


class Seed003Segments(RootModel[list[Seed003Segment]]):
    pass


class Seed003Domains(RootModel[list[Seed003Domain]]):
    pass


# -- numbers -----------------------------------------------------------------------------
def _number(raw: str, kind: str) -> int:
    """A path's numeric id; anything that is not one is simply not found."""
    if not _NUMBER.match(raw):
        raise NotFound(f"{kind} {raw!r} not found", field=kind)
    return int(raw)


def _campaign(call: Call) -> Campaign:
    number = _number(call.params["campaign"], "campaign")
    return service.get_by_number(call.tenant_id, number, family="broadcast")


def _resolved(kind: str, field: str, read: Callable[[int], T], number: int) -> T:
    """``read(number)``; a missing one is refused as the parameter that named it (422)."""
    try:
        return read(number)
    except NotFound:
        raise ValidationFailed(f"{kind} {number} not found", field=field) from None


def _domain_sender(tenant_id: str, number: int) -> Sender:
    """The sender a ``domain`` names; an email one must be verified by SES (live)."""
    found = _resolved(
        "domain", "domain", lambda n: references.sender_by_number(tenant_id, n), number
    )
    sender = references.with_live_verification(tenant_id, found)
    verdict = usability(sender, sender.verification)
    if not verdict.usable:
        raise ValidationFailed(f"domain {number} cannot send: {verdict.reason}", field="domain")
    return sender


# -- translation -------------------------------------------------------------------------
def _audience(list_id: str | None, segment_ids: list[str]) -> Audience:
    """The seed's list and segments: segments within the list (both), or either alone;
    neither: "If none, campaign sends to all contacts"."""
    if list_id and segment_ids:
        return Audience(segment_ids=segment_ids, within_list_ids=[list_id])
    if list_id:
        return Audience(list_ids=[list_id])
    if segment_ids:
        return Audience(segment_ids=segment_ids)
    return Audience(all_contacts=True)


def _list_id(audience: Audience) -> str | None:
    targeted = audience.within_list_ids or audience.list_ids
    return targeted[0] if targeted else None


def _fields(
    tenant_id: str, params: Seed003CampaignParams, current: Campaign | None
) -> dict[str, Any]:
    """The native fields for the parameters given, each number resolved (422 naming it)."""
    given = params.model_fields_set
    values: dict[str, Any] = {}
    if "name" in given:
        values["name"] = params.name
    if "domain" in given and params.domain is not None:
        sender = _domain_sender(tenant_id, params.domain)
        values.update(sender_ids=[sender.id], channel=sender.channel)
    elif "domain" in given:
        values["sender_ids"] = []
    if current is None:
        values.setdefault("channel", "email")
        values["audience"] = _audience(None, [])
    if "list_number" in given or "segments" in given:
        list_id = _list_id(current.audience) if current else None
        segment_ids = list(current.audience.segment_ids) if current else []
        if "list_number" in given:
            list_id = (
                _resolved(
                    "list",
                    "list",
                    lambda n: references.contact_list_by_number(tenant_id, n).id,
                    number,
                )
                if (number := params.list_number) is not None
                else None
            )
        if "segments" in given:
            segment_ids = [
                _resolved(
                    "segment",
                    f"segments[].{index}",
                    lambda n: references.segment_by_number(tenant_id, n).id,
                    number,
                )
                for index, number in enumerate(params.segments or [])
            ]
        values["audience"] = _audience(list_id, segment_ids)
    if "event_callback" in given:
        values["event_callback"] = params.event_callback
    if "templates" in given:
        values["template_ids"] = params.templates or []
    return values


@dataclass(frozen=True)
class _Request:
    """What a request asks of the campaign besides its edit: a native move, a plan."""

    move: service.Move | None = None
    plan: service.Plan | None = None

    @property
    def empty(self) -> bool:
        return self.move is None and self.plan is None


def _armed(at: datetime | None, now: datetime) -> _Request:
    """READY: starts at ``at`` by itself, or at once when there is none or it is past."""
    if at is None or at <= now:
        return _Request(move=service.Move("send_now"))
    return _Request(move=service.Move("schedule", at))


def _translated(
    state: State, target: State, when: datetime | None, held_at: datetime | None, now: datetime
) -> _Request:
    """The native move and plan for ``state`` → ``target`` with a new ``when`` (None: none
    given) on a campaign holding ``held_at``; StateRefused for a move no arrow allows."""
    if target == state:
        if when is None:
            return _Request()
        if state == "READY":
            return _armed(when, now)
        if state not in EDITABLE:
            raise StateLocked(state, "given a new when", EDITABLE)
        return _Request(plan=service.Plan(when=when))
    step = MOVES.get((state, target))
    if step is None:
        raise StateRefused(state, target)
    at = when or held_at
    if step == "hold":
        if at is None:
            raise ValidationFailed("when is required to make the campaign SCHEDULED", field="when")
        return _Request(plan=service.Plan(when=at, held=True))
    if step == "release":
        return _Request(plan=service.Plan(when=when, held=False))
    if step == "arm":
        return _armed(at, now)
    return _Request(move=service.Move("unschedule"), plan=service.Plan(when=at, held=True))


def _new_when(
    params: Seed003CampaignParams, timezone: str, held_at: datetime | None
) -> datetime | None:
    """``when`` as an instant, None when it was not given or is the time already held."""
    if params.when is None:
        return None
    when = resolve_scheduled_at(params.when, timezone)
    return None if when == held_at else when


# -- views -------------------------------------------------------------------------------
def _sender_number(tenant_id: str, sender_ids: list[str]) -> int | None:
    if not sender_ids:
        return None
    try:
        return references.sender(tenant_id, sender_ids[0]).number
    except NotFound:
        return None


def shown(tenant_id: str, campaign: Campaign) -> Seed003Campaign:
    """The seed's view of a campaign (lists, segments and sender read for their numbers)."""
    audience = campaign.audience
    list_id = _list_id(audience)
    lists = references.contact_lists(tenant_id, [list_id]) if list_id else {}
    segments = (
        references.segments_by_id(tenant_id, audience.segment_ids) if audience.segment_ids else {}
    )
    return Seed003Campaign(
        id=campaign.number,
        name=campaign.name,
        domain=_sender_number(tenant_id, campaign.sender_ids),
        list_number=lists[list_id].number if list_id in lists else None,
        segments=[segments[i].number for i in audience.segment_ids if i in segments],
        state=state_of(campaign),
        when=int(campaign.scheduled_at.timestamp()) if campaign.scheduled_at else None,
        event_callback=campaign.event_callback,
        herald=Seed003HeraldFields(
            id=campaign.id,
            status=campaign.status,
            channel=campaign.channel,
            templates=campaign.template_ids,
            total_recipients=campaign.total_recipients,
        ),
    )


def _domain_view(sender: Sender) -> Seed003Domain:
    return Seed003Domain(
        id=sender.number,
        domain=sender.domain,
        channel=sender.channel,
        enabled=usability(sender, sender.verification).usable,
        herald=Seed003NativeRef(id=sender.id),
    )


# -- campaign routes ---------------------------------------------------------------------
_route = tenant_routes(blueprint, TAG)


@_route(
    "/campaign",
    "POST",
    "Create a campaign (state DRAFT, SCHEDULED with when, or READY); returns it",
    body=Seed003CampaignParams,
    response=Seed003Campaign,
    content_types=_BODIES,
    query_in_body=True,
)
def create_campaign(call: Call) -> Seed003Campaign:
    params: Seed003CampaignParams = call.body
    tenant_id, now = call.tenant_id, clock.now()
    target: State = params.state or "DRAFT"
    if target not in CREATED_AS:
        raise ValidationFailed(
            f"a campaign is created DRAFT, SCHEDULED or READY; {target} comes by itself",
            field="state",
        )
    with _seed_terms():
        when = _new_when(params, "UTC", None)
        request = (
            _armed(when, now)
            if target == "READY"
            else _translated("DRAFT", target, when, None, now)
        )
        fields = native(NewCampaign, _fields(tenant_id, params, None))
        campaign = service.create(
            tenant_id,
            fields,
            now,
            move=request.move,
            plan=request.plan,
            use_default_sender=True,
        )
    return shown(tenant_id, campaign)


@_route("/campaign/{campaign}", "GET", "Get a campaign", response=Seed003Campaign)
def get_campaign(call: Call) -> Seed003Campaign:
    return shown(call.tenant_id, _campaign(call))


@_route(
    "/campaign/{campaign}",
    "PUT",
    "Edit a campaign and/or move its state; returns it",
    body=Seed003CampaignParams,
    response=Seed003Campaign,
    content_types=_BODIES,
    query_in_body=True,
)
def update_campaign(call: Call) -> Seed003Campaign:
    params: Seed003CampaignParams = call.body
    tenant_id, current = call.tenant_id, _campaign(call)
    now = clock.now()
    state = state_of(current)
    _check_id(params, current)
    target: State = params.state or state
    with _seed_terms():
        when = _new_when(params, current.timezone, current.scheduled_at)
    if when is None and target == "DRAFT" == state and _clears_when(params):
        request = _Request(plan=service.Plan(clear=True))
    else:
        request = _translated(state, target, when, current.scheduled_at, now)
    values = _fields(tenant_id, params, current)
    if values and state not in EDITABLE:
        raise StateLocked(state, "edited", EDITABLE)
    if not values and request.empty:
        return shown(tenant_id, current)
    with _seed_terms(), _in_seed_states(tenant_id, current.id, target):
        fields = native(CampaignFields, values)
        campaign = service.edit(
            tenant_id,
            current.id,
            fields,
            now,
            move=request.move,
            plan=request.plan,
            use_default_sender=True,
        )
    return shown(tenant_id, campaign)


def _check_id(params: Seed003CampaignParams, current: Campaign) -> None:
    """``id`` is read-only: the campaign's own (a GET sent back) is ignored, another refused."""
    if params.id is not None and str(params.id).strip() != str(current.number):
        raise ValidationFailed(
            f"id {params.id} is not this campaign's ({current.number}): it cannot change",
            field="id",
        )


def _clears_when(params: Seed003CampaignParams) -> bool:
    """``when`` sent empty (null, or a blank form value): a DRAFT drops the time it holds."""
    return "when" in params.model_fields_set and params.when is None


@_route("/campaign/{campaign}", "DELETE", "Delete a campaign; returns it", response=Seed003Campaign)
def delete_campaign(call: Call) -> Seed003Campaign:
    tenant_id, current = call.tenant_id, _campaign(call)
    state = state_of(current)
    if state not in DELETABLE:
        raise StateLocked(state, "deleted (it finishes as DONE or ERROR)", DELETABLE)
    deleted = shown(tenant_id, current)
    with _in_seed_states(tenant_id, current.id, "deleted"):  # SCHEDULED, READY: cancelled first
        service.delete(tenant_id, current.id, clock.now(), cancel_first=True)
    return deleted


# -- what campaigns refer to: lists, segments, domains (read-only) ------------------------
@_route("/list", "GET", "Contact lists with their numeric ids", response=Seed003Lists)
def all_lists(call: Call) -> Seed003Lists:
    lists = references.all_contact_lists(call.tenant_id)
    return Seed003Lists([_list_view(item) for item in sorted(lists, key=lambda item: item.number)])


@_route("/list/{list}", "GET", "One contact list", response=Seed003List)
def one_list(call: Call) -> Seed003List:
    return _list_view(
        references.contact_list_by_number(call.tenant_id, _number(call.params["list"], "list"))
    )


def _list_view(item: ContactList) -> Seed003List:
    return Seed003List(
        id=item.number,
        name=item.name,
        description=item.description,
        member_count=item.member_count,
        herald=Seed003NativeRef(id=item.id),
    )


@_route("/segment", "GET", "Seed003Segments with their numeric ids", response=Seed003Segments)
def all_segments(call: Call) -> Seed003Segments:
    segments = references.all_segments(call.tenant_id)
    return Seed003Segments(
        [_segment_view(item) for item in sorted(segments, key=lambda s: s.number)]
    )


@_route("/segment/{segment}", "GET", "One segment", response=Seed003Segment)
def one_segment(call: Call) -> Seed003Segment:
    number = _number(call.params["segment"], "segment")
    return _segment_view(references.segment_by_number(call.tenant_id, number))


def _segment_view(item: Segment) -> Seed003Segment:
    return Seed003Segment(
        id=item.number,
        name=item.name,
        description=item.description,
        herald=Seed003NativeRef(id=item.id),
    )


@_route(
    "/domain",
    "GET",
    "Seed003Domains (senders), verification as last checked",
    response=Seed003Domains,
)
def all_domains(call: Call) -> Seed003Domains:
    senders = references.all_senders(call.tenant_id)
    return Seed003Domains([_domain_view(s) for s in sorted(senders, key=lambda s: s.number)])


@_route(
    "/domain/{domain}",
    "GET",
    "One domain (sender), verification checked live",
    response=Seed003Domain,
)
def one_domain(call: Call) -> Seed003Domain:
    sender = references.sender_by_number(call.tenant_id, _number(call.params["domain"], "domain"))
    return _domain_view(references.with_live_verification(call.tenant_id, sender))
