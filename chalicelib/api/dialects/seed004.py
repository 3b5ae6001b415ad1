"""Seed 004: visual-editor campaigns at ``/api/workspaces/{workspaceId}/campaigns``.

A seed-004 campaign is a Herald flow (``type: workflow``) whose graph is the editor's
``{nodes, edges}`` mapped by ``domain.flows.visual``; a BROADCAST whose graph is a
Manual or one-time Scheduled trigger and one Send Message is a native broadcast instead
(planned in pages, a broadcast's stats). The workspace is the API key's tenant (any
other is 404). Errors are Herald's one shape, ``{"error": {"code", "message", "field",
"details"?}}``, with the seed's statuses: 400 for every invalid input (naming the
seed's field), 401, 404, 409 for what the campaign's state forbids. The decisions are
written up in docs/api-seed-004.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from chalice import Response
from chalice.app import Blueprint
from pydantic import ConfigDict, Field

from chalicelib.api.dialects.common import native
from chalicelib.api.errors import json_body
from chalicelib.api.models import ApiModel
from chalicelib.api.routing import JSON, Call, tenant_routes
from chalicelib.domain import clock, ids
from chalicelib.domain.campaigns import (
    DESCRIPTION_MAX_LENGTH,
    DIALECT_DATA_MAX,
    NAME_MAX_LENGTH,
    Action,
    Campaign,
    CampaignFields,
    NewCampaign,
)
from chalicelib.domain.errors import (
    InvalidTransition,
    NotFound,
    Problems,
    ValidationFailed,
    ValidationFailures,
)
from chalicelib.domain.flows.graph import Node, Workflow, load_workflow
from chalicelib.domain.flows.nodes import AbSplit, ScheduledTrigger, SendAction
from chalicelib.domain.flows.stats import variant_counter
from chalicelib.domain.flows.visual import (
    TRIGGER_TYPES,
    VISUAL_KINDS,
    broadcast_send,
    camel,
    in_position_order,
    load_visual,
    runtime_payload,
    visual_field,
    visual_of,
)
from chalicelib.services import campaigns as broadcasts
from chalicelib.services import flows
from chalicelib.services import visual_campaigns as service
from chalicelib.services.enrolments import EnrolmentAnswer, enrol_contacts

blueprint = Blueprint(__name__)
TAG = "seed 004: /api/workspaces/{workspaceId}/campaigns"
_COLLECTION = "/api/workspaces/{workspaceId}/campaigns"
_ITEM = _COLLECTION + "/{campaignId}"
TYPES = ("AUTOMATED", "BROADCAST")
STATUSES = ("DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "CANCELLED")
MAX_CONTACTS = 1000
CAP_HOURS = 24  # settings.frequencyCap: messages per contact per 24 h from this campaign
# A native status as the seed's.
_FLOW_STATUS = {
    "draft": "DRAFT",
    "active": "ACTIVE",
    "paused": "PAUSED",
    "completed": "COMPLETED",
    "cancelled": "CANCELLED",
}
_BROADCAST_STATUS = {
    "draft": "DRAFT",
    "scheduled": "ACTIVE",
    "calculating": "ACTIVE",
    "sending": "ACTIVE",
    "paused": "PAUSED",
    "sent": "COMPLETED",
    "failed": "CANCELLED",
    "cancelled": "CANCELLED",
}
# The native field a refusal names → the seed's.
_SEED_FIELDS = {
    "name": "name",
    "description": "description",
    "type": "type",
    "starts_at": "startAt",
    "ends_at": "endAt",
    "quiet_hours": "settings.quietHours",
    "campaign_frequency_cap": "settings.frequencyCap",
    "timezone": "settings.timezone",
    "audience": "settings.audience",
    "dialect_data": "workflow",
}
_AUDIENCE_KEYS = {"allContacts": "all_contacts", "segmentIds": "segment_ids", "listIds": "list_ids"}
_SETTINGS = ("frequencyCap", "quietHours", "timezone", "audience")


# -- shapes (the OpenAPI document's) -------------------------------------------------------
class Seed004Body(ApiModel):
    """Create: ``name``, ``type``, ``workflow`` required; PATCH: any subset (and ``status``)."""

    model_config = ConfigDict(extra="allow")

    name: Any = Field(default=None, description="Required on create. Campaign name.")
    description: Any = Field(default=None, description="Description.")
    type: Any = Field(default=None, description="Required on create. AUTOMATED or BROADCAST.")
    status: Any = Field(default=None, description="PATCH: DRAFT, ACTIVE, PAUSED, COMPLETED.")
    workflow: Any = Field(
        default=None, description="Required on create. {nodes, edges} in the editor's shape."
    )
    settings: Any = Field(
        default=None, description="{frequencyCap, quietHours {start, end}, timezone, audience}."
    )
    startAt: Any = Field(default=None, description="ISO 8601: nobody enters before.")
    endAt: Any = Field(default=None, description="ISO 8601: the campaign completes then.")


class Seed004ExecuteBody(ApiModel):
    model_config = ConfigDict(extra="allow")

    action: Any = Field(default=None, description="execute_for_contact or process_trigger.")
    contactId: Any = Field(default=None, description="For execute_for_contact.")
    triggerType: Any = Field(default=None, description="EVENT, SEGMENT_ENTRY, ... MANUAL.")
    segmentId: Any = Field(default=None, description="For segment triggers.")
    eventType: Any = Field(default=None, description="For event triggers.")


class Seed004EnrollBody(ApiModel):
    model_config = ConfigDict(extra="allow")

    contactIds: Any = Field(default=None, description="Contact ids (1 to 1000).")


class Seed004Counts(ApiModel):
    enrollments: int
    messages: int


class Seed004CampaignSummary(ApiModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    status: str
    type: str
    createdAt: str
    triggers: list[dict[str, Any]]
    count: Seed004Counts = Field(alias="_count")


class Seed004CampaignDetail(Seed004CampaignSummary):
    description: str
    updatedAt: str
    startAt: str | None
    endAt: str | None
    settings: dict[str, Any]
    workflow: dict[str, Any]
    actions: list[dict[str, Any]]
    abTests: list[dict[str, Any]]


class Seed004EnrollResult(ApiModel):
    enrolled: int
    alreadyEnrolled: int
    errors: int
    details: list[dict[str, Any]]


class Seed004ExecuteResult(ApiModel):
    action: str
    enrolled: int
    alreadyEnrolled: int
    errors: int
    details: list[dict[str, Any]]
    queued: bool = Field(
        default=False,
        description="Herald extension: true when the trigger selected more than"
        " one page of contacts; the counts are the first page's, the rest are enrolled"
        " through the control queue.",
    )


# -- errors -------------------------------------------------------------------------------
def seed_errors(response: Response) -> Response:
    """Herald's error shape with the seed's status for invalid input: 400, not 422."""
    if response.status_code != 422:
        return response
    return Response(body=response.body, status_code=400, headers=dict(response.headers or {}))


def _seed_field(field: str | None) -> str | None:
    if field is None:
        return None
    if field.startswith("workflow."):
        return visual_field(field)
    head, _, rest = field.partition(".")
    seed = _SEED_FIELDS.get(head, head)
    if head == "campaign_frequency_cap":  # one number here: its parts are not the seed's
        return seed
    if head == "audience":
        rest = ".".join(camel(part) for part in rest.split(".")) if rest else rest
    return f"{seed}.{rest}" if rest else seed


@contextmanager
def _seed_terms(rename: Callable[[str | None], str | None] = _seed_field) -> Iterator[None]:
    """A refusal from the services names the seed's field, in ``details`` too."""
    try:
        yield
    except ValidationFailed as error:
        error.field = rename(error.field)
        details = getattr(error, "details", None)
        if details:
            error.details = [{**d, "field": rename(d.get("field"))} for d in details]  # type: ignore[attr-defined]
        raise


