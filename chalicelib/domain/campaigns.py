"""Campaigns: what one is, which inputs are acceptable, and how its status may change.

A campaign is a definition (channel, audience, content pools, timing rules) plus a status
that moves only along ``TRANSITIONS``, the one table of the state machine. Every status
change anywhere in Herald (the API's actions, the planner's start, the sender's
completion) goes through ``advance``, so a change the table does not list is refused
with ``InvalidTransition`` naming the current state.

A campaign has ``steps`` even though a broadcast has exactly one (``"main"``): sequences
and workflows, which come later, add steps, and the send ledger is already keyed by step.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from chalicelib.domain.audience import AudienceSpec
from chalicelib.domain.automation import AutomationPlan, IterationState
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import EmailAddress, TimezoneName
from chalicelib.domain.errors import Conflict, InvalidTransition, ValidationFailed
from chalicelib.domain.events import EventName
from chalicelib.domain.flows.graph import (
    MAX_EXIT_ON,
    FlowSettings,
    Reentry,
    Workflow,
    load_workflow,
)
from chalicelib.domain.flows.nodes import ScheduledTrigger, SendAction
from chalicelib.domain.flows.policy import CampaignCap
from chalicelib.domain.flows.timing import Duration
from chalicelib.domain.flows.windows import SendWindow
from chalicelib.domain.ids import collapsed, uuid7_hex
from chalicelib.domain.model import Model
from chalicelib.domain.net import URL_MAX_LENGTH, parse_target_url
from chalicelib.domain.verification import VerificationSettings

CampaignStatus = Literal[
    "draft",
    "scheduled",
    "calculating",
    "sending",
    "active",
    "paused",
    "sent",
    "completed",
    "failed",
    "cancelled",
]
STATUSES: tuple[CampaignStatus, ...] = get_args(CampaignStatus)
FINAL_STATUSES: frozenset[CampaignStatus] = frozenset({"sent", "completed", "failed", "cancelled"})
Channel = ChannelName
CampaignType = Literal["broadcast", "automation", "event_triggered", "sequence", "workflow"]
# What the native API creates; sequences and event-triggered sends are made through their
# own dialects (readable natively, never created or retyped here).
SUPPORTED_TYPES: frozenset[CampaignType] = frozenset({"broadcast", "automation", "workflow"})
# Two families share the table below: a broadcast plans its audience once and sends it
# (docs/engine.md); a flow enrols contacts one by one and walks each through its graph
# (docs/flows.md). Sequences and event-triggered sends are flows under another name.
Family = Literal["broadcast", "flow"]
FLOW_TYPES: frozenset[CampaignType] = frozenset({"workflow", "sequence", "event_triggered"})
Action = Literal[
    "activate",
    "schedule",
    "reschedule",
    "unschedule",
    "send_now",
    "start",
    "planned",
    "complete",
    "fail",
    "pause",
    "resume",
    "cancel",
    "iterate",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
MAIN_STEP = "main"

# The state machine: for each family and status, the actions allowed in it and where
# each leads. Anything not listed is refused. For broadcasts ``start`` (by the planner,
# when the schedule fires), ``planned``, ``complete`` and ``fail`` are the system's; the
# rest are the API's. A flow's ``complete`` is the API's (or its ``ends_at``): a flow
# never completes just because nobody is waiting in it.
TRANSITIONS: Mapping[CampaignStatus, Mapping[Action, CampaignStatus]] = MappingProxyType(
    {
        "draft": {"schedule": "scheduled", "send_now": "scheduled", "cancel": "cancelled"},
        "scheduled": {
            "reschedule": "scheduled",
            "unschedule": "draft",
            "send_now": "scheduled",
            "start": "calculating",
            "cancel": "cancelled",
        },
        "calculating": {"planned": "sending", "fail": "failed", "cancel": "cancelled"},
        # An automation plans its next iteration (docs/engine.md, "Automation iterations").
        "sending": {
            "iterate": "calculating",
            "pause": "paused",
            "complete": "sent",
            "fail": "failed",
            "cancel": "cancelled",
        },
        # Completion is allowed while paused: a pause that lands after the last batch
        # finished must not leave a campaign with nothing left to send stuck forever.
        "paused": {
            "resume": "sending",
            "complete": "sent",
            "fail": "failed",
            "cancel": "cancelled",
        },
        "sent": {},
        "failed": {},
        "cancelled": {},
    }
)
FLOW_TRANSITIONS: Mapping[CampaignStatus, Mapping[Action, CampaignStatus]] = MappingProxyType(
    {
        "draft": {"activate": "active", "cancel": "cancelled"},
        "active": {"pause": "paused", "complete": "completed", "cancel": "cancelled"},
        "paused": {"resume": "active", "complete": "completed", "cancel": "cancelled"},
        "completed": {},
        "cancelled": {},
    }
)
TRANSITIONS_BY_FAMILY: Mapping[Family, Mapping[CampaignStatus, Mapping[Action, CampaignStatus]]] = (
    MappingProxyType({"broadcast": TRANSITIONS, "flow": FLOW_TRANSITIONS})
)
# Within a family every action leads to one status wherever it is allowed: that status
# is what an illegal request is reported as asking for ("cannot move from 'draft' to
# 'paused'").
ACTION_TARGETS_BY_FAMILY: Mapping[Family, Mapping[Action, CampaignStatus]] = MappingProxyType(
    {
        family: MappingProxyType(
            {action: target for moves in table.values() for action, target in moves.items()}
        )
        for family, table in TRANSITIONS_BY_FAMILY.items()
    }
)
ACTION_TARGETS = ACTION_TARGETS_BY_FAMILY["broadcast"]
EDITABLE_STATUSES: frozenset[CampaignStatus] = frozenset({"draft", "scheduled"})
# A live flow is edited only while paused (docs/flows.md, "Editing a live flow").
FLOW_EDITABLE_STATUSES: frozenset[CampaignStatus] = frozenset({"draft", "paused"})
DELETABLE_STATUSES: frozenset[CampaignStatus] = frozenset({"draft", *FINAL_STATUSES})
# What a caller may set on a flow only (docs/flows.md, "Campaign-level settings");
# ``campaign_frequency_cap`` is for every campaign (docs/engine.md).
FLOW_FIELDS = frozenset(
    {
        "workflow",
        "reentry",
        "exit_on",
        "max_lateness",
        "starts_at",
        "ends_at",
    }
)

# EventBridge Scheduler fires at(), never before it; a start message may still arrive a
# little early by clock skew. Later than this before ``scheduled_at`` it is stale (a
# schedule that a reschedule moved) and is refused, so nothing starts early.
START_LEEWAY = timedelta(seconds=15)
# Why a campaign paused, as the ``campaign.paused`` webhook says: a person (``manual``:
# ``pause_reason`` stays empty), the provider's daily quota, a template that keeps
# failing to render, or a deliverability breaker code (chalicelib.domain.deliverability).
PAUSE_MANUAL = "manual"
PAUSE_QUOTA = "quota"
PAUSE_RENDER_FAILURES = "render_failures"
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
POOL_MAX = 20
DIALECT_DATA_MAX = 16_384
MAX_MESSAGES_PER_DAY = 1000
_CAMPAIGN_ID = re.compile(r"^cmp_[0-9a-f]{32}$")
_RESOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_CLOCK_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"
_UNIX_SECONDS = re.compile(r"^-?\d+(\.\d+)?$")


# -- errors ----------------------------------------------------------------------------
class CampaignLocked(Conflict):
    """An edit or delete the campaign's status forbids (409, naming the current status)."""

    code = "campaign_locked"

    def __init__(self, current: CampaignStatus, operation: str, allowed: frozenset[str]) -> None:
        states = ", ".join(s for s in STATUSES if s in allowed)
        super().__init__(
            f"a campaign can be {operation} only when {states}; this one is '{current}'",
            field="status",
        )
        self.current = current


