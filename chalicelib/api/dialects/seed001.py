"""Seed 001: a Django REST framework campaign API at ``/email/campaigns/``: sequences.

A seed-001 campaign is a Herald campaign of ``type: "sequence"``, a linear flow compiled
from its steps (``chalicelib.domain.sequences``; the use cases are
``chalicelib.services.sequences``). Every id is a UUID, shown dashed: the campaign's is
its native id's UUID (``cmp_`` + hex), ``company`` is the caller's tenant id, a sender
identity is a Herald email sender (``snd_`` + hex), a step is its send node.

What DRF would do, this does: a body is JSON or a form; unknown and read-only fields are
ignored; every invalid field is reported at once as 400 ``{"field": ["message"]}`` in
DRF's own words; other errors are ``{"detail": ...}`` (401 ``Authentication credentials
were not provided.`` / ``Invalid token.``, 404 ``Not found.``); lists are
``{count, next, previous, results}``; the five counters are strings, as the seed shows
them. The decisions are written up in docs/api-seed-001.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalice import Blueprint, Response
from pydantic import ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from chalicelib.api.dialects.common import drf_errors, fields_renamed, page_link, page_number
from chalicelib.api.errors import json_body
from chalicelib.api.links import route_url
from chalicelib.api.models import ApiModel, Input
from chalicelib.api.routing import FORM, JSON, Call, read_body, tenant_routes
from chalicelib.domain import clock, ids
from chalicelib.domain.campaigns import Campaign, CampaignStatus
from chalicelib.domain.errors import NotFound, Problems, ValidationFailures
from chalicelib.domain.feedback import step_counter
from chalicelib.domain.flows.stats import node_counter
from chalicelib.domain.flows.windows import SendWindow
from chalicelib.domain.sequences import (
    MAX_DELAY_MINUTES,
    SequenceStep,
    sender_pool,
    steps_of,
)
from chalicelib.services import sequences as service

blueprint = Blueprint(__name__)
TAG = "seed 001: /email/campaigns/"
_COLLECTION = "/email/campaigns"
_ITEM = "/email/campaigns/{sequence_id}"
_STEPS = "/email/campaigns/{sequence_id}/steps"
_STEP = "/email/campaigns/{sequence_id}/steps/{step_id}"
_BODIES = (JSON, FORM)
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
SEED_NAME_MAX = 255  # the seed's limit; a stored campaign name has none of its own
TIMEZONE_MAX = 64
STATUSES: tuple[CampaignStatus, ...] = ("draft", "active", "paused", "completed", "cancelled")
COUNTERS = ("sent", "opened", "clicked", "replied")
_TRUE = {True, "1", "true", "True", "TRUE", "yes", "on", "t", "y"}
_FALSE = {False, "0", "false", "False", "FALSE", "no", "off", "f", "n"}
_REQUIRED = "This field is required."
_NULL = "This field may not be null."
_BAD_UUID = "Must be a valid UUID."
_BAD_DATETIME = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
_DETAIL_BY_STATUS = {401: None, 404: "Not found."}


# -- shapes (the OpenAPI document's; values are built by hand below) ----------------------
class Seed001Step(ApiModel):
    id: str
    updated_at: str
    campaign: str
    step_order: int
    subject: str
    body_html: str
    body_text: str
    delay_minutes: int
    is_active: bool
    created_at: str
    sent_count: str = Field(description="Herald extension: this step's counters.")
    unique_opens: str
    unique_clicks: str
    replies: str


class Seed001Campaign(ApiModel):
    id: str
    steps: list[Seed001Step]
    sender_identities: str
    sent_count: str
    unique_opens: str
    unique_clicks: str
    replies: str
    name: str
    updated_at: str
    company: str
    sender_identity_ids: list[str]
    status: str
    description: str
    timezone: str
    allowed_windows: Any
    stop_on_reply: bool
    is_deleted: bool
    created_at: str
    workflow: str | None
    created_by: str | None
    responder_agent: str | None


class Seed001Page(ApiModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Seed001Campaign]


class Seed001StepPage(ApiModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Seed001Step]


class Seed001Body(ApiModel):
    """Any JSON object or form: DRF ignores unknown and read-only fields, so the fields
    are checked by hand (``_campaign_fields``) and every problem is reported."""

    model_config = ConfigDict(extra="allow")


class Seed001ListQuery(Input):
    model_config = ConfigDict(extra="ignore")

    page: str = Field(default="1", description="A page number (or 'last').")
    page_size: str = Field(default=str(PAGE_SIZE_DEFAULT), description="Results per page.")


class Seed001Enrol(Input):
    contact_ids: list[str] = Field(
        min_length=1, max_length=1000, description="Herald contact ids (native or dashed)."
    )


class Seed001EnrolResult(ApiModel):
    contact_id: str
    outcome: str = Field(description="enrolled, already_enrolled or error")
    reason: str | None = Field(description="Why not: not_found, campaign_not_live, …")


class Seed001Enrolled(ApiModel):
    results: list[Seed001EnrolResult] = Field(description="One per contact, in input order.")


# -- DRF's field checks (every field's problems raised together: domain.errors.Problems) --
def _string(value: Any, *, blank: bool, max_length: int | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("Not a valid string.")
    text = str(value).strip()
    if not text and not blank:
        raise ValueError("This field may not be blank.")
    if max_length is not None and len(text) > max_length:
        raise ValueError(f"Ensure this field has no more than {max_length} characters.")
    return text


def _uuid(value: Any) -> str:
    """A UUID in any form DRF's UUIDField takes (hex, dashed, any case), dashed."""
    if not isinstance(value, str):
        raise ValueError(_BAD_UUID)
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError(_BAD_UUID) from None


