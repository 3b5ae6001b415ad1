"""How contacts enter and leave flows: enrolment, the events that move them from outside,
and the exits nobody's step decides (docs/flows.md, "Entering and leaving a flow").

- ``enrol_contacts`` answers per contact, in input order, never raising for one contact:
  ``enrolled``, ``already_enrolled``, or ``error`` with a reason. A flow enrols while it
  is a draft, active or paused; only an active flow's new enrolments are woken at once
  (a ``FlowWake`` on the flows queue), the others are **held** until ``wake_held`` runs
  when the flow is activated or resumed.
- ``on_event`` (a reactor of the triggers queue) enrols the contact into every live flow
  whose ``trigger.event`` the event fires, exits it with reason ``goal`` from every flow
  whose ``exit_on`` names the event, and wakes it where it waits for that event.
- ``exit_contact_everywhere`` (deletion, unsubscribe, hard bounce, complaint),
  ``remove_enrolment`` (``DELETE …/enrollments/{contact}``) and ``remove_flow_enrolments``
  (a flow completed, cancelled or deleted) end enrolments from outside.

Every write is the store's conditional one: an enrolment is created on condition that
none stands (or that the exited one it replaces is unchanged), together with the
business event that caused it (``dedupe_key`` value, event id) on condition that it is
new, so a redelivered or repeated event never enrols twice. An exit is a step's claim
(``step.exit_step`` + ``enrolments.commit_step``): when a worker moved the enrolment
meanwhile, the exit reads it again and exits what it now is.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Literal

from chalicelib.domain import clock
from chalicelib.domain.audience import AudienceSpec
from chalicelib.domain.campaigns import Audience, Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.domain.events import TimelineEvent
from chalicelib.domain.flows import entry
from chalicelib.domain.flows import stats as flow_stats
from chalicelib.domain.flows.graph import Node
from chalicelib.domain.flows.step import (
    Enrolment,
    ExitReason,
    TraceEntry,
    TriggerEvent,
    exit_step,
)
from chalicelib.domain.flows.timers import SQS_MAX_DELAY
from chalicelib.domain.unsubscribe import Unsubscribed
from chalicelib.observability import logger
from chalicelib.pipeline.messages import FlowWake
from chalicelib.pipeline.queues import enqueue
from chalicelib.services.notices import WebhookNotice, notify_webhooks
from chalicelib.store import contacts as contact_store
from chalicelib.store import enrolments, flow_triggers
from chalicelib.store.audience import audience_page
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.contacts import scan_contacts
from chalicelib.store.counters import add_counts

ENROLLING_STATUSES = frozenset({"draft", "active", "paused"})
MAX_CONTACTS_PER_CALL = 1000
_WRITERS = 8  # conditional puts in flight at once: 1,000 contacts in ~1 s, not ~10
_EXIT_PAGE = 500
SELECTION_PAGE_SIZE = 500  # contacts a trigger enrols per page of whom it selects
_CLAIM_ATTEMPTS = 5  # an exit racing a worker reads the enrolment again this often
FLOW_SOURCE = "flow"  # contact.saved of a flow's own change: properties.source

Outcome = Literal["enrolled", "already_enrolled", "error"]
ErrorReason = Literal[
    "not_found",
    "campaign_not_live",
    "duplicate_event",
    "before_start",
    "ended",
    "reentry_once",
    "reentry_interval",
]


@dataclass(frozen=True)
class EnrolmentAnswer:
    """What happened to one contact of an enrolment request."""

    contact_id: str
    outcome: Outcome
    reason: ErrorReason | None = None


# -- entering -------------------------------------------------------------------------
def enrol_contacts(
    tenant_id: str,
    campaign_id: str,
    contact_ids: Sequence[str],
    now: datetime,
    *,
    trigger_node_id: str | None = None,
    event: TimelineEvent | None = None,
) -> list[EnrolmentAnswer]:
    """Enrol ``contact_ids`` into the flow at ``trigger_node_id`` (default: its
    ``trigger.manual`` node, else its only trigger), carrying ``event`` (the one that fired
    the trigger) for every later send. One answer per contact, in input order.

    NotFound when the flow does not exist in this tenant; Conflict when the campaign is
    not a flow; ValidationFailed when the trigger cannot be chosen.
    """
    campaign = _flow(tenant_id, campaign_id)
    trigger = _trigger(campaign, trigger_node_id)
    return _enrol(_Entry(tenant_id, campaign, trigger, now, event), contact_ids)


def selection_page(
    tenant_id: str, audience: Audience, segment_id: str | None, cursor: str | None, at: datetime
) -> tuple[list[Contact], str | None]:
    """One page of whom a trigger selects: the members of ``segment_id`` when it names one,
    else the flow's ``audience`` as the planner reads it (segments' relative dates fixed at
    ``at``). A contact in two lists comes twice; its second enrolment is refused."""
    spec = AudienceSpec(segment_ids=[segment_id]) if segment_id is not None else audience.spec()
    if spec is None:
        return scan_contacts(tenant_id, cursor, SELECTION_PAGE_SIZE)
    return audience_page(tenant_id, spec, cursor, SELECTION_PAGE_SIZE, now=at)


def _flow(tenant_id: str, campaign_id: str) -> Campaign:
    campaign = get_campaign(tenant_id, campaign_id)
    if campaign.family != "flow" or campaign.workflow is None:
        raise Conflict(f"campaign '{campaign_id}' is not a flow", field="campaign_id")
    return campaign


def _trigger(campaign: Campaign, node_id: str | None) -> Node:
    assert campaign.workflow is not None  # _flow checked
    triggers = campaign.workflow.triggers()
    if node_id is not None:
        found = next((n for n in triggers if n.id == node_id), None)
        if found is None:
            raise ValidationFailed(f"flow has no trigger node '{node_id}'", field="trigger")
        return found
    manual = [n for n in triggers if n.kind == "trigger.manual"]
    if manual:
        return manual[0]
    if len(triggers) == 1:
        return triggers[0]
    raise ValidationFailed(
        "the flow has several triggers and no trigger.manual node to enrol by hand",
        field="campaign_id",
    )


@dataclass(frozen=True)
class _Entry:
    """One enrolment request: into which flow, at which trigger, when, fired by what."""

    tenant_id: str
    campaign: Campaign
    trigger: Node
    now: datetime
    event: TimelineEvent | None = None

    @property
    def dedupe(self) -> list[str]:
        """What makes the triggering event "the same" again: its id (a redelivery, a repeat
        on the bus) and the trigger's ``dedupe_key`` value (one order sent as two events)."""
        if self.event is None:
            return []
        values = [f"event:{self.event.id}"]
        business = entry.dedupe_value(self.trigger, self.event)
        if business is not None:
            values.append(f"key:{business}")
        return values

    @property
    def carried(self) -> TriggerEvent | None:
        """The event as the enrolment keeps it, for every later send to render."""
        event = self.event
        return (
            TriggerEvent(event.id, event.name, event.occurred_at, event.properties)
            if event
            else None
        )