class NotDue(InvalidTransition):
    """A start requested well before ``scheduled_at``: a stale schedule or sweep message."""

    def __init__(self, scheduled_at: datetime | None) -> None:
        super().__init__("scheduled", "calculating", field="scheduled_at")
        self.message = (
            f"the campaign is not due until {scheduled_at.isoformat()}"
            if scheduled_at
            else "the campaign has no scheduled time"
        )
        self.args = (self.message,)


# -- ids -------------------------------------------------------------------------------
def new_campaign_id(now: datetime) -> str:
    """``cmp_`` + a UUIDv7 in hex (``chalicelib.domain.ids``): ids sort by creation time.

    The store keeps campaigns under their id as sort key, so a listing newest first is a
    plain reverse Query; the id is also the EventBridge schedule's name (≤ 64 characters).
    """
    return "cmp_" + uuid7_hex(now)


def is_campaign_id(value: str) -> bool:
    return bool(_CAMPAIGN_ID.match(value))


# -- field rules -------------------------------------------------------------------------
def _single_line(value: str) -> str:
    """No control characters: names end up in listings and (from_name) in mail headers."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _unique(values: list[str]) -> list[str]:
    """Duplicates are dropped, first occurrence kept: a pool rotates over distinct items."""
    return list(dict.fromkeys(values))


def _supported_type(value: CampaignType) -> CampaignType:
    if value not in SUPPORTED_TYPES:
        raise ValueError(
            f"'{value}' campaigns are not yet supported (only broadcast, automation and workflow)"
        )
    return value


def check_callback_url(value: str) -> str:
    """An ``event_callback`` must be an absolute http(s) URL with a host, no credentials.

    The one hook for callback targets: the address policy against SSRF (no private,
    loopback or link-local destinations) is ``chalicelib.domain.net``, applied to the
    resolved addresses when a callback is delivered; stricter checks at input go here.
    The URL kept is the normalised one (IDNA host, percent-encoded path and query).
    """
    return parse_target_url(value, field="event_callback").url


def parse_instant(value: Any) -> Any:
    """ISO 8601 text or Unix seconds (a number, or digits in a form field) as a datetime.

    Text without an offset stays naive: it is a wall-clock time in the campaign's
    timezone, resolved by ``resolve_scheduled_at``. Anything else is left for pydantic to
    refuse with its own message.
    """
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 time or Unix seconds")
    if isinstance(value, str) and _UNIX_SECONDS.match(value.strip()):
        value = float(value)
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("Unix seconds out of range") from None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("must be an ISO 8601 time or Unix seconds") from None
    return value


def resolve_scheduled_at(value: datetime, timezone: str) -> datetime:
    """``value`` as a UTC instant in whole seconds (EventBridge's ``at()`` resolution).

    A naive value is a wall-clock time in ``timezone``. One that does not exist there (a
    spring-forward gap) is refused; one that occurs twice (fall back) is its first
    occurrence.
    """
    if value.tzinfo is None:
        zone = ZoneInfo(timezone)
        local = value.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
            raise ValidationFailed(
                f"{value.isoformat()} does not exist in {timezone} (a daylight-saving gap)",
                field="scheduled_at",
            )
        value = local
    return value.astimezone(UTC).replace(microsecond=0)


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, default=str)) > DIALECT_DATA_MAX:
        raise ValueError(f"at most {DIALECT_DATA_MAX} bytes of JSON")
    return value


DialectData = Annotated[dict[str, Any], AfterValidator(_small_json)]
CampaignName = Annotated[
    str, Field(min_length=1, max_length=NAME_MAX_LENGTH), AfterValidator(_single_line)
]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH)]
# A prefixed dashed UUID (``tpl_3c90c3cc-0d44-…``) is taken for the native id.
ResourceId = Annotated[
    str,
    BeforeValidator(lambda v: collapsed(v) if isinstance(v, str) else v),
    Field(min_length=1, max_length=64, pattern=_RESOURCE_ID),
]
IdPool = Annotated[list[ResourceId], Field(max_length=POOL_MAX), AfterValidator(_unique)]
FromName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
CallbackUrl = Annotated[str, Field(max_length=URL_MAX_LENGTH), AfterValidator(check_callback_url)]
EditionId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_single_line)]
SupportedType = Annotated[CampaignType, AfterValidator(_supported_type)]
FlowTime = Annotated[
    AwareDatetime,
    BeforeValidator(parse_instant),
    Field(description="ISO 8601 with an offset, or Unix seconds"),
]


def _loaded_workflow(value: Any) -> Any:
    """A workflow payload checked whole by ``load_workflow``: its ValidationFailures (a 422
    listing every problem in ``details``) is not a ValueError, so it leaves pydantic as is."""
    return value if isinstance(value, Workflow) else load_workflow(value)


WorkflowInput = Annotated[Workflow, BeforeValidator(_loaded_workflow)]
ScheduledTime = Annotated[
    datetime,
    BeforeValidator(parse_instant),
    Field(description="ISO 8601 (without an offset: in the campaign's timezone) or Unix seconds"),
]


# -- value objects -----------------------------------------------------------------------
class Audience(Model):
    """Who a campaign goes to: every contact, or the union of lists and segments, narrowed
    to the members of ``within_list_ids`` when it names any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all_contacts: bool = False
    segment_ids: IdPool = Field(default_factory=list)
    list_ids: IdPool = Field(default_factory=list)
    within_list_ids: IdPool = Field(
        default_factory=list,
        description="Only members of one of these lists are sent to (e.g. segments within a "
        "list: segment_ids [s], within_list_ids [l]).",
    )

    @model_validator(mode="after")
    def _all_or_some(self) -> Audience:
        if self.all_contacts and (self.segment_ids or self.list_ids or self.within_list_ids):
            raise ValueError("all_contacts excludes segment_ids, list_ids and within_list_ids")
        return self

    @property
    def is_empty(self) -> bool:
        return not (self.all_contacts or self.segment_ids or self.list_ids)

    def spec(self) -> AudienceSpec | None:
        """The lists and segments to evaluate, or None for every contact of the tenant.

        Only for a campaign that passed ``check_ready``: an empty audience has no spec.
        """
        if self.all_contacts:
            return None
        return AudienceSpec(
            segment_ids=self.segment_ids,
            list_ids=self.list_ids,
            within_list_ids=self.within_list_ids,
        )


class QuietHours(Model):
    """Local wall-clock times between which nothing is sent, e.g. 21:00 to 08:00.

    Read in each contact's timezone (else the campaign's); a start later than the end
    crosses midnight. The arithmetic is ``chalicelib.domain.delivery.next_allowed``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(pattern=_CLOCK_TIME, examples=["21:00"])
    end: str = Field(pattern=_CLOCK_TIME, examples=["08:00"])

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)


class FrequencyCap(Model):
    """At most ``max_messages`` per contact in any rolling 24 hours, across the tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_messages: int = Field(ge=1, le=MAX_MESSAGES_PER_DAY)
    per_hours: Literal[24] = 24


class Step(Model):
    """One message of a campaign: its channel and the pools rotated across recipients."""

    model_config = ConfigDict(frozen=True)

    id: str = MAIN_STEP
    channel: Channel
    template_ids: list[str] = Field(default_factory=list)
    sender_ids: list[str] = Field(default_factory=list)


# -- the campaign ------------------------------------------------------------------------
class Campaign(Model):
    """A campaign as stored. Counts (sent, failed, skipped) live in sharded counter items."""

    model_config = ConfigDict(frozen=True)

    id: str
    number: int = Field(description="The campaign's small integer id (seed-003 API).")
    name: str
    description: str = ""
    channel: Channel
    type: CampaignType = "broadcast"
    status: CampaignStatus = "draft"
    audience: Audience = Field(default_factory=Audience)
    steps: list[Step]
    from_name: str | None = None
    reply_to: str | None = None
    scheduled_at: datetime | None = Field(
        default=None,
        description="When it starts (scheduled); a draft may hold a planned time, which "
        "never starts it by itself.",
    )
    held: bool = Field(
        default=False,
        description="A draft whose planned time is settled but not armed (seed 003's "
        "SCHEDULED); cleared when the campaign leaves draft.",
    )
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    frequency_cap: FrequencyCap | None = None
    track_opens: bool = True
    track_clicks: bool = True
    event_callback: str | None = None
    edition_id: str | None = None
    total_recipients: int | None = None
    planned_batches: int | None = None
    planning_done: bool = False
    plan_chains: int | None = Field(
        default=None,
        ge=1,
        description="Planning chains fixed at the start (docs/engine.md); None: one chain.",
    )
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    error_message: str | None = Field(
        default=None,
        description="Why the campaign failed, or why the pipeline paused it (cleared on resume).",
    )
    resume_at: datetime | None = Field(
        default=None,
        description="A campaign the pipeline paused for the provider's quota resumes itself then.",
    )
    pause_reason: str | None = Field(
        default=None,
        description="The code of a pause the campaign gave itself (domain.deliverability "
        "PAUSE_*: the campaign.paused webhook's reason); cleared on resume.",
    )
    resumed_at: datetime | None = Field(
        default=None,
        description="The last resume: the deliverability breaker counts only outcomes after it.",
    )
    verification: VerificationSettings | None = Field(
        default=None, description="Address verification before sending (active: on)."
    )
    dialect_data: dict[str, Any] | None = Field(
        default=None,
        description="What a seed dialect keeps to echo back and Herald does not act on "
        "(seed 000: delivery_type, meta, contact_cache_level, …).",
    )
    # -- automations only (docs/engine.md, "Automation iterations") --------------------
    automation: AutomationPlan | None = Field(
        default=None, description="How an automation sends in iterations (defaults if null)."
    )
    iterations: IterationState | None = Field(
        default=None, description="An automation's progress through its iterations."
    )
    # -- flows only (docs/flows.md): the graph and its campaign-level rules ------------
    workflow: Workflow | None = Field(
        default=None, description="A flow's graph; its send nodes are the campaign's steps."
    )
    reentry: Reentry = Field(default_factory=Reentry)
    exit_on: list[EventName] = Field(
        default_factory=list, description="Goal events: one exits the contact (reason goal)."
    )
    max_lateness: Duration | None = None
    campaign_frequency_cap: CampaignCap | None = Field(
        default=None,
        description="This campaign's own cap per contact; the tenant-wide frequency_cap "
        "applies as well.",
    )
    starts_at: datetime | None = Field(
        default=None, description="A flow enrols nobody before this (reason before_start)."
    )
    send_windows: list[SendWindow] = Field(
        default_factory=list,
        description="A flow's messages go out only inside these local windows (deferred to "
        "the next opening otherwise); none: any time outside quiet hours.",
    )
    stop_on_reply: bool = Field(
        default=False, description="A reply to any of its messages exits the contact (replied)."
    )
    dialect_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="What a seed dialect keeps for its clients beside the native fields "
        "(seed 001: company, created_by, its steps…); Herald itself never reads it.",
    )
    ends_at: datetime | None = Field(default=None, description="A flow completes at this time.")
    created_at: datetime
    updated_at: datetime
    revision: int = Field(default=0, description="Bumped by every write; optimistic locking.")

    @property
    def family(self) -> Family:
        return family_of(self.type)

    @property
    def flow_settings(self) -> FlowSettings:
        return FlowSettings(
            reentry=self.reentry,
            exit_on=self.exit_on,
            max_lateness=self.max_lateness,
            frequency_cap=self.campaign_frequency_cap,
        )

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    @property
    def automation_plan(self) -> AutomationPlan:
        """An automation's plan (the seed's defaults when none was given)."""
        return self.automation or AutomationPlan()

    @property
    def main_step(self) -> Step:
        return next((s for s in self.steps if s.id == MAIN_STEP), self.steps[0])

    @property
    def template_ids(self) -> list[str]:
        return self.main_step.template_ids

    @property
    def sender_ids(self) -> list[str]:
        return self.main_step.sender_ids


