"""The step executor's pure core: from where a contact stands, what happens next.

``take_step(workflow, settings, enrolment, context)`` looks at the node the enrolment is
on and decides, without doing anything, the one step: which intents to carry out (a
send, a tag, a wait, an exit…), the enrolment as it is after the step, and the trace
entries that say what happened and why. The worker that calls it claims the step first
(``Enrolment.claim``, a conditional write on (enrolment, node, visit)), carries the
intents out idempotently keyed by that claim, then writes the new enrolment; a
redelivered message finds the claim taken and does nothing. ``visit`` counts the steps
an enrolment has taken, so a node entered again (a loop, a wake after a wait) is a new
claim.

A send is only proposed here: ``chalicelib.domain.flows.policy`` decides whether it goes
now, is deferred (``defer``) or skipped (``skip``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time
from enum import StrEnum
from typing import Any, Literal, Protocol

from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import pick_for, zone_for
from chalicelib.domain.flows.graph import FlowSettings, Node, Workflow
from chalicelib.domain.flows.nodes import (
    AbSplit,
    AttributeCheck,
    Delay,
    EventCheck,
    NotifyInboxAction,
    ScoreAction,
    SendAction,
    SetFieldAction,
    TagAction,
    WaitForEvent,
    WaitUntil,
    WebhookAction,
)
from chalicelib.domain.flows.timing import next_local_time
from chalicelib.domain.segments import matches


class ExitReason(StrEnum):
    """Why an enrolment ended; ``enrollment.exited`` webhooks and the trace carry it."""

    COMPLETED = "completed"  # the path ended: no edge out of the last node
    EXIT_NODE = "exit_node"
    GOAL = "goal"  # an exit_on event arrived: a conversion
    NODE_REMOVED = "node_removed"  # an edit of the paused flow removed the node it was on
    REPLIED = "replied"  # seed 001's stop_on_reply
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    DELETED = "deleted"  # the contact was deleted
    REMOVED = "removed"  # DELETE …/enrollments/{contact_id}
    CAMPAIGN_ENDED = "campaign_ended"  # completed or cancelled, or ends_at passed


class EventLike(Protocol):
    """An event as the runtime reads it (``chalicelib.domain.events.TimelineEvent`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def occurred_at(self) -> datetime: ...

    @property
    def properties(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class TriggerEvent:
    """The event that enrolled the contact, kept on the enrolment: every later send of the
    flow renders with it (``{{ event.properties.order_id }}``)."""

    id: str
    name: str
    occurred_at: datetime
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Enrolment:
    """One contact in one flow: where it stands and, while waiting, until when."""

    campaign_id: str
    contact_id: str
    node_id: str
    visit: int  # steps taken so far
    entered_at: datetime
    arrived_at: datetime  # when it reached node_id: lateness is measured from here
    wake_at: datetime | None = None  # set while it waits on node_id
    waiting_for: str | None = None  # the event type a wait_for_event waits on
    variant: str | None = None  # the last A/B variant it took, for per-variant stats
    split_id: str | None = None  # the ab_split node that chose ``variant``
    exit_reason: ExitReason | None = None
    trigger_event: TriggerEvent | None = None  # None for manual and scheduled entry

    @property
    def exited(self) -> bool:
        return self.exit_reason is not None

    @property
    def claim(self) -> tuple[str, str, int]:
        """(enrolment, node, visit): the key that makes each step happen once."""
        return f"{self.campaign_id}#{self.contact_id}", self.node_id, self.visit


@dataclass(frozen=True)
class StepContext:
    """What a step may look at besides the graph: all of it read by the caller first."""

    now: datetime
    contact: Contact
    campaign_timezone: str = "UTC"
    history: Sequence[EventLike] = ()  # the contact's recent events, for event_check
    event: EventLike | None = None  # the event this step was woken by, if any


# -- intents: what the worker carries out, each keyed by the step's claim ---------------
@dataclass(frozen=True)
class Send:
    channel: str
    template_ids: tuple[str, ...]
    sender_ids: tuple[str, ...] | None


@dataclass(frozen=True)
class SetField:
    field: str
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Tag:
    tag: str
    add: bool


@dataclass(frozen=True)
class Score:
    delta: int


@dataclass(frozen=True)
class CallWebhook:
    url: str
    body: Mapping[str, Any] | None


@dataclass(frozen=True)
class NotifyInbox:
    title: str


@dataclass(frozen=True)
class WaitUntilTime:
    """File the enrolment under ``until`` in the timer index (or an SQS delay)."""

    until: datetime


@dataclass(frozen=True)
class WaitForEventUntil:
    """Wake on ``event_type`` for this contact, or at ``until`` for the timeout branch."""

    event_type: str
    until: datetime


@dataclass(frozen=True)
class Exit:
    reason: ExitReason


Intent = (
    Send
    | SetField
    | Tag
    | Score
    | CallWebhook
    | NotifyInbox
    | WaitUntilTime
    | WaitForEventUntil
    | Exit
)
Outcome = Literal[
    "entered", "performed", "branched", "waiting", "resumed", "deferred", "skipped", "exited"
]


@dataclass(frozen=True)
class TraceEntry:
    """One line of an enrolment's trace: "why wasn't this contact sent?" is answered here."""

    node_id: str
    visit: int
    at: datetime
    outcome: Outcome
    reason: str | None = None
    branch: str | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Step:
    claim: tuple[str, str, int]
    intents: tuple[Intent, ...]
    enrolment: Enrolment  # as it is after the step
    trace: tuple[TraceEntry, ...]


def take_step(
    workflow: Workflow, settings: FlowSettings, enrolment: Enrolment, context: StepContext
) -> Step:
    """The next step of ``enrolment``; ValueError for one that has exited."""
    if enrolment.exited:
        raise ValueError("an enrolment that exited takes no more steps")
    event = context.event
    if event is not None and event.name in settings.exit_on:
        return exit_step(enrolment, ExitReason.GOAL, context.now)
    node = workflow.by_id.get(enrolment.node_id)
    if node is None:
        return exit_step(enrolment, ExitReason.NODE_REMOVED, context.now)
    if node.kind == "exit":
        return exit_step(enrolment, ExitReason.EXIT_NODE, context.now)
    if node.kind.startswith("trigger."):
        return _move_on(workflow, enrolment, context.now, _entry(enrolment, "entered", context))
    if isinstance(node.config, (Delay, WaitUntil, WaitForEvent)):
        return _timing(workflow, node, enrolment, context)
    if node.kind in ("attribute_check", "event_check", "ab_split"):
        return _condition(workflow, node, enrolment, context)
    return _action(workflow, node, enrolment, context)


def exit_step(enrolment: Enrolment, reason: ExitReason, now: datetime) -> Step:
    """End ``enrolment`` with ``reason``: also how unsubscribes, bounces and deletions end it."""
    entry = TraceEntry(enrolment.node_id, enrolment.visit, now, "exited", reason=reason)
    after = replace(
        enrolment,
        visit=enrolment.visit + 1,
        wake_at=None,
        waiting_for=None,
        exit_reason=reason,
    )
    return Step(enrolment.claim, (Exit(reason),), after, (entry,))


def defer(enrolment: Enrolment, until: datetime, reason: str, now: datetime) -> Step:
    """Keep ``enrolment`` on its node until ``until`` (quiet hours): deferred, never dropped."""
    entry = TraceEntry(enrolment.node_id, enrolment.visit, now, "deferred", reason, until=until)
    after = replace(enrolment, visit=enrolment.visit + 1, wake_at=until)
    return Step(enrolment.claim, (WaitUntilTime(until),), after, (entry,))


def skip(workflow: Workflow, enrolment: Enrolment, reason: str, now: datetime) -> Step:
    """Leave the node's action undone for ``reason`` and move on along the default edge."""
    entry = TraceEntry(enrolment.node_id, enrolment.visit, now, "skipped", reason)
    return _move_on(workflow, enrolment, now, entry)


# -- node families --------------------------------------------------------------------
def _action(workflow: Workflow, node: Node, enrolment: Enrolment, context: StepContext) -> Step:
    if enrolment.wake_at is not None and enrolment.wake_at > context.now:
        return _wait(enrolment, enrolment.wake_at, context.now)  # woken early: wait on
    intent = _intent(node)
    moved = _move_on(workflow, enrolment, context.now, _entry(enrolment, "performed", context))
    return replace(moved, intents=(intent, *moved.intents))


def _intent(node: Node) -> Intent:
    config = node.config
    if isinstance(config, SendAction):
        senders = tuple(config.sender_ids) if config.sender_ids else None
        return Send(config.channel, tuple(config.template_ids), senders)
    if isinstance(config, SetFieldAction):
        return SetField(config.field, config.value)
    if isinstance(config, TagAction):
        return Tag(config.tag, add=node.kind == "add_tag")
    if isinstance(config, ScoreAction):
        return Score(config.delta)
    if isinstance(config, WebhookAction):
        return CallWebhook(config.url, config.body)
    if isinstance(config, NotifyInboxAction):
        return NotifyInbox(config.title)
    raise AssertionError(f"'{node.kind}' is not an action")  # take_step dispatches by kind


def _condition(workflow: Workflow, node: Node, enrolment: Enrolment, context: StepContext) -> Step:
    config, now = node.config, context.now
    variant, split_id = enrolment.variant, enrolment.split_id
    if isinstance(config, AttributeCheck):
        branch = "yes" if matches(config.rules, context.contact, now) else "no"
    elif isinstance(config, EventCheck):
        branch = "yes" if event_count(context.history, config, now) >= config.min_count else "no"
    elif isinstance(config, AbSplit):
        branch = variant = ab_variant(config, enrolment.campaign_id, node.id, enrolment.contact_id)
        split_id = node.id
    else:
        raise AssertionError(f"'{node.kind}' is not a condition")
    entry = _entry(enrolment, "branched", context, branch=branch)
    chose = replace(enrolment, variant=variant, split_id=split_id)
    return _move_on(workflow, chose, now, entry, branch)


def event_count(history: Sequence[EventLike], config: EventCheck, now: datetime) -> int:
    """How many ``config.event_type`` events happened in the ``within`` window before now."""
    since = now - config.within.as_timedelta()
    return sum(1 for e in history if e.name == config.event_type and since < e.occurred_at <= now)


def ab_variant(config: AbSplit, campaign_id: str, node_id: str, contact_id: str) -> str:
    """The variant a contact takes: by weight, the same on every retry and re-entry.

    The contact's slot in ``[0, total weight)`` comes from the rotation hash the send
    pipeline already uses (``pick_for``), salted by campaign and node so that two splits
    in one flow are independent.
    """
    total = sum(v.weight for v in config.variants)
    slot = pick_for(range(total), contact_id, salt=f"{campaign_id}:{node_id}")
    for variant in config.variants:
        if slot < variant.weight:
            return variant.name
        slot -= variant.weight
    raise AssertionError("the slot is below the total weight")  # pragma: no cover


def _timing(workflow: Workflow, node: Node, enrolment: Enrolment, context: StepContext) -> Step:
    config, now = node.config, context.now
    if isinstance(config, WaitForEvent):
        return _wait_for_event(workflow, config, enrolment, context)
    if not isinstance(config, (Delay, WaitUntil)):
        raise AssertionError(f"'{node.kind}' is not a timing node")
    if enrolment.wake_at is None:
        until = _wake_time(config, context)
        if until > now:
            return _wait(enrolment, until, now)
    elif enrolment.wake_at > now:  # woken early: wait on
        return _wait(enrolment, enrolment.wake_at, now)
    return _move_on(workflow, enrolment, now, _entry(enrolment, "resumed", context))


def _wait_for_event(
    workflow: Workflow, config: WaitForEvent, enrolment: Enrolment, context: StepContext
) -> Step:
    """Branch ``event`` when the awaited event arrives after the contact did; ``timeout``
    when woken at the deadline; otherwise (another event, an early wake) wait on."""
    now, event = context.now, context.event
    if (
        event is not None
        and enrolment.waiting_for == event.name
        and event.occurred_at >= enrolment.arrived_at
    ):
        entry = _entry(enrolment, "resumed", context, branch="event")
        return _move_on(workflow, enrolment, now, entry, "event")
    if enrolment.wake_at is None:
        until = now + config.timeout.as_timedelta()
        return _wait(enrolment, until, now, WaitForEventUntil(config.event_type, until))
    if enrolment.wake_at > now:
        intent = WaitForEventUntil(config.event_type, enrolment.wake_at)
        return _wait(enrolment, enrolment.wake_at, now, intent)
    entry = _entry(enrolment, "resumed", context, branch="timeout")
    return _move_on(workflow, enrolment, now, entry, "timeout")


def _wake_time(config: Delay | WaitUntil, context: StepContext) -> datetime:
    if isinstance(config, Delay):
        return context.now + config.as_timedelta()
    zone = zone_for(context.contact.timezone, context.campaign_timezone)
    return next_local_time(
        context.now, time.fromisoformat(config.local_time), zone, config.days or ()
    )


# -- moving ---------------------------------------------------------------------------
def _wait(
    enrolment: Enrolment, until: datetime, now: datetime, intent: Intent | None = None
) -> Step:
    waiting_for = intent.event_type if isinstance(intent, WaitForEventUntil) else None
    entry = TraceEntry(enrolment.node_id, enrolment.visit, now, "waiting", until=until)
    after = replace(enrolment, visit=enrolment.visit + 1, wake_at=until, waiting_for=waiting_for)
    return Step(enrolment.claim, (intent or WaitUntilTime(until),), after, (entry,))


def _move_on(
    workflow: Workflow,
    enrolment: Enrolment,
    now: datetime,
    entry: TraceEntry,
    branch: str | None = None,
) -> Step:
    """Record ``entry`` and go along ``branch`` (else the default edge); exit as completed
    when nothing follows."""
    target = workflow.next_node(enrolment.node_id, branch)
    if target is None:
        ended = exit_step(enrolment, ExitReason.COMPLETED, now)
        return replace(ended, trace=(entry, *ended.trace))
    after = replace(
        enrolment,
        node_id=target,
        visit=enrolment.visit + 1,
        arrived_at=now,
        wake_at=None,
        waiting_for=None,
    )
    return Step(enrolment.claim, (), after, (entry,))


def _entry(
    enrolment: Enrolment, outcome: Outcome, context: StepContext, branch: str | None = None
) -> TraceEntry:
    return TraceEntry(enrolment.node_id, enrolment.visit, context.now, outcome, branch=branch)
