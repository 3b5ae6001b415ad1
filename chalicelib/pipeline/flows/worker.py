"""The flow worker: walks one enrolment through its flow, each step exactly once.

A ``flow.wake`` names an enrolment and the visit it stood on when the wake was queued.
``wake``:

1. reads the campaign (once per queue batch: ``wake_batch``). A paused (or draft) flow
   advances nobody: the wake is dropped and the enrolment stays where it is;
   ``services.enrolments.wake_held``, which the flow's activate and resume call, wakes
   every enrolment not waiting on a later timer. A completed or cancelled flow ends the
   enrolment (``campaign_ended``).
2. reads the enrolment; a wake for another visit is a duplicate or a stale timer and is
   dropped, unless the enrolment stands further on without waiting (the walk of an earlier
   delivery died half-way: this one goes on from there; ``_due``).
3. takes steps (``take_step``) until the enrolment waits or exits, at most
   ``MAX_STEPS_PER_WAKE`` (graph validation puts a wait on every loop; a long path goes on
   in a new wake queued before the last claim). For each step: the intents are carried
   out keyed by the step (a send through the ledger with the visit as occurrence, a
   webhook whose ``webhook-id`` is the step key, an inbox thread whose id is the step
   key), the wake of a wait is filed, and then ``enrolments.commit_step`` claims the
   step in ONE transaction with its trace, its contact change (conditional on the
   contact's version) and its counts. A refused claim is re-read: another worker took
   the step (stop), or the contact changed under us (take the step again).
4. announces the contact changes its claims wrote (``contact.saved`` with ``source: flow``
   and the campaign id, which never triggers that flow again), in one PutEvents.

docs/flows.md, "Exactly once per step", has the crash points.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import NotFound
from chalicelib.domain.events import TimelineEvent
from chalicelib.domain.flows.changes import ChangeRefused, ContactIntent, apply_intent
from chalicelib.domain.flows.graph import Workflow
from chalicelib.domain.flows.nodes import EventCheck
from chalicelib.domain.flows.stats import send_counts, step_counts
from chalicelib.domain.flows.step import (
    CallWebhook,
    Enrolment,
    EventLike,
    ExitReason,
    NotifyInbox,
    Score,
    Send,
    SetField,
    Step,
    StepContext,
    Tag,
    WaitForEventUntil,
    WaitUntilTime,
    defer,
    exit_step,
    skip,
    take_step,
)
from chalicelib.domain.flows.timers import step_key
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.callbacks import call_flow_webhook
from chalicelib.pipeline.flows.sending import send_step
from chalicelib.pipeline.flows.timers import schedule_wake, wake_of
from chalicelib.pipeline.messages import FlowWake
from chalicelib.pipeline.queues import enqueue
from chalicelib.resources import consumer_timeout_seconds
from chalicelib.services.enrolments import announce_exits
from chalicelib.services.notices import endpoints_looked_up_once
from chalicelib.store import contacts, enrolments, inbox_threads
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.counters import count_request
from chalicelib.store.events_out import BusEvent, publish_events
from chalicelib.store.timeline import list_timeline
from chalicelib.store.wake_reads import WakeReads, read_for_wakes

MAX_STEPS_PER_WAKE = 50
_EFFECTS_OUTSIDE_THE_CLAIM = frozenset({"send", "webhook", "notify_inbox"})
_CONDITIONS = frozenset({"attribute_check", "event_check"})  # read what a retry may see changed
CLAIM_ATTEMPTS = 3  # a step taken again when the contact changed between read and claim
DEADLINE_MARGIN_SECONDS = 20  # no send starts this close to the Lambda timeout
_HISTORY_PAGES = 5  # event_check reads at most this many pages of 100 timeline events

_flows_read: ContextVar[dict[tuple[str, str], Campaign] | None] = ContextVar(
    "flows_read", default=None
)
_read_ahead: ContextVar[dict[str, WakeReads] | None] = ContextVar("read_ahead", default=None)


@contextmanager
def wake_batch() -> Iterator[None]:
    """The flows queue's batch scope: the batch's wakes (up to 10, mostly of one flow) read
    their flow once, and look their tenant's webhook endpoints up once (a send's
    ``message.submitted``), instead of once per wake: 0.9 GetItem per wake and 0.9 Query
    per send fewer (bench/README.md, "Flows"). A pause, resume or edit of the flow during
    the batch takes effect from the next batch, seconds later, as it would had the batch
    been received a moment earlier.
    """
    token, ahead = _flows_read.set({}), _read_ahead.set({})
    try:
        with endpoints_looked_up_once():
            yield
    finally:
        _read_ahead.reset(ahead)
        _flows_read.reset(token)


def read_ahead(messages: Sequence[dict[str, Any]]) -> None:
    """The flows consumer's ``ahead``: every wake's flow, enrolment and contact in one
    BatchGetItem per tenant (``store.wake_reads``), instead of two or three GetItems per
    wake. Each enrolment and contact read ahead is used once, by the first wake that asks
    (``_take``): a second wake of the same enrolment in the batch (a redelivery), or of
    the same contact in another flow, reads afresh what the first one left."""
    reads, flows = _read_ahead.get(), _flows_read.get()
    if reads is None or flows is None:
        return
    wakes: dict[str, list[tuple[str, str]]] = {}
    for message in messages:
        if message.get("kind") == FlowWake.KIND:
            wake = FlowWake.model_validate(message)
            wakes.setdefault(wake.tenant_id, []).append((wake.campaign_id, wake.contact_id))
    for tenant_id, pairs in wakes.items():
        reads[tenant_id] = read_for_wakes(tenant_id, pairs)
        for campaign_id, campaign in reads[tenant_id].campaigns.items():
            flows.setdefault((tenant_id, campaign_id), campaign)


def _read_enrolment(tenant_id: str, campaign_id: str, contact_id: str) -> Enrolment | None:
    """The enrolment, as read ahead for this batch if no wake used that read yet."""
    reads = (_read_ahead.get() or {}).get(tenant_id)
    if reads is not None and (campaign_id, contact_id) in reads.enrolments:
        return reads.enrolments.pop((campaign_id, contact_id))
    return enrolments.read(tenant_id, campaign_id, contact_id)


def _read_versioned(tenant_id: str, contact_id: str) -> tuple[Contact, int]:
    """The contact and its version, as read ahead if no wake used that read yet."""
    reads = (_read_ahead.get() or {}).get(tenant_id)
    if reads is not None and contact_id in reads.contacts:
        found = reads.contacts.pop(contact_id)
        if found is None:
            raise NotFound(f"contact '{contact_id}' not found", field="contact_id")
        return found
    return contacts.read_versioned(tenant_id, contact_id)


def _read_flow(tenant_id: str, campaign_id: str) -> Campaign:
    """The flow's campaign, read once per batch inside ``wake_batch`` (NotFound if gone)."""
    read = _flows_read.get()
    if read is not None and (tenant_id, campaign_id) in read:
        return read[tenant_id, campaign_id]
    campaign = get_campaign(tenant_id, campaign_id)
    if read is not None:
        read[tenant_id, campaign_id] = campaign
    return campaign