def _enrol(request: _Entry, contact_ids: Sequence[str]) -> list[EnrolmentAnswer]:
    tenant_id, campaign = request.tenant_id, request.campaign
    if campaign.status not in ENROLLING_STATUSES:
        return [EnrolmentAnswer(c, "error", "campaign_not_live") for c in contact_ids]
    unique = list(dict.fromkeys(contact_ids))
    existing = contact_store.get_contacts(tenant_id, unique)
    previous = enrolments.read_many(tenant_id, campaign.id, existing)
    answers = {c: EnrolmentAnswer(c, "error", "not_found") for c in unique if c not in existing}
    candidates = [c for c in unique if c in existing]
    enrolments.index_contacts(tenant_id, campaign.id, candidates)

    def one(contact_id: str) -> tuple[EnrolmentAnswer, Enrolment | None]:
        return _enrol_one(request, contact_id, previous.get(contact_id))

    if len(candidates) > 1:
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            written = list(pool.map(one, candidates))
    else:  # an event enrols one contact: no pool to start
        written = [one(c) for c in candidates]
    started: list[Enrolment] = []
    stalled: list[Enrolment] = []
    for contact_id, (answer, enrolment) in zip(candidates, written, strict=True):
        answers[contact_id] = answer
        if answer.outcome == "enrolled" and enrolment is not None:
            started.append(enrolment)
        elif answer.outcome == "already_enrolled" and enrolment is not None:
            stalled.append(enrolment)
    if campaign.status == "active":
        # A never-stepped enrolment found again (a retry after a crash between the
        # enrolment's write and its wake) is woken again: the worker's claim dedupes.
        again = [e for e in stalled if e.visit == 0 and not e.exited]
        _wake([*started, *again], tenant_id, request.event)
    if started:
        add_counts(tenant_id, campaign.id, {"enrollments": len(started)}, uuid.uuid4().hex)
        notify_webhooks(_entered(tenant_id, e) for e in started)
    return _in_input_order(contact_ids, answers)