def _boolean(value: Any) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("Must be a valid boolean.")


def _integer(value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValueError("A valid integer is required.")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError("A valid integer is required.") from None
    if number < low:
        raise ValueError(f"Ensure this value is greater than or equal to {low}.")
    if number > high:
        raise ValueError(f"Ensure this value is less than or equal to {high}.")
    return number


def _datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(_BAD_DATETIME)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(_BAD_DATETIME) from None
    return _shown_time(parsed)


def _timezone(value: Any) -> str:
    name = _string(value, blank=False, max_length=TIMEZONE_MAX)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("A valid timezone is required.") from None
    return name


def _windows(value: Any) -> list[SendWindow]:
    """``[{"days": ["mon", …], "start": "09:00", "end": "17:00"}, …]`` or the day-keyed
    form ``{"mon": [{"start", "end"}], …}``; [] and null mean no windows."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [
            {"days": [day], **span}
            for day, spans in value.items()
            for span in (spans if isinstance(spans, list) else [spans])
            if isinstance(span, dict)
        ]
    if not isinstance(value, list):
        raise ValueError(
            'Expected a list of windows like {"days": ["mon"], "start": "09:00", "end": "17:00"}.'
        )
    windows = []
    for index, item in enumerate(value):
        try:
            windows.append(SendWindow.model_validate(item))
        except PydanticValidationError as error:
            problem = error.errors(include_url=False)[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ValueError(
                f"Window {index}: {where + ': ' if where else ''}{problem['msg']}."
            ) from None
    return windows


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f'"{value}" is not a valid choice.')
    return value


def _checked(
    data: Mapping[str, Any],
    problems: Problems,
    field: str,
    check: Callable[[Any], Any],
    *,
    nullable: bool = False,
) -> tuple[bool, Any]:
    """(given, value): the field checked if the body has it; a problem recorded if not."""
    if field not in data:
        return False, None
    value = data[field]
    if value is None:
        if not nullable:
            problems.add(field, _NULL)
        return nullable, None
    try:
        return True, check(value)
    except ValueError as error:
        problems.add(field, str(error))
        return False, None


def _body(call: Call) -> dict[str, Any]:
    """The request's fields (JSON object or form; a repeated form field is a list)."""
    data = read_body(call.request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationFailures(
            [
                {
                    "field": "non_field_errors",
                    "message": "Invalid data. Expected a dictionary, but got "
                    f"{type(data).__name__}.",
                }
            ]
        )
    return data


def _campaign_fields(
    call: Call, data: Mapping[str, Any], *, partial: bool
) -> tuple[dict[str, Any], CampaignStatus | None]:
    """A campaign body checked as DRF's serializer would: the service's changes and the
    status asked for; ValidationFailures listing every problem."""
    problems = Problems()
    changes: dict[str, Any] = {}
    for field in ("name", "company"):
        if not partial and field not in data:
            problems.add(field, _REQUIRED)
    given, name = _checked(
        data, problems, "name", lambda v: _string(v, blank=False, max_length=SEED_NAME_MAX)
    )
    if given:
        changes["name"] = name
    given, company = _checked(data, problems, "company", _uuid)
    if given and company != ids.dashed(call.tenant_id):
        problems.add("company", f'Invalid pk "{company}" - object does not exist.')
    elif given:
        changes["company"] = company
    if "sender_identity_ids" in data:
        changes["sender_ids"] = _senders(call.tenant_id, data["sender_identity_ids"], problems)
    given, status = _checked(data, problems, "status", lambda v: _choice(v, STATUSES))
    given, description = _checked(
        data, problems, "description", lambda v: _string(v, blank=True, max_length=2000)
    )
    if given:
        changes["description"] = description
    given, zone = _checked(data, problems, "timezone", _timezone)
    if given:
        changes["timezone"] = zone
    if "allowed_windows" in data:
        try:
            changes["send_windows"] = _windows(data["allowed_windows"])
            changes["allowed_windows"] = data["allowed_windows"]
        except ValueError as error:
            problems.add("allowed_windows", str(error))
    changes.update(_seed_fields(data, problems))
    problems.raise_any()
    return changes, status


def _seed_fields(data: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """The seed's flags, time and references: checked, kept and shown back as given."""
    checks: dict[str, tuple[Callable[[Any], Any], bool]] = {
        "stop_on_reply": (_boolean, False),
        "is_deleted": (_boolean, False),
        "created_at": (_datetime, False),
        "workflow": (_uuid, True),
        "created_by": (_uuid, True),
        "responder_agent": (_uuid, True),
    }
    changes: dict[str, Any] = {}
    for field, (check, nullable) in checks.items():
        given, value = _checked(data, problems, field, check, nullable=nullable)
        if given:
            changes[field] = value
    return changes


def _senders(tenant_id: str, value: Any, problems: Problems) -> list[str]:
    """The pool's native sender ids; DRF's PrimaryKeyRelatedField(many=True) words."""
    if isinstance(value, str):
        value = [value]  # a form's single value
    if not isinstance(value, list):
        problems.add(
            "sender_identity_ids",
            f'Expected a list of items but got type "{type(value).__name__}".',
        )
        return []
    native: list[str] = []
    for item in value:
        try:
            dashed = _uuid(item)
        except ValueError:
            problems.add("sender_identity_ids", _BAD_UUID)
            continue
        sender_id = ids.native(dashed, "snd_")
        if not service.check_sender(tenant_id, sender_id):
            problems.add("sender_identity_ids", f'Invalid pk "{dashed}" - object does not exist.')
        elif sender_id not in native:
            native.append(sender_id)
    return native


def _step_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    problems = Problems()
    fields: dict[str, Any] = {}
    checks: dict[str, Callable[[Any], Any]] = {
        "step_order": lambda v: _integer(v, low=0, high=2_147_483_647),
        "subject": lambda v: _string(v, blank=True, max_length=998),
        "body_html": lambda v: _string(v, blank=True, max_length=None),
        "body_text": lambda v: _string(v, blank=True, max_length=None),
        "delay_minutes": lambda v: _integer(v, low=0, high=MAX_DELAY_MINUTES),
        "is_active": _boolean,
    }
    for field, check in checks.items():
        given, value = _checked(data, problems, field, check)
        if given:
            fields[field] = value
    if not partial and not (str(data.get("body_html") or "") + str(data.get("body_text") or "")):
        problems.add("body_html", "Either body_html or body_text is required.")
    problems.raise_any()
    return fields


# -- views ---------------------------------------------------------------------------------
def _shown_time(at: datetime) -> str:
    """DRF's DateTimeField output: ISO 8601, UTC as ``Z``."""
    text = at.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _count(counts: Mapping[str, int], name: str, step_id: str | None = None) -> str:
    """A campaign's counter, or a step's: the flow worker counts a step's sends per node
    (``node.<id>.sent``), feedback and replies per step (``<name>@<id>``)."""
    if step_id is None:
        return str(counts.get(name, 0))
    key = node_counter(step_id, name) if name == "sent" else step_counter(name, step_id)
    return str(counts.get(key, 0))


def _step_view(campaign: Campaign, step: SequenceStep, counts: Mapping[str, int]) -> dict[str, Any]:
    return Seed001Step(
        id=step.id,
        updated_at=_shown_time(step.updated_at),
        campaign=ids.dashed(campaign.id),
        step_order=step.step_order,
        subject=step.subject,
        body_html=step.body_html,
        body_text=step.body_text,
        delay_minutes=step.delay_minutes,
        is_active=step.is_active,
        created_at=_shown_time(step.created_at),
        sent_count=_count(counts, "sent", step.id),
        unique_opens=_count(counts, "opened", step.id),
        unique_clicks=_count(counts, "clicked", step.id),
        replies=_count(counts, "replied", step.id),
    ).model_dump()


def shown(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    """The seed's view of a sequence: its steps, counters (strings) and seed fields."""
    counts = service.counts(tenant_id, campaign)
    extras = campaign.dialect_fields
    pool = sender_pool(campaign)
    return Seed001Campaign(
        id=ids.dashed(campaign.id),
        steps=[_step_view(campaign, s, counts) for s in steps_of(campaign)],
        sender_identities=", ".join(service.sender_addresses(tenant_id, pool)),
        sent_count=_count(counts, "sent"),
        unique_opens=_count(counts, "opened"),
        unique_clicks=_count(counts, "clicked"),
        replies=_count(counts, "replied"),
        name=campaign.name,
        updated_at=_shown_time(campaign.updated_at),
        company=extras.get("company") or ids.dashed(tenant_id),
        sender_identity_ids=[ids.dashed(s) for s in pool],
        status=campaign.status,
        description=campaign.description,
        timezone=campaign.timezone,
        allowed_windows=extras.get("allowed_windows"),
        stop_on_reply=campaign.stop_on_reply,
        is_deleted=bool(extras.get("is_deleted", False)),
        created_at=extras.get("created_at") or _shown_time(campaign.created_at),
        workflow=extras.get("workflow"),
        created_by=extras.get("created_by"),
        responder_agent=extras.get("responder_agent"),
    ).model_dump()


# -- errors ----------------------------------------------------------------------------------
def seed_errors(response: Response) -> Response:
    """DRF's shapes (``drf_errors``) with DRF's words for 401 and 404."""
    shaped = drf_errors(response)
    if response.status_code in _DETAIL_BY_STATUS:
        error = json.loads(response.body)["error"]
        detail = _DETAIL_BY_STATUS[response.status_code] or (
            "Authentication credentials were not provided."
            if error["message"].startswith("missing")
            else "Invalid token."
        )
        shaped.body = json_body({"detail": detail})
    return shaped


def _step_terms() -> Any:
    """A step's template refused: name the step's field (html → body_html…)."""
    names = {"html": "body_html", "text": "body_text", "subject": "subject"}
    return fields_renamed(lambda native: names.get(native.split(".", 1)[0], native))


# -- pagination --------------------------------------------------------------------------------
def _page(call: Call, items: list[Any]) -> tuple[int, str | None, str | None, list[Any]]:
    query: Seed001ListQuery = call.query
    try:
        size = int(query.page_size)
        size = min(size, PAGE_SIZE_MAX) if size > 0 else PAGE_SIZE_DEFAULT
    except ValueError:
        size = PAGE_SIZE_DEFAULT
    pages = max(1, -(-len(items) // size))
    number = page_number(query.page, pages)
    return (
        len(items),
        _page_link(call, number + 1) if number < pages else None,
        _page_link(call, number - 1) if number > 1 else None,
        items[(number - 1) * size : number * size],
    )


def _page_link(call: Call, number: int) -> str:
    base = route_url(call.request)
    for name, value in call.params.items():
        base = base.replace("{" + name + "}", ids.dashed(value) if name == "sequence_id" else value)
    return page_link(call.request, number, base)


# -- routes ---------------------------------------------------------------------------------------
_route = tenant_routes(blueprint, TAG, error_envelope=seed_errors, content_types=_BODIES)


def _campaign_id(call: Call) -> str:
    return call.params["sequence_id"]  # made native by the gate (ids.PATH_PREFIXES)


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        body=json_body(value), status_code=status, headers={"Content-Type": "application/json"}
    )


@_route(_COLLECTION, "GET", "List email campaigns", query=Seed001ListQuery, response=Seed001Page)
def list_campaigns(call: Call) -> Response:
    count, next_link, previous, page = _page(call, service.every(call.tenant_id))
    results = [shown(call.tenant_id, campaign) for campaign in page]
    return _json({"count": count, "next": next_link, "previous": previous, "results": results})


@_route(
    _COLLECTION,
    "POST",
    "Create Email Campaign",
    status=201,
    body=Seed001Body,
    response=Seed001Campaign,
)
def create_campaign(call: Call) -> Response:
    changes, status = _campaign_fields(call, _body(call), partial=False)
    campaign = service.create(call.tenant_id, changes, status, clock.now())
    return _json(shown(call.tenant_id, campaign), 201)


@_route(_ITEM, "GET", "Retrieve Email Campaign", response=Seed001Campaign)
def retrieve_campaign(call: Call) -> Response:
    return _json(shown(call.tenant_id, service.get(call.tenant_id, _campaign_id(call))))


def _update(call: Call, partial: bool) -> Response:
    service.get(call.tenant_id, _campaign_id(call))  # DRF finds the object, then validates
    changes, status = _campaign_fields(call, _body(call), partial=partial)
    campaign = service.edit(call.tenant_id, _campaign_id(call), changes, status, clock.now())
    return _json(shown(call.tenant_id, campaign))


@_route(_ITEM, "PUT", "Update Email Campaign", body=Seed001Body, response=Seed001Campaign)
def replace_campaign(call: Call) -> Response:
    return _update(call, partial=False)


@_route(
    _ITEM, "PATCH", "Partially Update Email Campaign", body=Seed001Body, response=Seed001Campaign
)
def patch_campaign(call: Call) -> Response:
    return _update(call, partial=True)


@_route(_ITEM, "DELETE", "Delete Email Campaign (soft: is_deleted)", status=204)
def delete_campaign(call: Call) -> Response:
    service.delete(call.tenant_id, _campaign_id(call), clock.now())
    return Response(body="", status_code=204)


@_route(
    f"{_ITEM}/enroll",
    "POST",
    "Enroll contacts (Herald extension)",
    body=Seed001Enrol,
    response=Seed001Enrolled,
)
def enroll_contacts(call: Call) -> Seed001Enrolled:
    contact_ids = [ids.native(c, "c_") for c in call.body.contact_ids]
    answers = service.enrol(call.tenant_id, _campaign_id(call), contact_ids, clock.now())
    return Seed001Enrolled(
        results=[
            Seed001EnrolResult(contact_id=a.contact_id, outcome=a.outcome, reason=a.reason)
            for a in answers
        ]
    )


# -- steps -------------------------------------------------------------------------------------
@_route(
    _STEPS, "GET", "List steps (by step_order)", query=Seed001ListQuery, response=Seed001StepPage
)
def list_steps(call: Call) -> Response:
    campaign = service.get(call.tenant_id, _campaign_id(call))
    counts = service.counts(call.tenant_id, campaign)
    count, next_link, previous, page = _page(call, steps_of(campaign))
    results = [_step_view(campaign, step, counts) for step in page]
    return _json({"count": count, "next": next_link, "previous": previous, "results": results})


@_route(_STEPS, "POST", "Create step", status=201, body=Seed001Body, response=Seed001Step)
def create_step(call: Call) -> Response:
    service.get(call.tenant_id, _campaign_id(call))
    fields = _step_fields(_body(call), partial=False)
    with _step_terms():
        campaign, step = service.add_step(call.tenant_id, _campaign_id(call), fields, clock.now())
    return _json(_step_view(campaign, step, {}), 201)


def _step_id(call: Call) -> str:
    try:
        return str(uuid.UUID(call.params["step_id"]))
    except ValueError:
        raise NotFound("Not found.", field="step_id") from None


@_route(_STEP, "GET", "Retrieve step", response=Seed001Step)
def retrieve_step(call: Call) -> Response:
    campaign = service.get(call.tenant_id, _campaign_id(call))
    step = service.step(campaign, _step_id(call))
    return _json(_step_view(campaign, step, service.counts(call.tenant_id, campaign)))


def _update_step(call: Call, partial: bool) -> Response:
    service.step(service.get(call.tenant_id, _campaign_id(call)), _step_id(call))
    fields = _step_fields(_body(call), partial=partial)
    with _step_terms():
        campaign, step = service.edit_step(
            call.tenant_id, _campaign_id(call), _step_id(call), fields, clock.now()
        )
    return _json(_step_view(campaign, step, service.counts(call.tenant_id, campaign)))


@_route(_STEP, "PUT", "Update step", body=Seed001Body, response=Seed001Step)
def replace_step(call: Call) -> Response:
    return _update_step(call, partial=False)


@_route(_STEP, "PATCH", "Partially update step", body=Seed001Body, response=Seed001Step)
def patch_step(call: Call) -> Response:
    return _update_step(call, partial=True)


@_route(_STEP, "DELETE", "Delete step", status=204)
def delete_step(call: Call) -> Response:
    service.remove_step(call.tenant_id, _campaign_id(call), _step_id(call), clock.now())
    return Response(body="", status_code=204)