def wake(message: dict[str, Any]) -> None:
    """Handle one ``flow.wake`` (steps in the module docstring)."""
    wake_message = FlowWake.model_validate(message)
    tenant_id = wake_message.tenant_id
    now = clock.now()
    try:
        campaign = _read_flow(tenant_id, wake_message.campaign_id)
    except NotFound:
        logger.info("wake of a deleted flow dropped")
        return
    workflow = campaign.workflow
    enrolment = _read_enrolment(tenant_id, campaign.id, wake_message.contact_id)
    if workflow is None or enrolment is None or not _due(enrolment, wake_message.visit):
        metrics.add_metric(name="flow_wakes_stale", unit="Count", value=1)
        return
    if campaign.status in ("completed", "cancelled"):
        _end(tenant_id, campaign, enrolment, now)
        return
    if campaign.status != "active":
        return  # held: services.enrolments.wake_held wakes it when the flow is active again
    event = TimelineEvent.model_validate(wake_message.event) if wake_message.event else None
    walk = _Walk(
        tenant_id,
        campaign,
        workflow=workflow,
        enrolment=enrolment,
        event=event,
        deadline=_deadline(now),
    )
    walk.run()


def _due(enrolment: Enrolment, visit: int) -> bool:
    """Whether a wake for ``visit`` still has work: the enrolment stands on that visit, or
    on a later one without waiting (the walk that got it there died before it ended: the
    redelivered wake goes on from where it stopped). A wake for a visit the enrolment never
    reached (its step's claim failed) or one behind a waiting or exited enrolment is stale.
    """
    if enrolment.exited or enrolment.visit < visit:
        return False
    return enrolment.visit == visit or enrolment.wake_at is None