def _enrol_one(
    request: _Entry, contact_id: str, previous: Enrolment | None
) -> tuple[EnrolmentAnswer, Enrolment | None]:
    """One contact: ask the entry rules, write, and on a lost race read again and ask again."""
    campaign, now = request.campaign, request.now
    window = entry.FlowWindow(campaign.starts_at, campaign.ends_at)
    for _ in range(_CLAIM_ATTEMPTS):
        refusal = entry.refusal(campaign.flow_settings, window, previous, now)
        if refusal == "already_enrolled":
            return EnrolmentAnswer(contact_id, "already_enrolled"), previous
        if refusal is not None:
            return EnrolmentAnswer(contact_id, "error", refusal), previous
        new = entry.enrol(
            campaign.id, contact_id, request.trigger, now, request.carried, previous=previous
        )
        if enrolments.start(request.tenant_id, new, previous, dedupe=request.dedupe, now=now):
            return EnrolmentAnswer(contact_id, "enrolled"), new
        current = enrolments.read(request.tenant_id, campaign.id, contact_id)
        if current == previous:  # the enrolment is as it was: the event was seen before
            return EnrolmentAnswer(contact_id, "error", "duplicate_event"), previous
        previous = current
    return EnrolmentAnswer(contact_id, "already_enrolled"), previous


def _in_input_order(
    contact_ids: Sequence[str], answers: dict[str, EnrolmentAnswer]
) -> list[EnrolmentAnswer]:
    """One answer per position; a contact named again later in the request was enrolled
    (or refused) by its first mention, so the repeat is ``already_enrolled`` when it
    entered."""
    seen: set[str] = set()
    ordered = []
    for contact_id in contact_ids:
        answer = answers[contact_id]
        if contact_id in seen and answer.outcome == "enrolled":
            answer = EnrolmentAnswer(contact_id, "already_enrolled")
        seen.add(contact_id)
        ordered.append(answer)
    return ordered


def _wake(woken: Iterable[Enrolment], tenant_id: str, event: TimelineEvent | None = None) -> int:
    """Queue a FlowWake for each enrolment, standing on its current visit."""
    carried = event.model_dump(mode="json") if event is not None else None
    messages = [
        FlowWake(
            tenant_id=tenant_id,
            campaign_id=e.campaign_id,
            contact_id=e.contact_id,
            visit=e.visit,
            event=carried,
        ).as_message()
        for e in woken
    ]
    return enqueue("flows", messages) if messages else 0


def wake_held(tenant_id: str, campaign_id: str, now: datetime) -> int:
    """Wake every enrolment of the flow that a draft or a pause held: those standing
    still without waiting (enrolled while held, or stopped mid-way), and those whose wait
    ends within SQS's longest delay (the wakes queued for them came while the flow was
    paused and the worker dropped them). Later waits are still in the due index and wake
    by themselves. The flow's ``activate`` and ``resume`` call this; returns how many
    wakes were queued. A wake the worker already took is dropped by its claim."""
    horizon = now + timedelta(seconds=SQS_MAX_DELAY)
    held = [
        enrolment
        for enrolment in enrolments.all_in_status(tenant_id, campaign_id, ("active", "waiting"))
        if enrolment.wake_at is None or enrolment.wake_at <= horizon
    ]
    return _wake(held, tenant_id)