# -- reading the body --------------------------------------------------------------------
def _instant(problems: Problems, field: str, given: Any) -> datetime | None:
    if given is None:
        return None
    if isinstance(given, str):
        try:
            at = datetime.fromisoformat(given.replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is not None:
            return at if at.tzinfo else at.replace(tzinfo=UTC)
    problems.add(field, "must be an ISO 8601 date-time, e.g. 2026-02-01T00:00:00.000Z")
    return None


def _settings(problems: Problems, given: Any) -> dict[str, Any]:
    """``settings`` as native fields (those given only)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        problems.add("settings", "must be an object")
        return {}
    values: dict[str, Any] = {}
    for key in given:
        if key not in _SETTINGS:
            problems.add(f"settings.{key}", f"unknown setting (use {', '.join(_SETTINGS)})")
    if "frequencyCap" in given:
        cap = given["frequencyCap"]
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            problems.add("settings.frequencyCap", "must be a whole number of messages, 1 or more")
        else:
            values["campaign_frequency_cap"] = (
                None if cap is None else {"max_messages": cap, "per_hours": CAP_HOURS}
            )
    if "quietHours" in given:
        values["quiet_hours"] = given["quietHours"]
    if "timezone" in given:
        values["timezone"] = given["timezone"]
    if "audience" in given:
        audience = given["audience"]
        if not isinstance(audience, dict) or set(audience) - set(_AUDIENCE_KEYS):
            problems.add("settings.audience", f"an object of {', '.join(_AUDIENCE_KEYS)}")
        else:
            values["audience"] = {_AUDIENCE_KEYS[k]: v for k, v in audience.items()}
    return values


def _text_fields(problems: Problems, body: Seed004Body, creating: bool) -> dict[str, Any]:
    """``name`` (required on create) and ``description`` as native fields."""
    given = body.model_fields_set
    values: dict[str, Any] = {}
    if creating or "name" in given:
        name = body.name
        if not isinstance(name, str) or not name.strip():
            problems.add("name", "is required: a non-empty string")
        elif len(name) > NAME_MAX_LENGTH:
            problems.add("name", f"at most {NAME_MAX_LENGTH} characters")
        else:
            values["name"] = name.strip()
    if "description" in given:
        if body.description is not None and not isinstance(body.description, str):
            problems.add("description", "must be a string")
        elif len(body.description or "") > DESCRIPTION_MAX_LENGTH:
            problems.add("description", f"at most {DESCRIPTION_MAX_LENGTH} characters")
        else:
            values["description"] = body.description or ""
    return values


def _target_status(problems: Problems, body: Seed004Body) -> str | None:
    if "status" not in body.model_fields_set:
        return None
    if body.status == "CANCELLED":
        problems.add("status", "CANCELLED cannot be set: DELETE removes a campaign")
    elif body.status not in STATUSES:
        problems.add("status", f"must be one of {', '.join(STATUSES[:-1])}")
    else:
        return str(body.status)
    return None


def _dates(problems: Problems, body: Seed004Body, data: dict[str, Any]) -> dict[str, Any]:
    """``startAt``/``endAt`` as native fields; ``data`` (the dialect's record) keeps them
    as shown, and the pair they make after this request must be in order."""
    values: dict[str, Any] = {}
    for seed, name in (("startAt", "starts_at"), ("endAt", "ends_at")):
        if seed in body.model_fields_set:
            at = _instant(problems, seed, getattr(body, seed))
            values[name] = at
            data[seed] = _shown_time(at)
    start, end = _stored_time(data.get("startAt")), _stored_time(data.get("endAt"))
    if start is not None and end is not None and start >= end:
        problems.add("endAt", "must be after startAt")
    return values


class _Decision:
    """What a create or PATCH asks for, read and checked in full before anything is done:
    ``native`` fields, the runtime ``workflow`` (when given), the target ``status``, and
    ``dialect_data`` (the seed's type, the editor's JSON, a broadcast's dates)."""

    def __init__(self, body: Seed004Body, current: Campaign | None) -> None:
        problems = Problems()
        given = body.model_fields_set
        data = dict((current.dialect_data or {}) if current else {})
        self.native = _text_fields(problems, body, current is None)
        if current is None or "type" in given:
            if body.type in TYPES:
                data["type"] = body.type
            else:
                problems.add("type", f"must be one of {', '.join(TYPES)}")
        self.status = _target_status(problems, body) if current is not None else None
        self.workflow: Workflow | None = None
        if current is None or "workflow" in given:
            try:
                self.workflow = load_visual(body.workflow)
            except ValidationFailures as failures:
                for problem in failures.details:
                    problems.add(problem["field"], problem["message"])
        self.native.update(_settings(problems, body.settings if "settings" in given else None))
        self.native.update(_dates(problems, body, data))
        problems.raise_any()
        data["dialect"] = service.DIALECT
        if self.workflow is not None:
            data["workflow"] = body.workflow
            if len(json.dumps(data, default=str)) > DIALECT_DATA_MAX:
                data.pop("workflow")  # GET shows the runtime's graph in the editor's shape
        self.dialect_data = data

    @property
    def seed_type(self) -> str:
        return str(self.dialect_data["type"])


def _stored_time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None


def _shown_time(at: datetime | None) -> str | None:
    if at is None:
        return None
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# -- native fields -------------------------------------------------------------------------
def _flow_fields(decision: _Decision) -> dict[str, Any]:
    values = {**decision.native, "dialect_data": decision.dialect_data}
    if decision.workflow is not None:
        values["workflow"] = decision.workflow
    return values


def _broadcast_fields(decision: _Decision, send: Node | None) -> dict[str, Any]:
    values = {k: v for k, v in decision.native.items() if k not in ("starts_at", "ends_at")}
    values["dialect_data"] = decision.dialect_data
    if send is not None:
        config = send.config
        assert isinstance(config, SendAction)
        values.update(channel=config.channel, template_ids=list(config.template_ids))
        values["sender_ids"] = list(config.sender_ids or [])
    return values


def _send_terms(workflow: Workflow | None, send: Node | None) -> Callable[[str | None], str | None]:
    """A broadcast's pools are its send node's: name the node's data fields."""
    index = workflow.nodes.index(send) if workflow is not None and send is not None else 0
    node_fields = {"template_ids": "templateIds", "sender_ids": "senderIds", "channel": "channel"}

    def rename(field: str | None) -> str | None:
        head, _, rest = (field or "").partition(".")
        if head in node_fields:
            suffix = f".{rest}" if rest else ""
            return f"workflow.nodes.{index}.data.{node_fields[head]}{suffix}"
        return _seed_field(field)

    return rename


# -- views ---------------------------------------------------------------------------------
def _graph(campaign: Campaign) -> tuple[Workflow | None, dict[str, Any]]:
    """The runtime graph and the editor's JSON of a campaign: the JSON as it was sent when
    it still describes the graph (a native edit may have changed it), else made from it."""
    stored = (campaign.dialect_data or {}).get("workflow")
    if campaign.workflow is None:  # a native broadcast: its graph is the stored one
        if stored is None:
            return None, {"nodes": [], "edges": []}
        return load_workflow(runtime_payload(stored)), stored
    if stored is not None:
        try:
            same = load_workflow(runtime_payload(stored)).model_dump() == (
                campaign.workflow.model_dump()
            )
        except ValidationFailed:
            same = False
        if same:
            return campaign.workflow, stored
    return campaign.workflow, visual_of(campaign.workflow)


def _shown_nodes(workflow: Workflow | None, visual: Mapping[str, Any]) -> dict[str, Any]:
    by_id = {n.get("id"): n for n in visual.get("nodes", []) if isinstance(n, dict)}
    return {node.id: by_id.get(node.id) for node in (workflow.nodes if workflow else [])}


def _status(campaign: Campaign) -> str:
    table = _FLOW_STATUS if campaign.family == "flow" else _BROADCAST_STATUS
    return table[campaign.status]


def _counts(campaign: Campaign, counts: Mapping[str, int]) -> Seed004Counts:
    if campaign.family == "flow":
        return Seed004Counts(
            enrollments=counts.get("enrollments", 0), messages=counts.get("messages", 0)
        )
    return Seed004Counts(enrollments=campaign.total_recipients or 0, messages=counts.get("sent", 0))


def _summary_values(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    workflow, visual = _graph(campaign)
    shown = _shown_nodes(workflow, visual)
    ordered = in_position_order(workflow) if workflow else []
    counts = service.counts(tenant_id, campaign)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": _status(campaign),
        "type": (campaign.dialect_data or {}).get("type", "AUTOMATED"),
        "createdAt": _shown_time(campaign.created_at),
        "triggers": [shown[n.id] for n in ordered if n.kind.startswith("trigger.")],
        "_count": _counts(campaign, counts),
        "workflow": visual,
        "ordered": ordered,
        "shown": shown,
        "counts": counts,
    }


def _summary(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    values = _summary_values(tenant_id, campaign)
    keys = ("id", "name", "status", "type", "createdAt", "triggers", "_count")
    return Seed004CampaignSummary.model_validate({k: values[k] for k in keys}).model_dump(
        by_alias=True
    )


def _ab_tests(ordered: list[Node], counts: Mapping[str, int]) -> list[dict[str, Any]]:
    tests = []
    for node in ordered:
        if not isinstance(node.config, AbSplit):
            continue
        variants = []
        for variant in node.config.variants:
            key = f"{node.id}.{variant.name}"
            results = {
                name: counts.get(variant_counter(key, name), 0)
                for name in ("entered", "sent", "conversions")
            }
            variants.append({"name": variant.name, "weight": variant.weight, "results": results})
        tests.append({"id": node.id, "variants": variants})
    return tests


def _detail(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    values = _summary_values(tenant_id, campaign)
    data = campaign.dialect_data or {}
    flow = campaign.family == "flow"
    ordered: list[Node] = values["ordered"]
    actions = [
        {**values["shown"][node.id], "order": order}
        for order, node in enumerate(n for n in ordered if not n.kind.startswith("trigger."))
    ]
    cap = campaign.campaign_frequency_cap
    audience = campaign.audience
    settings = {
        "frequencyCap": cap.max_messages if cap else None,
        "quietHours": campaign.quiet_hours.model_dump() if campaign.quiet_hours else None,
        "timezone": campaign.timezone,
        "audience": {
            "allContacts": audience.all_contacts,
            "segmentIds": list(audience.segment_ids),
            "listIds": list(audience.list_ids),
        },
    }
    detail = {
        **{k: values[k] for k in ("id", "name", "status", "type", "createdAt", "triggers")},
        "_count": values["_count"],
        "description": campaign.description,
        "updatedAt": _shown_time(campaign.updated_at),
        "startAt": _shown_time(campaign.starts_at) if flow else data.get("startAt"),
        "endAt": _shown_time(campaign.ends_at) if flow else data.get("endAt"),
        "settings": settings,
        "workflow": values["workflow"],
        "actions": actions,
        "abTests": _ab_tests(ordered, values["counts"]),
    }
    return Seed004CampaignDetail.model_validate(detail).model_dump(by_alias=True)


def _changes(decision: _Decision, current: Campaign) -> bool:
    """Whether the request changes anything but the status (a status alone is a move,
    which a campaign the runtime no longer lets edit may still make)."""
    return bool(decision.native) or decision.dialect_data != current.dialect_data


# -- life cycle ----------------------------------------------------------------------------
def _flow_action(current: str, target: str) -> Action | None:
    """The flow move from the seed status ``current`` to ``target``; None: already there."""
    if current == target:
        return None
    if target == "ACTIVE":
        return "resume" if current == "PAUSED" else "activate"
    if target == "PAUSED":
        return "pause"
    if target == "COMPLETED":
        return "complete"
    raise InvalidTransition(current.lower(), target.lower())


def _move_flow(tenant_id: str, campaign: Campaign, target: str, now: datetime) -> Campaign:
    action = _flow_action(_status(campaign), target)
    if action is None:
        return campaign
    with _seed_terms():
        return flows.lifecycle(tenant_id, campaign.id, action, now)


def _move_broadcast(
    tenant_id: str, campaign: Campaign, target: str, workflow: Workflow | None, now: datetime
) -> Campaign:
    current = _status(campaign)
    if current == target:
        return campaign
    rename = _send_terms(workflow, broadcast_send(workflow) if workflow else None)
    with _seed_terms(rename):
        if (current, target) == ("DRAFT", "ACTIVE"):
            at = _scheduled_at(workflow)
            if at is not None and at > now:
                return broadcasts.schedule(
                    tenant_id, campaign.id, at, None, now, use_default_sender=True
                )
            return broadcasts.send_now(tenant_id, campaign.id, now, use_default_sender=True)
        if (current, target) == ("ACTIVE", "PAUSED"):
            return broadcasts.pause(tenant_id, campaign.id, now)
        if (current, target) == ("PAUSED", "ACTIVE"):
            return broadcasts.resume(tenant_id, campaign.id, now)
    raise InvalidTransition(campaign.status, target.lower())


def _scheduled_at(workflow: Workflow | None) -> datetime | None:
    for node in workflow.triggers() if workflow else []:
        if isinstance(node.config, ScheduledTrigger):
            return node.config.at
    return None


# -- routes --------------------------------------------------------------------------------
_route = tenant_routes(blueprint, TAG, error_envelope=seed_errors, content_types=(JSON,))


def _workspace(call: Call) -> None:
    if call.params["workspaceId"] != call.tenant_id:
        raise NotFound("workspace not found", field="workspaceId")


def _campaign(call: Call) -> Campaign:
    _workspace(call)
    return service.get(call.tenant_id, ids.native(call.params["campaignId"], "cmp_"))


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        body=json_body(value), status_code=status, headers={"Content-Type": "application/json"}
    )


@_route(_COLLECTION, "GET", "List campaigns (newest first)", response=Seed004CampaignSummary)
def list_campaigns(call: Call) -> Response:
    _workspace(call)
    return _json([_summary(call.tenant_id, c) for c in service.every(call.tenant_id)])


@_route(
    _COLLECTION,
    "POST",
    "Create a campaign",
    status=201,
    body=Seed004Body,
    response=Seed004CampaignDetail,
)
def create_campaign(call: Call) -> Response:
    _workspace(call)
    decision = _Decision(call.body, None)
    now = clock.now()
    assert decision.workflow is not None
    send = broadcast_send(decision.workflow) if decision.seed_type == "BROADCAST" else None
    values = {"audience": {"all_contacts": True}, "type": "workflow"}
    if send is None:
        with _seed_terms():
            fields = native(NewCampaign, {**values, **_flow_fields(decision)})
            campaign = flows.create(call.tenant_id, fields, now)
    else:
        if "workflow" not in decision.dialect_data:  # a broadcast's graph is only this JSON
            raise ValidationFailed(
                f"a broadcast's workflow is kept as at most {DIALECT_DATA_MAX} bytes of JSON",
                field="workflow",
            )
        with _seed_terms(_send_terms(decision.workflow, send)):
            values["type"] = "broadcast"
            fields = native(NewCampaign, {**values, **_broadcast_fields(decision, send)})
            campaign = broadcasts.create(call.tenant_id, fields, now, use_default_sender=True)
    return _json(_detail(call.tenant_id, campaign), 201)


@_route(_ITEM, "GET", "Get a campaign", response=Seed004CampaignDetail)
def get_campaign(call: Call) -> Response:
    return _json(_detail(call.tenant_id, _campaign(call)))


@_route(_ITEM, "PATCH", "Update a campaign", body=Seed004Body, response=Seed004CampaignDetail)
def patch_campaign(call: Call) -> Response:
    tenant_id = call.tenant_id
    current = _campaign(call)
    decision = _Decision(call.body, current)
    now = clock.now()
    target = decision.status
    if current.family == "flow":
        if target in ("PAUSED", "COMPLETED"):  # stop first: a live flow is edited paused
            current = _move_flow(tenant_id, current, target, now)
        campaign = current
        if _changes(decision, current):  # a flow stays a flow, whatever its graph
            with _seed_terms():
                fields = native(CampaignFields, _flow_fields(decision))
                campaign = flows.edit(tenant_id, current.id, fields, now)
        if target is not None:
            campaign = _move_flow(tenant_id, campaign, target, now)
        return _json(_detail(tenant_id, campaign))
    workflow = decision.workflow or _graph(current)[0]
    send = broadcast_send(workflow) if workflow is not None else None
    if send is None or decision.seed_type != "BROADCAST":
        field = "workflow" if send is None else "type"
        raise ValidationFailed(
            "a native broadcast stays a Manual or one-time Scheduled trigger and one Send "
            "Message: create a new campaign for another graph or type",
            field=field,
        )
    edits = _broadcast_fields(decision, send if decision.workflow is not None else None)
    campaign = current
    if _changes(decision, current):
        with _seed_terms(_send_terms(workflow, send)):
            fields = native(CampaignFields, edits)
            campaign = broadcasts.edit(tenant_id, current.id, fields, now)
    if target is not None:
        campaign = _move_broadcast(tenant_id, campaign, target, workflow, now)
    return _json(_detail(tenant_id, campaign))


@_route(_ITEM, "DELETE", "Delete a campaign (permanently)", status=204)
def delete_campaign(call: Call) -> Response:
    campaign = _campaign(call)
    service.delete(call.tenant_id, campaign, clock.now())
    return Response(body="", status_code=204)


def _live_flow(campaign: Campaign) -> Workflow:
    if campaign.family != "flow" or campaign.workflow is None:
        raise ValidationFailed(
            "a broadcast sends to its audience when ACTIVE; it enrols no one", field="campaignId"
        )
    if campaign.status != "active":
        raise ValidationFailed(
            f"the campaign is {_status(campaign)}: contacts enter only an ACTIVE campaign",
            field="status",
        )
    return campaign.workflow


def _entry_trigger(workflow: Workflow) -> Node:
    """Where a contact enrolled by hand enters: the Manual trigger, else the first."""
    triggers = [n for n in in_position_order(workflow) if n.kind.startswith("trigger.")]
    return next((n for n in triggers if n.kind == "trigger.manual"), triggers[0])


def _details(answers: list[EnrolmentAnswer]) -> list[dict[str, Any]]:
    shown = []
    for answer in answers:
        detail: dict[str, Any] = {"contactId": answer.contact_id, "status": answer.outcome}
        if answer.reason is not None:
            detail["reason"] = answer.reason
        shown.append(detail)
    return shown


def _tally(answers: list[EnrolmentAnswer]) -> dict[str, Any]:
    return {
        "enrolled": sum(a.outcome == "enrolled" for a in answers),
        "alreadyEnrolled": sum(a.outcome == "already_enrolled" for a in answers),
        "errors": sum(a.outcome == "error" for a in answers),
        "details": _details(answers),
    }


@_route(
    f"{_ITEM}/enroll",
    "POST",
    "Enroll contacts into an ACTIVE campaign",
    body=Seed004EnrollBody,
    response=Seed004EnrollResult,
)
def enroll_contacts(call: Call) -> Response:
    campaign = _campaign(call)
    given = call.body.contactIds
    if (
        not isinstance(given, list)
        or not given
        or len(given) > MAX_CONTACTS
        or not all(isinstance(c, str) and c for c in given)
    ):
        raise ValidationFailed(
            f"a list of 1 to {MAX_CONTACTS} contact ids (strings)", field="contactIds"
        )
    trigger = _entry_trigger(_live_flow(campaign))
    answers = enrol_contacts(
        call.tenant_id, campaign.id, given, clock.now(), trigger_node_id=trigger.id
    )
    return _json(_tally(answers))


def _matching_trigger(workflow: Workflow, body: Seed004ExecuteBody) -> Node:
    kind = VISUAL_KINDS.get(body.triggerType) if isinstance(body.triggerType, str) else None
    if kind is None or not kind.startswith("trigger."):
        raise ValidationFailed(f"must be one of {', '.join(TRIGGER_TYPES)}", field="triggerType")
    candidates = [n for n in in_position_order(workflow) if n.kind == kind]
    if not candidates:
        raise ValidationFailed(
            f"the campaign has no {body.triggerType} trigger", field="triggerType"
        )
    for name, key in (("segmentId", "segment_id"), ("eventType", "event_type")):
        wanted = getattr(body, name)
        if wanted is not None:
            candidates = [n for n in candidates if getattr(n.config, key, None) == wanted]
            if not candidates:
                raise ValidationFailed(
                    f"no {body.triggerType} trigger of the campaign has this {name}", field=name
                )
    return candidates[0]


@_route(
    f"{_ITEM}/execute",
    "POST",
    "Execute a campaign for a contact, or process a trigger",
    body=Seed004ExecuteBody,
    response=Seed004ExecuteResult,
)
def execute_campaign(call: Call) -> Response:
    campaign = _campaign(call)
    body: Seed004ExecuteBody = call.body
    if body.action not in ("execute_for_contact", "process_trigger"):
        raise ValidationFailed("must be execute_for_contact or process_trigger", field="action")
    workflow = _live_flow(campaign)
    now = clock.now()
    tenant_id = call.tenant_id
    trigger = (
        _entry_trigger(workflow)
        if body.action == "execute_for_contact"
        else _matching_trigger(workflow, body)
    )
    one_by_one = body.action == "execute_for_contact" or trigger.kind in (
        "trigger.event",
        "trigger.segment_exit",
    )
    if one_by_one:
        # An event or a segment exit selects a contact as it happens: name the contact.
        if not isinstance(body.contactId, str) or not body.contactId:
            raise ValidationFailed(f"required for {trigger.kind}", field="contactId")
        [answer] = enrol_contacts(
            tenant_id, campaign.id, [body.contactId], now, trigger_node_id=trigger.id
        )
        if answer.reason == "not_found":
            raise NotFound(f"contact '{body.contactId}' not found", field="contactId")
        return _json({"action": body.action, **_tally([answer])})
    segment_id = (
        str(trigger.config.segment_id)  # type: ignore[union-attr]
        if trigger.kind == "trigger.segment_entry"
        else None
    )
    entered = service.enter_selection(tenant_id, campaign, trigger.id, segment_id, now)
    return _json(
        {
            "action": body.action,
            "enrolled": entered.enrolled,
            "alreadyEnrolled": entered.already_enrolled,
            "errors": entered.errors,
            "details": [],
            "queued": entered.queued,
        }
    )