def _deadline(now: datetime) -> datetime:
    timeout = consumer_timeout_seconds("flows")
    return now + timedelta(seconds=timeout - DEADLINE_MARGIN_SECONDS)


def _end(tenant_id: str, campaign: Campaign, enrolment: Enrolment, now: datetime) -> None:
    """A wake of a flow that ended: the enrolment exits with ``campaign_ended``."""
    step = exit_step(enrolment, ExitReason.CAMPAIGN_ENDED, now)
    counts = count_request(
        tenant_id, campaign.id, step_counts(enrolment, step), enrolment.contact_id
    )
    if enrolments.commit_step(tenant_id, step, now, [counts] if counts else []):
        announce_exits(tenant_id, [(enrolment, step.enrolment)], now)


class _Walk:
    """One wake's steps along one enrolment."""

    def __init__(
        self,
        tenant_id: str,
        campaign: Campaign,
        *,
        workflow: Workflow,
        enrolment: Enrolment,
        event: EventLike | None,
        deadline: datetime,
    ) -> None:
        self.tenant_id = tenant_id
        self.campaign = campaign
        self.workflow = workflow
        self.enrolment = enrolment
        self.event = event
        self.deadline = deadline
        self.contact: Contact | None = None
        self.version = 0
        self.saved: list[BusEvent] = []  # contact.saved of the changes claimed so far

    def run(self) -> None:
        try:
            taken = 0
            while taken < MAX_STEPS_PER_WAKE:
                group = self._claimed_group(taken)
                if group is None:
                    return
                taken += len(group.steps)
                if not group.go_on:
                    return
        finally:
            self._announce()

    def _read_contact(self) -> Contact | None:
        try:
            self.contact, self.version = _read_versioned(self.tenant_id, self.enrolment.contact_id)
        except NotFound:
            self.contact = None
        return self.contact

    def _claimed_group(self, taken: int) -> _Group | None:
        """The next steps decided and claimed together (``_decide_group``); None when
        another worker (or an event) took them. A claim refused because the contact
        changed under it takes the steps again from a fresh read."""
        start = self.enrolment
        for _ in range(CLAIM_ATTEMPTS):
            group = self._decide_group(taken)
            now = clock.now()
            if self._claim(group, now):
                self._claimed(group, now)
                return group
            current = enrolments.read(self.tenant_id, self.campaign.id, start.contact_id)
            if current != start:
                metrics.add_metric(name="flow_claims_lost", unit="Count", value=1)
                return None
            self.enrolment, self.contact = start, None  # the contact changed: read it again
        raise RuntimeError("the contact kept changing; the wake is retried")

    def _decide_group(self, taken: int) -> _Group:
        """Steps from where the enrolment stands, decided (their intents carried out, each
        keyed by its own step) until it waits or exits, the wake's last step, or a step
        with an effect outside the claim (a send, a webhook, an inbox thread) after a
        condition in the same group: that condition is claimed first, so an effect is
        never made on a path that a retry could decide differently (a contact changed in
        between). Every other step is deterministic, or its effect is in the claim."""
        contact = self.contact or self._read_contact()
        group = _Group(self.enrolment, self.version)
        while True:
            if group.steps and self._claim_first(group):
                return group
            now = clock.now()
            if contact is None:
                decided = _Decided(exit_step(self.enrolment, ExitReason.DELETED, now))
            else:
                event = None if group.steps else self.event
                decided = self._decide(contact, now, event)
            last = taken + len(group.steps) == MAX_STEPS_PER_WAKE - 1
            group.go_on = self._arrange_next(decided.step, now, last=last)
            group.add(self.enrolment, decided)
            if decided.change is not None:
                contact = self.contact = decided.change.contact
            self.enrolment = decided.step.enrolment
            if not group.go_on:
                return group

    def _claim_first(self, group: _Group) -> bool:
        """Whether the group must be claimed before the step the enrolment stands on."""
        node = self.workflow.by_id.get(self.enrolment.node_id)
        if node is None or node.kind not in _EFFECTS_OUTSIDE_THE_CLAIM:
            return False
        kinds = (self.workflow.by_id.get(before.node_id) for before, _ in group.steps)
        return any(n is not None and n.kind in _CONDITIONS for n in kinds)

    # -- deciding and carrying out -----------------------------------------------------
    def _decide(self, contact: Contact, now: datetime, event: EventLike | None) -> _Decided:
        """The step, with its intents carried out (all keyed by the step) and the policy's
        answer for a send applied; the contact change it makes, if any."""
        enrolment = self.enrolment
        context = StepContext(
            now=now,
            contact=contact,
            campaign_timezone=self.campaign.timezone,
            history=self._history(contact, now),
            event=event,
        )
        step = take_step(self.workflow, self.campaign.flow_settings, enrolment, context)
        decided = _Decided(step)
        for intent in step.intents:
            if isinstance(intent, Send):
                decided = self._send(step, contact, now)
            elif isinstance(intent, (SetField, Tag, Score)):
                decided = self._change(step, contact, intent, now)
            elif isinstance(intent, CallWebhook):
                call_flow_webhook(
                    self.tenant_id,
                    self.campaign.id,
                    intent.url,
                    self._step_key(),
                    self._webhook_data(contact, intent),
                )
            elif isinstance(intent, NotifyInbox):
                decided = self._notify_inbox(step, contact, intent, now)
        return decided

    def _send(self, step: Step, contact: Contact, now: datetime) -> _Decided:
        enrolment = self.enrolment
        outcome = send_step(
            self.tenant_id, self.campaign, contact, enrolment, deadline=self.deadline
        )
        if outcome.defer_until is not None:
            reason = outcome.defer_reason or "quiet_hours"
            return _Decided(defer(enrolment, outcome.defer_until, reason, now))
        if outcome.skip is not None:
            return _Decided(skip(self.workflow, enrolment, str(outcome.skip), now))
        return _Decided(step, sent=True)

    def _change(
        self, step: Step, contact: Contact, intent: ContactIntent, now: datetime
    ) -> _Decided:
        try:
            after, changed = apply_intent(contact, intent, now)
        except ChangeRefused as refused:
            logger.info("flow contact change refused", extra={"reason": str(refused)})
            return _Decided(skip(self.workflow, self.enrolment, "invalid_value", now))
        return _Decided(step, change=_Change(after, changed) if changed else None)

    def _notify_inbox(
        self, step: Step, contact: Contact, intent: NotifyInbox, now: datetime
    ) -> _Decided:
        """An operator inbox thread, idempotent on its id (the step key)."""
        inbox_threads.open_thread(
            self.tenant_id,
            thread_id=self._step_key(),
            contact_id=contact.id,
            campaign_id=self.campaign.id,
            node_id=self.enrolment.node_id,
            title=intent.title,
            now=now,
        )
        return _Decided(step)

    def _webhook_data(self, contact: Contact, intent: CallWebhook) -> dict[str, Any]:
        trigger = self.enrolment.trigger_event
        return {
            "campaign_id": self.campaign.id,
            "node_id": self.enrolment.node_id,
            "contact": {"id": contact.id, "email": contact.email, "phone": contact.phone},
            "event": asdict(trigger) if trigger is not None else None,
            "body": dict(intent.body) if intent.body is not None else None,
        }

    def _history(self, contact: Contact, now: datetime) -> list[TimelineEvent]:
        """The contact's recent events, read only for an ``event_check`` node."""
        node = self.workflow.by_id.get(self.enrolment.node_id)
        if node is None or not isinstance(node.config, EventCheck):
            return []
        since = now - node.config.within.as_timedelta()
        events: list[TimelineEvent] = []
        cursor = None
        for _ in range(_HISTORY_PAGES):
            page, cursor = list_timeline(self.tenant_id, contact.id, limit=100, cursor=cursor)
            events.extend(page)
            if cursor is None or (page and page[-1].occurred_at < since):
                break
        return events

    def _step_key(self) -> str:
        enrolment = self.enrolment
        return step_key(
            enrolment.campaign_id, enrolment.contact_id, enrolment.node_id, enrolment.visit
        )

    # -- after the decision ------------------------------------------------------------
    def _arrange_next(self, step: Step, now: datetime, *, last: bool) -> bool:
        """File the step's wait, or the next wake of a long walk, BEFORE the claim (see
        ``schedule_wake``); True when the walk goes on in this invocation."""
        after = step.enrolment
        if after.exited:
            return False
        waits = [i for i in step.intents if isinstance(i, (WaitUntilTime, WaitForEventUntil))]
        if waits and not schedule_wake(self.tenant_id, after, now):
            return False
        if last:
            enqueue("flows", [wake_of(self.tenant_id, after).as_message()])
            return False
        return True

    def _claim(self, group: _Group, now: datetime) -> bool:
        """One transaction: the group's steps, their counts, the contact's changes."""
        counts: Counter[str] = Counter()
        for before, decided in group.steps:
            counts.update(step_counts(before, decided.step))
            if decided.sent:
                counts.update(send_counts(before, before.node_id))
        also = []
        if group.changed is not None:
            also.append(
                contacts.change_request(
                    self.tenant_id, group.changed, list(group.fields), group.version
                )
            )
        counted = count_request(self.tenant_id, self.campaign.id, counts, group.start.contact_id)
        if counted is not None:
            also.append(counted)
        steps = [decided.step for _, decided in group.steps]
        return enrolments.commit_steps(self.tenant_id, steps, now, also)

    def _claimed(self, group: _Group, now: datetime) -> None:
        """After the claim: the contact as it wrote it, its ``contact.saved`` to announce
        (one per change, as each step made it), the exit to announce."""
        self.event = None  # the waking event is for the wake's first step only
        if group.changed is not None:
            self.version = group.version + 1
            self.saved.extend(
                contacts.saved_event(
                    change.contact,
                    created=False,
                    changed=change.fields,
                    source="flow",
                    campaign_id=self.campaign.id,
                )
                for change in group.changes
            )
        if self.enrolment.exited:
            announce_exits(self.tenant_id, [(group.steps[-1][0], self.enrolment)], now)

    def _announce(self) -> None:
        """``contact.saved`` for every change the walk's claims wrote, in one PutEvents
        when the walk ends (however it ends); a failure is logged: the changes are made,
        and their claims will not be taken again to announce them."""
        if not self.saved:
            return
        try:
            publish_events(self.tenant_id, self.saved)
        except Exception:
            logger.exception("contact.saved of a flow change not published")
            metrics.add_metric(name="events_not_published", unit="Count", value=1)


@dataclass(frozen=True)
class _Change:
    contact: Contact
    fields: list[str]


@dataclass
class _Group:
    """Steps decided since the last claim, to be claimed together: where the enrolment
    stood before them (the claim's condition), the contact's version as read, and the
    contact's changes they made (written as one update on that version)."""

    start: Enrolment
    version: int
    steps: list[tuple[Enrolment, _Decided]] = field(default_factory=list)  # (before, step)
    go_on: bool = True  # the walk goes on after the claim

    def add(self, before: Enrolment, decided: _Decided) -> None:
        self.steps.append((before, decided))

    @property
    def changes(self) -> list[_Change]:
        return [decided.change for _, decided in self.steps if decided.change is not None]

    @property
    def changed(self) -> Contact | None:
        """The contact as the last change left it (None when nothing changed)."""
        changes = self.changes
        return changes[-1].contact if changes else None

    @property
    def fields(self) -> dict[str, None]:
        return {name: None for change in self.changes for name in change.fields}


@dataclass(frozen=True)
class _Decided:
    """A step ready to claim: the contact change it makes, and whether its message went
    out (its claim then adds the send counts)."""

    step: Step
    change: _Change | None = None
    sent: bool = False