# -- reading --------------------------------------------------------------------------
def list_enrolments(
    tenant_id: str,
    campaign_id: str,
    status: enrolments.EnrolmentStatus | None,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Enrolment], str | None]:
    """A page of a flow's enrolments in ``status`` (every status when None); NotFound or
    Conflict as for enrolling."""
    _flow(tenant_id, campaign_id)
    statuses = (status,) if status is not None else enrolments.ENROLMENT_STATUSES
    return enrolments.list_by_status(tenant_id, campaign_id, statuses, limit=limit, cursor=cursor)


def enrolment_with_trace(
    tenant_id: str, campaign_id: str, contact_id: str
) -> tuple[Enrolment, list[TraceEntry]]:
    """One enrolment and every step it took that is still kept: "why wasn't this contact
    sent?" is answered by its trace. NotFound when the contact is not enrolled."""
    _flow(tenant_id, campaign_id)
    enrolment = enrolments.read(tenant_id, campaign_id, contact_id)
    if enrolment is None:
        raise NotFound(f"contact '{contact_id}' is not enrolled in this flow", field="contact_id")
    return enrolment, enrolments.read_trace(tenant_id, campaign_id, contact_id)


# -- events from outside --------------------------------------------------------------
def on_event(tenant_id: str, event: TimelineEvent, contact: Contact) -> None:
    """A contact event was recorded: enrol by ``trigger.event``, exit on goals, wake waits.

    Runs again when the triggers queue redelivers the event: the enrolment's dedupe item
    (the event id) refuses a second enrolment, a goal exit finds the enrolment exited, and
    a second wake is dropped by the worker's claim.
    """
    now = clock.now()
    campaigns = _Campaigns(tenant_id)  # each flow read once per event
    entered = _enrol_by_event(tenant_id, event, contact, now, campaigns)
    live = [
        e
        for e in enrolments.enrolments_of_contact(tenant_id, contact.id)
        if not e.exited and e.campaign_id not in entered
    ]
    goals: list[Enrolment] = []
    waking: list[Enrolment] = []
    for enrolment in live:
        campaign = campaigns.get(enrolment.campaign_id)
        if campaign is None:
            continue
        if event.name in campaign.exit_on and event.occurred_at >= enrolment.entered_at:
            goals.append(enrolment)
        elif enrolment.waiting_for == event.name:
            waking.append(enrolment)
    _wake(waking, tenant_id, event)
    _exit_all(tenant_id, goals, ExitReason.GOAL, now)


def _enrol_by_event(
    tenant_id: str, event: TimelineEvent, contact: Contact, now: datetime, campaigns: _Campaigns
) -> set[str]:
    """Enrol into every live flow with a trigger this event fires (its first such trigger),
    except the flow whose own change caused a ``contact.saved``; the flows entered."""
    caused_by = flow_that_caused(event)
    by_campaign: dict[str, list[str]] = {}
    for trigger in flow_triggers.event_triggers(tenant_id, event.name):
        by_campaign.setdefault(trigger.campaign_id, []).append(trigger.node_id)
    entered = set()
    for campaign_id, node_ids in by_campaign.items():
        campaign = campaigns.get(campaign_id)
        if campaign_id == caused_by or campaign is None or campaign.workflow is None:
            continue
        nodes = [campaign.workflow.by_id[n] for n in node_ids if n in campaign.workflow.by_id]
        fired = next((n for n in nodes if entry.fires(n, event, now)), None)
        if fired is None:
            continue
        answer = _enrol(_Entry(tenant_id, campaign, fired, now, event), [contact.id])[0]
        if answer.outcome == "enrolled":
            entered.add(campaign_id)
    return entered


