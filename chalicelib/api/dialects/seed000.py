"""Seed 000: a Laravel-style email campaign API at ``/public/v1/email/campaigns``, over Herald.

The seed's campaign is a Herald campaign whose ``send_data`` is translated field by field
(docs/api-seed-000.md has the table): ``campaign_type`` picks the Herald type
(``broadcast``, ``automation`` with its iterations and delivery gate, or
``event_triggered``, a flow compiled by ``domain.flows.event_triggered``),
``template_ids``/``mail_account_ids`` are the template and sender pools (rotated),
``segment_query`` the audience (a segment of the campaign's own, or the flow's
``attribute_check``), tracking and ``verification_data`` their Herald equivalents. What
Herald does not act on (``delivery_type``, ``meta``, ``reply_to_name``,
``contact_cache_level``, ``user_platform_role``) is kept in ``dialect_data`` and echoed.

Ids are UUIDs: Herald's ids are a prefix and 32 hex digits (``domain.ids``), shown
dashed; a client may send either spelling. Envelopes are Laravel's:
``{"ok": true, "campaign": …}``; 422 ``{"ok": false, "message", "errors": {"field":
["…"]}}``; 401 ``{"ok": false, "message": "Unauthenticated."}``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal

from chalice import Blueprint, Response
from pydantic import ConfigDict, Field, ValidationError

from chalicelib.api.dialects.common import fields_renamed, native
from chalicelib.api.errors import json_body
from chalicelib.api.models import ApiModel
from chalicelib.api.routing import JSON, Call, tenant_routes
from chalicelib.domain import clock, ids
from chalicelib.domain.automation import AutomationPlan, countdown
from chalicelib.domain.campaigns import (
    POOL_MAX,
    Audience,
    Campaign,
    CampaignFields,
    NewCampaign,
    Step,
    flow_steps,
    new_campaign_id,
)
from chalicelib.domain.deliverability import delivery_rate
from chalicelib.domain.errors import NotFound, Problems, ValidationFailed
from chalicelib.domain.flows.event_triggered import (
    compile_event_triggered,
    cooldown_reentry,
    daily_cap,
)
from chalicelib.domain.model import Model
from chalicelib.domain.segments import SegmentGroup
from chalicelib.domain.senders import usability
from chalicelib.domain.verification import VerificationSettings
from chalicelib.services import campaigns as service
from chalicelib.services import references, seed_campaigns

blueprint = Blueprint(__name__)
TAG = "seed 000: /public/v1/email/campaigns"
_COLLECTION = "/public/v1/email/campaigns"
_ITEM = _COLLECTION + "/{id}"
EVENTS = ("contact.saved", "lead.created", "sale.created")
CampaignType = Literal["broadcast", "automation", "event_triggered"]
_RUN_NAMESPACE = uuid.UUID("6f1d3c7e-0b7a-4d55-9a57-4a1f3f0c0000")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
# query-builder operators → Herald's segment operators
_OPERATORS = {
    "equal": "eq",
    "not_equal": "neq",
    "in": "in",
    "not_in": "not_in",
    "less": "lt",
    "less_or_equal": "lte",
    "greater": "gt",
    "greater_or_equal": "gte",
    "begins_with": "starts_with",
    "contains": "contains",
    "is_null": "not_exists",
    "is_empty": "not_exists",
    "is_not_null": "exists",
    "is_not_empty": "exists",
}


# -- shapes ----------------------------------------------------------------------------
class _Part(Model):
    model_config = ConfigDict(extra="forbid")


class BroadcastSend(_Part):
    send_amount: int | None = Field(default=None, ge=1)
    scheduled_send_time: str | None = Field(default=None, max_length=64)


class AutomationSend(_Part):
    send_amount: int | None = Field(default=None, ge=1)
    iteration_send_amount: int = Field(default=200, ge=1)
    min_delivery_rate: float = Field(default=92, ge=0, le=100)
    send_interval: int = Field(default=10, ge=0)
    scheduled_send_time: str | None = Field(default=None, max_length=64)
    is_incremental_send: bool = True
    max_iterations: int = Field(default=0, ge=0)
    max_iteration_send_amount: int = Field(default=1000, ge=1)


class EventTriggeredSend(_Part):
    events: list[str] = Field(default_factory=lambda: ["contact.saved"], max_length=10)
    contact_cooldown_interval: int = Field(default=3600, ge=1, le=30 * 86400)
    contact_daily_email_cap: int = Field(default=3, ge=1, le=1000)
    enabled: bool = True


class SegmentQuery(_Part):
    condition: Literal["AND", "OR"] = "AND"
    type: str = Field(default="builder", max_length=50)
    rules: list[Any] = Field(default_factory=list, max_length=100)
    valid: bool | None = None


class VerificationData(_Part):
    acceptable_statuses: list[Literal["valid", "invalid", "risky", "unknown"]] = Field(
        default=["valid"], min_length=1
    )
    active: bool = False
    max_budget: int = Field(default=1, ge=0)
    age_threshold: int = Field(default=2, ge=0)


class SendData(_Part):
    """Every field of the seed's ``send_data``, with the seed's example values as defaults."""

    campaign_type: CampaignType = "event_triggered"
    template_ids: list[str] = Field(default_factory=list, max_length=POOL_MAX)
    mail_account_ids: list[str] = Field(default_factory=list, max_length=POOL_MAX)
    from_name: str | None = Field(default=None, max_length=200)
    reply_to_name: str | None = Field(default=None, max_length=200)
    reply_to_email: str | None = Field(default=None, max_length=320)
    broadcast_send: BroadcastSend = Field(default_factory=BroadcastSend)
    automation_send: AutomationSend = Field(default_factory=AutomationSend)
    event_triggered_send: EventTriggeredSend = Field(default_factory=EventTriggeredSend)
    segment_query: SegmentQuery = Field(default_factory=SegmentQuery)
    open_tracking: bool = True
    click_tracking: bool = True
    verification_data: VerificationData = Field(default_factory=VerificationData)
    contact_cache_level: str = Field(default="campaign", max_length=50)
    user_platform_role: str = Field(default="member", max_length=50)


class Seed000Body(ApiModel):
    """Create: ``name``, ``template_ids``, ``mail_account_ids``, ``events`` (required);
    PATCH: any of them, and any part of ``send_data`` (Herald extension)."""

    model_config = ConfigDict(extra="allow")

    name: Any = Field(default=None, description="Required. Name of the campaign.")
    template_ids: Any = Field(
        default=None, description="Required. Email template UUIDs used in rotation (≥ 1)."
    )
    mail_account_ids: Any = Field(
        default=None, description="Required. UUIDs of active, verified email senders (≥ 1)."
    )
    events: Any = Field(
        default=None, description="Required. contact.saved, lead.created, sale.created (≥ 1)."
    )
    send_data: Any = Field(default=None, description="Herald extension: any part of send_data.")


class Countdown(ApiModel):
    total: int
    remaining: int


class SendProgress(ApiModel):
    total_sent: int
    total_bounced: int
    delivery_rate: float
    current_iteration: int
    reason: str | None


class CampaignSend(ApiModel):
    id: str
    campaign_id: str
    campaign_type: str
    status: str
    next_send_at: datetime | None
    next_send_countdown: Countdown
    send_data: dict[str, Any]
    send_progress: SendProgress
    created_at: datetime
    updated_at: datetime


class DraftData(ApiModel):
    last_sent_at: str | None
    send_data: dict[str, Any]


class CampaignResource(ApiModel):
    id: str
    team_id: str
    name: str
    delivery_type: str
    campaign_type: str
    meta: list[Any]
    created_at: datetime
    updated_at: datetime
    draft_data: DraftData
    campaign_sends: list[CampaignSend]


class CampaignEnvelope(ApiModel):
    ok: bool = True
    campaign: CampaignResource


class DeletedEnvelope(ApiModel):
    ok: bool = True
    message: str


# -- errors ----------------------------------------------------------------------------
def seed_errors(response: Response) -> Response:
    """Herald's error in Laravel's shape: 422 with ``errors``, 401 "Unauthenticated."."""
    error = json.loads(response.body)["error"]
    status = response.status_code
    body: dict[str, Any] = {"ok": False, "message": error["message"]}
    if status == 401:
        body["message"] = "Unauthenticated."
    elif status == 404:
        body["message"] = "Campaign not found."  # never Herald's own id form
    elif status in (400, 422):
        status = 422
        problems = error.get("details") or [error]
        errors: dict[str, list[str]] = {}
        for problem in problems:
            errors.setdefault(problem.get("field") or "body", []).append(problem["message"])
        more = len(problems) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        body = {"ok": False, "message": problems[0]["message"] + suffix, "errors": errors}
    return Response(body=json_body(body), status_code=status, headers=dict(response.headers or {}))


# The native field a refusal names → the seed's field.
_SEED_FIELDS = {
    "from_name": "send_data.from_name",
    "reply_to": "send_data.reply_to_email",
    "template_ids": "send_data.template_ids",
    "sender_ids": "send_data.mail_account_ids",
    "audience": "send_data.segment_query",
    "automation": "send_data.automation_send",
    "verification": "send_data.verification_data",
    "scheduled_at": "send_data.scheduled_send_time",
}


def _seed_terms() -> AbstractContextManager[None]:
    return fields_renamed(lambda field: _SEED_FIELDS.get(field.split(".", 1)[0], field))


# -- ids ----------------------------------------------------------------------------------
def shown_id(herald_id: str) -> str:
    """A Herald id (prefix + 32 hex digits) as a dashed UUID."""
    return ids.dashed(herald_id)


def herald_id(prefix: str, given: Any) -> str | None:
    """A dashed or plain UUID as the Herald id with ``prefix``; None if it is not one."""
    if not isinstance(given, str) or not _UUID.match(given):
        return None
    return f"{prefix}_{uuid.UUID(given).hex}"


def _campaign_id(given: str) -> str:
    found = herald_id("cmp", given)
    if found is None:
        raise NotFound("Campaign not found.", field="id")
    return found


# -- validation -------------------------------------------------------------------------
def _event_name(given: Any) -> str | None:
    if not isinstance(given, str):
        return None
    dotted = given.replace("_", ".", 1) if "." not in given else given
    return dotted if dotted in EVENTS else None


def _pool(
    problems: Problems, field: str, given: Any, words: str, check: Callable[[str, int], str | None]
) -> list[str]:
    if given is None or given == []:
        problems.add(field, f"The {words} field is required.")
        return []
    if not isinstance(given, list):
        problems.add(field, f"The {words} field must be an array.")
        return []
    return [found for i, item in enumerate(given) if (found := check(item, i)) is not None]


def _templates(tenant_id: str, problems: Problems, given: Any, field: str) -> list[str]:
    def check(item: Any, index: int) -> str | None:
        template_id = herald_id("tpl", item)
        if template_id is None:
            problems.add(f"{field}.{index}", "Each template ID must be a valid UUID.")
            return None
        try:
            template = references.template(tenant_id, template_id)
        except NotFound:
            template = None
        if template is None or template.channel != "email":
            problems.add(f"{field}.{index}", f"The selected {field}.{index} is invalid.")
            return None
        return template_id

    return _pool(problems, field, given, "template ids", check)


def _senders(tenant_id: str, problems: Problems, given: Any, field: str) -> list[str]:
    message = "Each mail account ID must be a valid UUID of an active account."

    def check(item: Any, index: int) -> str | None:
        sender_id = herald_id("snd", item)
        try:
            sender = references.sender(tenant_id, sender_id) if sender_id else None
        except NotFound:
            sender = None
        if (
            sender is None
            or sender.channel != "email"
            or not usability(sender, sender.verification).usable
        ):
            problems.add(f"{field}.{index}", message)
            return None
        return sender.id

    return _pool(problems, field, given, "mail account ids", check)


def _events(problems: Problems, given: Any, field: str) -> list[str]:
    def check(item: Any, index: int) -> str | None:
        name = _event_name(item)
        if name is None:
            problems.add(
                f"{field}.{index}",
                "Event name must be one of: contact_saved, lead_created, sale_created.",
            )
        return name

    return list(dict.fromkeys(_pool(problems, field, given, "events", check)))


def _name(problems: Problems, given: Any) -> str:
    if not isinstance(given, str) or not given.strip():
        problems.add("name", "The name field is required.")
        return ""
    if len(given) > 255:
        problems.add("name", "The name field must not be greater than 255 characters.")
    return given.strip()


def _send_data(problems: Problems, given: dict[str, Any]) -> SendData | None:
    try:
        return SendData.model_validate(given)
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            path = ".".join(str(p) for p in ("send_data", *problem["loc"]))
            problems.add(path, problem["msg"])
        return None


def _merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def builder_rules(query: SegmentQuery) -> SegmentGroup | None:
    """The query builder's ``{condition, rules}`` as Herald's segment tree (operators
    renamed; Herald's own operator names are taken too; no rules: None, everyone); a plain
    string rule is refused."""
    if not query.rules:
        return None

    def rule(node: Any, path: str) -> dict[str, Any]:
        if isinstance(node, dict) and "rules" in node:
            return {
                "condition": str(node.get("condition", "AND")).upper(),
                "rules": [rule(r, f"{path}.rules.{i}") for i, r in enumerate(node["rules"])],
            }
        if not isinstance(node, dict) or "field" not in node or "operator" not in node:
            raise ValidationFailed(
                "Each rule must be an object with field, operator and value.", field=path
            )
        operator = _OPERATORS.get(node["operator"], node["operator"])
        return {"field": node["field"], "operator": operator, "value": node.get("value")}

    tree = {
        "condition": query.condition,
        "rules": [rule(r, f"send_data.segment_query.rules.{i}") for i, r in enumerate(query.rules)],
    }
    try:
        return SegmentGroup.model_validate(tree)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        path = ".".join(str(p) for p in ("send_data", "segment_query", *problem["loc"]))
        raise ValidationFailed(problem["msg"], field=path) from None


# -- translation ----------------------------------------------------------------------------
def _data_of(campaign: Campaign) -> dict[str, Any]:
    return dict(campaign.dialect_data or {})


def _send_data_of(campaign: Campaign) -> SendData:
    """The campaign's ``send_data``: what was given, with what Herald holds laid over it."""
    stored = SendData.model_validate(_data_of(campaign).get("send_data") or {})
    return stored.model_copy(
        update={
            "template_ids": [shown_id(t) for t in campaign.template_ids],
            "mail_account_ids": [shown_id(s) for s in campaign.sender_ids],
            "from_name": campaign.from_name,
            "reply_to_email": campaign.reply_to,
            "open_tracking": campaign.track_opens,
            "click_tracking": campaign.track_clicks,
        }
    )


def _plan(data: SendData) -> AutomationPlan | None:
    """An automation's plan; a broadcast with ``send_amount`` is one capped iteration."""
    if data.campaign_type == "automation":
        given = data.automation_send
        return AutomationPlan(
            send_amount=given.send_amount,
            iteration_send_amount=given.iteration_send_amount,
            min_delivery_rate=given.min_delivery_rate,
            send_interval=given.send_interval,
            is_incremental_send=given.is_incremental_send,
            max_iterations=given.max_iterations,
            max_iteration_send_amount=given.max_iteration_send_amount,
        )
    amount = data.broadcast_send.send_amount
    if data.campaign_type == "broadcast" and amount is not None:
        return AutomationPlan(
            send_amount=amount,
            iteration_send_amount=amount,
            max_iteration_send_amount=amount,
            is_incremental_send=False,
            max_iterations=1,
            min_delivery_rate=0,
        )
    return None


def _verification(data: SendData) -> VerificationSettings:
    return VerificationSettings.model_validate(data.verification_data.model_dump())


def _dialect_data(data: SendData, current: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery_type": current.get("delivery_type", "email"),
        "meta": current.get("meta", []),
        "send_data": data.model_dump(mode="json"),
    }


def _broadcast_values(
    tenant_id: str, campaign_id: str | None, name: str, data: SendData, current: Campaign | None
) -> dict[str, Any]:
    """The native fields of a broadcast or automation with ``data``."""
    tree = builder_rules(data.segment_query)
    if tree is not None:
        existing = _data_of(current).get("segment_id") if current else None
        segment_id = seed_campaigns.rules_segment(
            tenant_id, existing, f"{name} (campaign audience)", tree, clock.now()
        )
        audience = Audience(segment_ids=[segment_id])
    else:
        segment_id = None
        audience = Audience(all_contacts=True)
    plan = _plan(data)
    dialect = _dialect_data(data, _data_of(current) if current else {})
    if segment_id:
        dialect["segment_id"] = segment_id
    return {
        "name": name,
        "type": "automation" if plan is not None else "broadcast",
        "automation": plan,
        "audience": audience,
        "template_ids": [herald_id("tpl", t) for t in data.template_ids],
        "sender_ids": [herald_id("snd", s) for s in data.mail_account_ids],
        "from_name": data.from_name or None,
        "reply_to": data.reply_to_email or None,
        "track_opens": data.open_tracking,
        "track_clicks": data.click_tracking,
        "verification": _verification(data),
        "dialect_data": dialect,
    }


def _flow(
    base: Campaign | None, campaign_id: str, name: str, data: SendData, now: datetime
) -> Campaign:
    """The event-triggered flow for ``data`` (a new one, or ``base`` recompiled)."""
    given = data.event_triggered_send
    tree = builder_rules(data.segment_query)
    templates = [str(herald_id("tpl", t)) for t in data.template_ids]
    senders = [str(herald_id("snd", s)) for s in data.mail_account_ids]
    graph = compile_event_triggered(given.events, tree, templates, senders)
    status = "active" if given.enabled else "paused"
    headers = native(
        CampaignFields,
        {"from_name": data.from_name or None, "reply_to": data.reply_to_email or None},
    )
    values = {
        **(base.model_dump() if base is not None else {}),
        "id": campaign_id,
        "number": base.number if base is not None else 0,
        "name": name,
        "type": "event_triggered",
        "channel": "email",
        "status": status,
        "workflow": graph.model_dump(),
        "steps": [s.model_dump() for s in flow_steps(graph)],
        "reentry": cooldown_reentry(given.contact_cooldown_interval).model_dump(),
        "campaign_frequency_cap": daily_cap(given.contact_daily_email_cap).model_dump(),
        "from_name": headers.from_name,
        "reply_to": headers.reply_to,
        "track_opens": data.open_tracking,
        "track_clicks": data.click_tracking,
        "verification": _verification(data).model_dump(),
        "audience": Audience().model_dump(),
        "automation": None,
        "iterations": None,
        "dialect_data": _dialect_data(data, _data_of(base) if base else {}),
        "created_at": base.created_at if base is not None else now,
        "updated_at": now,
    }
    if base is None or base.family != "flow":
        values["started_at"] = now if given.enabled else None
    return Campaign.model_validate(values)


def _as_draft(campaign: Campaign, now: datetime) -> Campaign:
    """A flow turned back into a broadcast draft (its pools kept): same id and number."""
    return Campaign(
        id=campaign.id,
        number=campaign.number,
        name=campaign.name,
        channel="email",
        steps=[
            Step(
                channel="email", template_ids=campaign.template_ids, sender_ids=campaign.sender_ids
            )
        ],
        dialect_data=campaign.dialect_data,
        created_at=campaign.created_at,
        updated_at=now,
    )


# -- views ----------------------------------------------------------------------------------
def _seed_status(campaign: Campaign) -> str:
    if (
        campaign.iterations is not None
        and campaign.iterations.waiting
        and campaign.status == "sending"
    ):
        return "waiting"
    return campaign.status


def shown(tenant_id: str, campaign: Campaign) -> CampaignEnvelope:
    """The seed's CampaignResource of ``campaign``."""
    now = clock.now()
    data = _send_data_of(campaign)
    send_data = data.model_dump(mode="json")
    stored = _data_of(campaign)
    sends: list[CampaignSend] = []
    started = campaign.family == "flow" or campaign.status not in ("draft",)
    if started:
        counts = service.counts(tenant_id, campaign)
        state = campaign.iterations
        next_send_at = state.next_send_at if state and state.waiting else None
        if next_send_at is None and campaign.status == "scheduled":
            next_send_at = campaign.scheduled_at
        total, remaining = countdown(next_send_at, state.settled_at if state else None, now)
        rate = delivery_rate(counts.get("delivered", 0), counts.get("bounced", 0))
        current = state.current_iteration if state else (1 if campaign.started_at else 0)
        sends.append(
            CampaignSend(
                id=str(uuid.uuid5(_RUN_NAMESPACE, campaign.id)),
                campaign_id=shown_id(campaign.id),
                campaign_type=data.campaign_type,
                status=_seed_status(campaign),
                next_send_at=next_send_at,
                next_send_countdown=Countdown(total=total, remaining=remaining),
                send_data=send_data,
                send_progress=SendProgress(
                    total_sent=counts.get("sent", 0),
                    total_bounced=counts.get("bounced", 0),
                    delivery_rate=rate or 0,
                    current_iteration=current,
                    reason=(state.reason if state else None) or campaign.error_message,
                ),
                created_at=campaign.started_at or campaign.created_at,
                updated_at=campaign.updated_at,
            )
        )
    last_sent = campaign.started_at.astimezone(UTC).isoformat() if campaign.started_at else None
    return CampaignEnvelope(
        campaign=CampaignResource(
            id=shown_id(campaign.id),
            team_id=shown_id(tenant_id),
            name=campaign.name,
            delivery_type=stored.get("delivery_type", "email"),
            campaign_type=data.campaign_type,
            meta=stored.get("meta", []),
            created_at=campaign.created_at,
            updated_at=campaign.updated_at,
            draft_data=DraftData(last_sent_at=last_sent, send_data=send_data),
            campaign_sends=sends,
        )
    )


# -- routes -------------------------------------------------------------------------------
_route = tenant_routes(blueprint, TAG, error_envelope=seed_errors, content_types=(JSON,))


def _given_send_data(body: Seed000Body, problems: Problems) -> dict[str, Any]:
    given = body.send_data
    if given is None:
        return {}
    if not isinstance(given, dict):
        problems.add("send_data", "The send data field must be an object.")
        return {}
    return given


def _decide(tenant_id: str, body: Seed000Body, current: Campaign | None) -> tuple[str, SendData]:
    """The name and full ``send_data`` a create or PATCH asks for, every problem at once."""
    problems = Problems()
    given = body.model_fields_set
    creating = current is None
    name = _name(problems, body.name) if creating or "name" in given else current.name  # type: ignore[union-attr]
    base = _send_data_of(current).model_dump(mode="json") if current else {}
    patch = _given_send_data(body, problems)
    data = _merged(base, patch)
    if creating or "template_ids" in given:
        data["template_ids"] = [
            shown_id(t) for t in _templates(tenant_id, problems, body.template_ids, "template_ids")
        ]
    elif "template_ids" in patch:
        data["template_ids"] = [
            shown_id(t)
            for t in _templates(
                tenant_id, problems, patch["template_ids"], "send_data.template_ids"
            )
        ]
    if creating or "mail_account_ids" in given:
        data["mail_account_ids"] = [
            shown_id(s)
            for s in _senders(tenant_id, problems, body.mail_account_ids, "mail_account_ids")
        ]
    elif "mail_account_ids" in patch:
        data["mail_account_ids"] = [
            shown_id(s)
            for s in _senders(
                tenant_id, problems, patch["mail_account_ids"], "send_data.mail_account_ids"
            )
        ]
    events_given = (
        (patch.get("event_triggered_send") or {}).get("events")
        if isinstance(patch.get("event_triggered_send"), dict)
        else None
    )
    if creating or "events" in given:
        events = _events(problems, body.events, "events")
    elif events_given is not None:
        events = _events(problems, events_given, "send_data.event_triggered_send.events")
    else:
        events = None
    if events is not None:
        data.setdefault("event_triggered_send", {})
        data["event_triggered_send"] = {**data["event_triggered_send"], "events": events}
    problems.raise_any()
    parsed = _send_data(problems, data)
    problems.raise_any()
    assert parsed is not None
    return name, parsed


@_route(
    _COLLECTION,
    "POST",
    "Create a new event-triggered campaign",
    status=201,
    body=Seed000Body,
    response=CampaignEnvelope,
)
def create_campaign(call: Call) -> CampaignEnvelope:
    name, data = _decide(call.tenant_id, call.body, None)
    now = clock.now()
    if data.campaign_type == "event_triggered":
        with _seed_terms():
            flow = _flow(None, new_campaign_id(now), name, data, now)
            campaign = seed_campaigns.create_flow(call.tenant_id, flow)
    else:
        values = _broadcast_values(call.tenant_id, None, name, data, None)
        with _seed_terms():
            fields = native(NewCampaign, {**values, "channel": "email"})
            campaign = service.create(call.tenant_id, fields, now)
    return shown(call.tenant_id, campaign)


@_route(_ITEM, "GET", "Get a campaign (Herald extension)", response=CampaignEnvelope)
def get_campaign(call: Call) -> CampaignEnvelope:
    campaign = service.get(call.tenant_id, _campaign_id(call.params["id"]))
    return shown(call.tenant_id, campaign)


@_route(
    _ITEM,
    "PATCH",
    "Update a campaign (Herald extension)",
    body=Seed000Body,
    response=CampaignEnvelope,
)
def patch_campaign(call: Call) -> CampaignEnvelope:
    tenant_id = call.tenant_id
    current = service.get(tenant_id, _campaign_id(call.params["id"]))
    name, data = _decide(tenant_id, call.body, current)
    now = clock.now()
    if data.campaign_type == "event_triggered":
        if current.family != "flow" and current.status != "draft":
            raise ValidationFailed(
                "Only a draft can become an event-triggered campaign.",
                field="send_data.campaign_type",
            )
        with _seed_terms():
            campaign = seed_campaigns.update_flow(
                tenant_id, current.id, lambda before: _flow(before, before.id, name, data, now), now
            )
    else:
        if current.family == "flow":
            seed_campaigns.update_flow(
                tenant_id, current.id, lambda before: _as_draft(before, now), now
            )
        values = _broadcast_values(tenant_id, current.id, name, data, current)
        with _seed_terms():
            fields = native(CampaignFields, values)
            campaign = service.edit(tenant_id, current.id, fields, now)
    return shown(tenant_id, campaign)


@_route(_ITEM, "DELETE", "Delete a campaign (Herald extension)", response=DeletedEnvelope)
def delete_campaign(call: Call) -> DeletedEnvelope:
    tenant_id = call.tenant_id
    current = service.get(tenant_id, _campaign_id(call.params["id"]))
    if current.family == "flow":
        seed_campaigns.delete_flow(tenant_id, current.id, clock.now())
    else:
        service.delete(tenant_id, current.id, clock.now(), cancel_first=True)
    return DeletedEnvelope(message="Campaign deleted.")


@_route(
    f"{_ITEM}/send",
    "POST",
    "Send a broadcast or automation (Herald extension)",
    response=CampaignEnvelope,
)
def send_campaign(call: Call) -> CampaignEnvelope:
    tenant_id = call.tenant_id
    current = service.get(tenant_id, _campaign_id(call.params["id"]))
    if current.family == "flow":
        raise ValidationFailed(
            "An event-triggered campaign sends on its events; it has nothing to send now.",
            field="campaign_type",
        )
    data = _send_data_of(current)
    when_text = (
        data.automation_send.scheduled_send_time
        if data.campaign_type == "automation"
        else data.broadcast_send.scheduled_send_time
    )
    now = clock.now()
    when = _instant(when_text)
    with _seed_terms():
        if when is not None and when > now:
            campaign = service.schedule(tenant_id, current.id, when, None, now)
        else:
            campaign = service.send_now(tenant_id, current.id, now)
    return shown(tenant_id, campaign)


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            "The scheduled send time is not a valid date.", field="send_data.scheduled_send_time"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