class CampaignFields(Model):
    """What a caller may set on a campaign: the body of a PATCH (and, required, of a create).

    Only the fields present count (``model_fields_set``); an explicit null clears a
    nullable field. ``template_ids`` and ``sender_ids`` fill the broadcast's one step.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: CampaignName | None = None
    description: Description | None = None
    channel: Channel | None = None
    type: SupportedType | None = None
    audience: Audience | None = None
    template_ids: IdPool | None = Field(
        default=None, description="Templates rotated across recipients, the same per contact."
    )
    sender_ids: IdPool | None = Field(
        default=None, description="Sender identities rotated across recipients."
    )
    from_name: FromName | None = None
    reply_to: EmailAddress | None = None
    timezone: TimezoneName | None = Field(
        default=None, description="IANA; reads quiet hours and offset-less scheduled times."
    )
    quiet_hours: QuietHours | None = None
    frequency_cap: FrequencyCap | None = Field(
        default=None,
        description="At most max_messages per contact in 24 h, counting the messages of "
        "every campaign of the tenant that has a cap.",
    )
    campaign_frequency_cap: CampaignCap | None = Field(
        default=None,
        description="At most max_messages per contact in per_hours hours from this "
        "campaign alone; frequency_cap must pass as well.",
    )
    track_opens: bool | None = None
    track_clicks: bool | None = None
    event_callback: CallbackUrl | None = None
    edition_id: EditionId | None = None
    # -- a workflow's graph and rules (docs/flows.md); refused on a broadcast -----------
    workflow: WorkflowInput | None = Field(
        default=None, description="The graph: {nodes, edges}. Its send nodes carry the content."
    )
    reentry: Reentry | None = None
    exit_on: list[EventName] | None = Field(default=None, max_length=MAX_EXIT_ON)
    max_lateness: Duration | None = None
    starts_at: FlowTime | None = Field(default=None, description="Nobody enters before this.")
    ends_at: FlowTime | None = Field(default=None, description="The flow completes then.")
    automation: AutomationPlan | None = Field(
        default=None, description="type automation: iterations and their delivery gate."
    )
    verification: VerificationSettings | None = Field(
        default=None, description="Verify addresses before sending; only acceptable ones get mail."
    )
    dialect_data: DialectData | None = Field(
        default=None, description="Kept and echoed for a seed dialect (at most 16 KB of JSON)."
    )

    @field_validator(
        "name",
        "channel",
        "type",
        "audience",
        "template_ids",
        "sender_ids",
        "timezone",
        "track_opens",
        "track_clicks",
        "workflow",
        "reentry",
        "exit_on",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """Runs only for fields the caller sent: these have no "unset" state to clear to."""
        if value is None:
            raise ValueError("cannot be null")
        return value


class NewCampaign(CampaignFields):
    """The body of a create: a name and a channel at least; everything else can wait.

    A workflow needs no channel: its channel is its first send node's (else email).
    """

    name: CampaignName
    channel: Channel = Field(description="Required for a broadcast; a workflow's is derived.")

    @model_validator(mode="before")
    @classmethod
    def _flow_channel(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in FLOW_TYPES and "channel" not in data:
            return {**data, "channel": "email"}  # a placeholder: every write derives it
        return data


def new_campaign(campaign_id: str, number: int, fields: NewCampaign, now: datetime) -> Campaign:
    """A draft made from ``fields``."""
    blank = Campaign(
        id=campaign_id,
        number=number,
        name=fields.name,
        channel=fields.channel,
        type=fields.type or "broadcast",
        steps=[Step(channel=fields.channel)],
        created_at=now,
        updated_at=now,
    )
    return _with_fields(blank, fields, now)


def flow_steps(workflow: Workflow) -> list[Step]:
    """A flow's steps: one per send node (``Step.id`` is the node id), in graph order.

    The sender, the ledger and the stats read a message's channel and pools from its
    step, the same for a broadcast's one step and a flow's many.
    """
    return [
        Step(
            id=node.id,
            channel=node.config.channel,
            template_ids=list(node.config.template_ids),
            sender_ids=list(node.config.sender_ids or []),
        )
        for node in workflow.nodes
        if isinstance(node.config, SendAction)
    ]


def edit(campaign: Campaign, fields: CampaignFields, now: datetime) -> Campaign:
    """``campaign`` with the fields the caller sent; unchanged when nothing differs.

    Only a draft or a scheduled campaign can be edited; a scheduled one must stay ready
    to start (its pools and audience cannot be emptied). A flow is edited while draft or
    paused, never while active (pause it first).
    """
    editable = FLOW_EDITABLE_STATUSES if campaign.family == "flow" else EDITABLE_STATUSES
    if campaign.status not in editable:
        raise CampaignLocked(campaign.status, "edited", editable)
    edited = _with_fields(campaign, fields, now)
    if edited.model_dump(exclude={"updated_at"}) == campaign.model_dump(exclude={"updated_at"}):
        return campaign
    if edited.status == "scheduled":
        check_ready(edited)
    return edited


def _with_fields(campaign: Campaign, fields: CampaignFields, now: datetime) -> Campaign:
    if "type" in fields.model_fields_set and family_of(fields.type or "broadcast") != (
        campaign.family
    ):
        raise ValidationFailed(
            f"a {campaign.family} cannot become a {family_of(fields.type or 'broadcast')}",
            field="type",
        )
    if campaign.family == "flow":
        return _with_flow_fields(campaign, fields, now)
    for name in FLOW_FIELDS & fields.model_fields_set:
        if getattr(fields, name) is not None:
            raise ValidationFailed(f"only a workflow has {name}", field=name)
    values = campaign.model_dump()
    step = campaign.main_step.model_dump()
    for name in fields.model_fields_set:
        given = getattr(fields, name)
        if name == "description" and given is None:
            given = ""  # null clears it: a campaign's description is never absent
        if name in ("template_ids", "sender_ids"):
            step[name] = given
        else:
            values[name] = given.model_dump() if isinstance(given, BaseModel) else given
    step["channel"] = values["channel"]
    values["steps"] = [step, *[s for s in values["steps"] if s["id"] != MAIN_STEP]]
    values["updated_at"] = now
    return Campaign.model_validate(values)


def _with_flow_fields(campaign: Campaign, fields: CampaignFields, now: datetime) -> Campaign:
    """A flow's edit: its content lives on its send nodes, so its steps and channel are
    derived from the graph on every write, never given."""
    for name in ("template_ids", "sender_ids"):
        if name in fields.model_fields_set:
            raise ValidationFailed(
                f"a workflow's {name} are on its send nodes (workflow.nodes.<i>.config)",
                field=name,
            )
    values = campaign.model_dump()
    for name in fields.model_fields_set:
        given = getattr(fields, name)
        if name == "description" and given is None:
            given = ""
        values[name] = given.model_dump() if isinstance(given, BaseModel) else given
    workflow = Workflow.model_validate(values["workflow"]) if values["workflow"] else None
    steps = flow_steps(workflow) if workflow is not None else []
    values["channel"] = steps[0].channel if steps else "email"
    values["steps"] = [s.model_dump() for s in steps] or [{"channel": values["channel"]}]
    values["updated_at"] = now
    edited = Campaign.model_validate(values)
    if edited.starts_at and edited.ends_at and edited.starts_at >= edited.ends_at:
        raise ValidationFailed("ends_at must be after starts_at", field="ends_at")
    return edited


def check_flow_ready(campaign: Campaign, now: datetime) -> None:
    """What a flow needs before it is activated (beyond its tenant's data, which the
    service checks): its graph, an end not yet past, and an audience for any
    ``trigger.scheduled`` to enter."""
    if campaign.workflow is None:
        raise ValidationFailed("the workflow has no graph yet: set workflow", field="workflow")
    if campaign.ends_at is not None and campaign.ends_at <= now:
        raise ValidationFailed("ends_at has passed", field="ends_at")
    scheduled = any(isinstance(n.config, ScheduledTrigger) for n in campaign.workflow.nodes)
    if scheduled and campaign.audience.is_empty:
        raise ValidationFailed(
            "a trigger.scheduled enters the campaign's audience: set all_contacts, "
            "segment_ids or list_ids",
            field="audience",
        )


def planned(
    campaign: Campaign, now: datetime, *, scheduled_at: datetime | None, held: bool
) -> Campaign:
    """A draft holding ``scheduled_at`` as its planned time (``held``: settled).

    A draft never starts by itself, whatever time it holds; ``schedule`` arms it (and may
    use the time it holds). Only a draft holds a time this way: a scheduled campaign is
    moved with ``reschedule``.
    """
    if campaign.status != "draft":
        raise CampaignLocked(campaign.status, "given a planned time", frozenset({"draft"}))
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        raise ValueError("a planned time must be aware")
    if held and scheduled_at is None:
        raise ValidationFailed("a time is needed to hold the campaign", field="scheduled_at")
    if (campaign.scheduled_at, campaign.held) == (scheduled_at, held):
        return campaign
    return campaign.model_copy(
        update={"scheduled_at": scheduled_at, "held": held, "updated_at": now}
    )


def ensure_deletable(campaign: Campaign) -> None:
    """A campaign that may still send (scheduled, running, paused) must be cancelled first."""
    if campaign.status not in DELETABLE_STATUSES:
        raise CampaignLocked(campaign.status, "deleted", DELETABLE_STATUSES)


def check_ready(campaign: Campaign) -> None:
    """What a campaign needs before it may be scheduled or sent: 422 naming what lacks."""
    if campaign.type not in SUPPORTED_TYPES:
        raise ValidationFailed(f"'{campaign.type}' campaigns are not yet supported", field="type")
    if campaign.audience.is_empty:
        raise ValidationFailed(
            "the campaign has no audience: set all_contacts, segment_ids or list_ids",
            field="audience",
        )
    check_pools(campaign)


def check_pools(campaign: Campaign) -> None:
    """A message needs a template and a sender (also for a test send, without an audience)."""
    if not campaign.template_ids:
        raise ValidationFailed("the campaign needs at least one template", field="template_ids")
    if not campaign.sender_ids:
        raise ValidationFailed("the campaign needs at least one sender", field="sender_ids")


def check_channels(
    campaign: Campaign,
    template_channels: Mapping[str, str],
    sender_channels: Mapping[str, str],
) -> None:
    """Every template and sender exists (is in the mapping) and speaks the campaign's channel.

    The mappings (id → channel) are read by the caller from the stores; the field named in
    an error is the position in the pool, e.g. ``template_ids.1``.
    """
    pools = (
        ("template", "template_ids", template_channels),
        ("sender", "sender_ids", sender_channels),
    )
    for kind, field, channels in pools:
        for index, item_id in enumerate(getattr(campaign.main_step, field)):
            channel = channels.get(item_id)
            if channel is None:
                raise ValidationFailed(f"{kind} '{item_id}' not found", field=f"{field}.{index}")
            if channel != campaign.channel:
                raise ValidationFailed(
                    f"{kind} '{item_id}' is for {channel}; this campaign sends {campaign.channel}",
                    field=f"{field}.{index}",
                )


# -- the state machine -------------------------------------------------------------------
def family_of(campaign_type: CampaignType) -> Family:
    return "flow" if campaign_type in FLOW_TYPES else "broadcast"


def transition(
    current: CampaignStatus, action: Action, family: Family = "broadcast"
) -> CampaignStatus:
    """Where ``action`` leads from ``current`` in ``family``'s table; InvalidTransition
    when the table forbids it (or the status is the other family's)."""
    target = TRANSITIONS_BY_FAMILY[family].get(current, {}).get(action)
    if target is None:
        raise InvalidTransition(current, _requested(action, family))
    return target


def _requested(action: Action, family: Family) -> str:
    """The status ``action`` asks for, in ``family`` if it has the action, else the other."""
    for targets in (ACTION_TARGETS_BY_FAMILY[family], *ACTION_TARGETS_BY_FAMILY.values()):
        if action in targets:
            return targets[action]
    return action


def is_due(campaign: Campaign, now: datetime) -> bool:
    return campaign.scheduled_at is not None and campaign.scheduled_at <= now + START_LEEWAY


# Fields the pipeline records on its way (any action); schedule actions add their own.
PROGRESS_FIELDS = frozenset(
    {
        "total_recipients",
        "planned_batches",
        "planning_done",
        "plan_chains",
        "error_message",
        "resume_at",
        "pause_reason",
        "iterations",
    }
)
_SCHEDULE_FIELDS = frozenset({"scheduled_at", "timezone"})
_STAMPS: Mapping[Action, str] = MappingProxyType(
    {
        "activate": "started_at",
        "start": "started_at",
        "complete": "completed_at",
        "fail": "completed_at",
        "cancel": "cancelled_at",
        "resume": "resumed_at",
    }
)


def advance(campaign: Campaign, action: Action, now: datetime, **fields: Any) -> Campaign:
    """``campaign`` after ``action`` at ``now``, with ``fields`` recorded alongside.

    Raises InvalidTransition (the table forbids it), NotDue (a start well before
    ``scheduled_at``) or ValidationFailed (a schedule in the past; not ready to send).
    ``schedule``/``reschedule`` need ``scheduled_at`` (aware) and may set ``timezone``;
    ``send_now`` schedules at ``now``; ``unschedule`` clears the time.
    """
    target = transition(campaign.status, action, campaign.family)
    schedules = action in ("schedule", "reschedule")
    unknown = set(fields) - PROGRESS_FIELDS - (_SCHEDULE_FIELDS if schedules else set())
    if unknown:
        raise ValueError(f"{action} cannot set {sorted(unknown)}")
    if action == "start" and not is_due(campaign, now):
        raise NotDue(campaign.scheduled_at)
    if action == "iterate" and campaign.type != "automation":
        raise InvalidTransition(campaign.status, target)
    values = {**campaign.model_dump(), **fields, "status": target, "updated_at": now}
    if schedules:
        at = fields.get("scheduled_at")
        if at is None or at.tzinfo is None:
            raise ValueError(f"{action} needs an aware scheduled_at")
        if at <= now:
            raise ValidationFailed(
                "scheduled_at must be in the future (use send to send now)", field="scheduled_at"
            )
    elif action == "send_now":
        values["scheduled_at"] = now.replace(microsecond=0)
    elif action == "unschedule":
        values["scheduled_at"] = None
    elif action == "resume":
        # Why the pipeline paused it (a quota, failing renders) no longer holds.
        values["error_message"] = None
        values["resume_at"] = None
        values["pause_reason"] = None
    if action in _STAMPS:
        values[_STAMPS[action]] = now
    if target != "draft":
        values["held"] = False
    advanced = Campaign.model_validate(values)
    if target == "scheduled":
        check_ready(advanced)
    return advanced


def with_progress(campaign: Campaign, now: datetime, **fields: Any) -> Campaign:
    """``campaign`` with pipeline progress (``PROGRESS_FIELDS``) recorded, status unchanged."""
    unknown = set(fields) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"progress cannot set {sorted(unknown)}")
    return Campaign.model_validate({**campaign.model_dump(), **fields, "updated_at": now})