def flow_that_caused(event: TimelineEvent) -> str | None:
    """The flow whose action made this ``contact.saved`` (it never re-triggers itself)."""
    properties = event.properties
    if properties.get("source") == FLOW_SOURCE and isinstance(properties.get("campaign_id"), str):
        return str(properties["campaign_id"])
    return None


class _Campaigns:
    """Campaigns read once per event; None for one deleted meanwhile."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._read: dict[str, Campaign | None] = {}

    def get(self, campaign_id: str) -> Campaign | None:
        if campaign_id not in self._read:
            try:
                self._read[campaign_id] = get_campaign(self.tenant_id, campaign_id)
            except NotFound:
                self._read[campaign_id] = None
        return self._read[campaign_id]


# -- leaving --------------------------------------------------------------------------
def exit_contact_everywhere(
    tenant_id: str, contact_id: str, reason: ExitReason, now: datetime
) -> int:
    """End every live enrolment of the contact with ``reason`` (deleted, unsubscribed,
    bounced, complained); a deletion also purges its enrolments and their traces.
    Idempotent: run again, it finds nothing live. Returns how many it ended."""
    live = [e for e in enrolments.enrolments_of_contact(tenant_id, contact_id) if not e.exited]
    ended = _exit_all(tenant_id, live, reason, now)
    if reason == ExitReason.DELETED:
        enrolments.purge_contact(tenant_id, contact_id)
    return ended


# A contact status that ends its flows, and the exit reason it ends them with.
STATUS_EXITS: dict[str, ExitReason] = {
    "unsubscribed": ExitReason.UNSUBSCRIBED,
    "bounced": ExitReason.BOUNCED,
    "complained": ExitReason.COMPLAINED,
}


def exit_on_status(tenant_id: str, contact: Contact, now: datetime) -> int:
    """A contact whose status became unsubscribed, bounced or complained (through the
    API) leaves its flows with that reason."""
    reason = STATUS_EXITS.get(contact.status)
    return exit_contact_everywhere(tenant_id, contact.id, reason, now) if reason else 0


def exit_on_unsubscribe(unsubscribed: Unsubscribed) -> None:
    """The unsubscribe link's hook (app.py registers it): the contact leaves its flows."""
    claim = unsubscribed.claim
    exit_contact_everywhere(claim.tenant_id, claim.contact_id, ExitReason.UNSUBSCRIBED, clock.now())


def remove_enrolment(tenant_id: str, campaign_id: str, contact_id: str, now: datetime) -> Enrolment:
    """``DELETE …/enrollments/{contact_id}``: exit with ``removed``; an enrolment that has
    exited already is returned as it is. NotFound when there is none."""
    _flow(tenant_id, campaign_id)
    enrolment = enrolments.read(tenant_id, campaign_id, contact_id)
    if enrolment is None:
        raise NotFound(f"contact '{contact_id}' is not enrolled in this flow", field="contact_id")
    if enrolment.exited:
        return enrolment
    after = _exit_one(tenant_id, enrolment, ExitReason.REMOVED, now)
    if after is not None:
        record_exits(tenant_id, [(enrolment, after)], now)
        return after
    return enrolments.read(tenant_id, campaign_id, contact_id) or enrolment


def exit_enrolment(
    tenant_id: str, campaign_id: str, contact_id: str, reason: ExitReason, now: datetime
) -> bool:
    """End one contact's enrolment in one flow with ``reason`` (seed 001's stop on reply:
    ``replied``), through the step claim, counted and told like every exit from outside.
    False when the contact is not enrolled or has exited already."""
    current = enrolments.read(tenant_id, campaign_id, contact_id)
    if current is None:
        return False
    return _exit_all(tenant_id, [current], reason, now) == 1


def remove_flow_enrolments(
    tenant_id: str, campaign_id: str, reason: ExitReason, now: datetime
) -> int:
    """End every enrolment of a flow that has not exited (``campaign_ended`` when it is
    completed, cancelled or deleted). flow-api calls it after the status change; the
    writes are one claim per enrolment, so a very large flow should be ended from a
    queue job rather than a request."""
    live = enrolments.all_in_status(tenant_id, campaign_id, ("waiting", "active"))
    return _exit_all(tenant_id, live, reason, now)


def _exit_all(tenant_id: str, live: Iterable[Enrolment], reason: ExitReason, now: datetime) -> int:
    """Exit each enrolment; counted and announced a page at a time (a flow's million
    enrolments are never held in memory at once)."""
    total, pending = 0, iter(live)
    while page := list(islice(pending, _EXIT_PAGE)):
        ended = [
            (before, after)
            for before in page
            if (after := _exit_one(tenant_id, before, reason, now)) is not None
        ]
        record_exits(tenant_id, ended, now)
        total += len(ended)
    return total


def _exit_one(
    tenant_id: str, enrolment: Enrolment, reason: ExitReason, now: datetime
) -> Enrolment | None:
    """Exit ``enrolment`` through the step claim; if a worker moved it meanwhile, read it
    again and exit where it now stands. None when it had exited (or gone) already."""
    current: Enrolment | None = enrolment
    for _ in range(_CLAIM_ATTEMPTS):
        if current is None or current.exited:
            return None
        step = exit_step(current, reason, now)
        if enrolments.commit_step(tenant_id, step, now):
            return step.enrolment
        current = enrolments.read(tenant_id, enrolment.campaign_id, enrolment.contact_id)
    raise Conflict("the enrolment keeps moving; retry", field="contact_id")


def record_exits(
    tenant_id: str, ended: Sequence[tuple[Enrolment, Enrolment]], now: datetime
) -> None:
    """Count the exits made from outside a step (``stats.exit_counts``, one counter
    write per flow) and announce them: ``ended`` holds (before, after) of every
    enrolment whose exit claim succeeded."""
    if not ended:
        return
    per_campaign: dict[str, Counter[str]] = {}
    for before, after in ended:
        counts = per_campaign.setdefault(after.campaign_id, Counter())
        counts.update(flow_stats.exit_counts(before, after.exit_reason or ExitReason.REMOVED))
    for campaign_id, counts in per_campaign.items():
        add_counts(tenant_id, campaign_id, counts, uuid.uuid4().hex)
    announce_exits(tenant_id, ended, now)
    logger.info("enrolments exited", extra={"count": len(ended)})


def announce_exits(
    tenant_id: str, ended: Sequence[tuple[Enrolment, Enrolment]], now: datetime
) -> int:
    """Emit ``enrollment.exited`` (with the reason) for each (before, after) exit. The
    flow worker calls it for the exits its steps decide (completed, exit node, a goal
    woken in the step, node removed), whose counts its step stats already add."""
    return notify_webhooks(_exited(tenant_id, before, after, now) for before, after in ended)


# -- webhooks -------------------------------------------------------------------------
def _entered(tenant_id: str, enrolment: Enrolment) -> WebhookNotice:
    data: dict[str, Any] = {
        "campaign_id": enrolment.campaign_id,
        "contact_id": enrolment.contact_id,
        "node_id": enrolment.node_id,
        "entered_at": enrolment.entered_at.isoformat(),
    }
    if enrolment.trigger_event is not None:
        data["event_id"] = enrolment.trigger_event.id
        data["event_name"] = enrolment.trigger_event.name
    return WebhookNotice(tenant_id, "enrollment.entered", enrolment.entered_at, data)


def _exited(tenant_id: str, before: Enrolment, after: Enrolment, now: datetime) -> WebhookNotice:
    data = {
        "campaign_id": after.campaign_id,
        "contact_id": after.contact_id,
        "node_id": before.node_id,
        "reason": after.exit_reason.value if after.exit_reason else None,
        "entered_at": after.entered_at.isoformat(),
        "exited_at": now.isoformat(),
    }
    return WebhookNotice(tenant_id, "enrollment.exited", now, data)