# -- listing -----------------------------------------------------------------------------
Ordering = Literal[
    "created",
    "-created",
    "modified",
    "-modified",
    "name",
    "-name",
    "scheduled_at",
    "-scheduled_at",
    "status",
    "-status",
    "total_recipients",
    "-total_recipients",
]
SortKey = tuple[bool, str | int | None, str]


def sort_key(campaign: Campaign, ordering: Ordering) -> SortKey:
    """A total order for ``ordering`` (without its sign): missing values last, then the id.

    ``created`` is the id itself (ids sort by creation time); ``status`` follows the life
    cycle, not the alphabet; ``name`` ignores case.
    """
    field = ordering.removeprefix("-")
    value: str | int | None
    if field == "created":
        value = campaign.id
    elif field == "modified":
        value = campaign.updated_at.astimezone(UTC).isoformat()
    elif field == "name":
        value = campaign.name.casefold()
    elif field == "scheduled_at":
        value = campaign.scheduled_at.astimezone(UTC).isoformat() if campaign.scheduled_at else None
    elif field == "status":
        value = STATUSES.index(campaign.status)
    else:
        value = campaign.total_recipients
    return (value is None, value, campaign.id)


class CampaignFilter(Model):
    """Conditions a listing checks on each campaign (none of them is a key)."""

    model_config = ConfigDict(frozen=True)

    search: str | None = None
    statuses: frozenset[CampaignStatus] = frozenset()
    channel: Channel | None = None
    edition_id: str | None = None
    family: Family | None = None

    @property
    def active(self) -> bool:
        return bool(self.search or self.statuses or self.channel or self.edition_id or self.family)

    def matches(self, campaign: Campaign) -> bool:
        return (
            (self.family is None or campaign.family == self.family)
            and (not self.search or self.search.casefold() in campaign.name.casefold())
            and (not self.statuses or campaign.status in self.statuses)
            and (self.channel is None or campaign.channel == self.channel)
            and (self.edition_id is None or campaign.edition_id == self.edition_id)
        )
