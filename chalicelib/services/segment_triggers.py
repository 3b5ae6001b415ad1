"""Segment entry and exit as events: re-evaluate the watched segments of changed contacts,
move their stored membership, and enrol on the transition (docs/flows.md, "Segment
triggers").

Only WATCHED segments are ever evaluated: those a live ``trigger.segment_entry`` /
``trigger.segment_exit`` names (``flow_triggers``: one Query). ``watched`` reads them with
their rules and current revision (one Query, one BatchGetItem, one Query), cached for the
batch the worker is handling when it runs inside ``batch_scope``.

For each contact and watched segment, ``decide`` compares the evaluation with the state
stored on the contact. On an entry or an exit the contact is enrolled into every flow
whose trigger fired (``enrol``) BEFORE its state moves, and the state then moves with a
write conditional on the state read: a redelivered change finds the state moved and
does nothing; a worker that dies between the two leaves the state unmoved, so the retry
enrols again with the same move event, which the enrolment service refuses as a
``duplicate_event``. Enrolment is asked for at least once and happens once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.domain.events import TimelineEvent
from chalicelib.domain.segment_watch import (
    Change,
    Decision,
    decide,
    is_time_relative,
    move_id,
    needs_new_revision,
    next_revision,
    reads_event,
    rules_digest,
)
from chalicelib.domain.segments import Segment, SegmentGroup, compile_tree
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import SegmentCheck, SegmentSweep
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import enrolments
from chalicelib.store import contacts as contact_store
from chalicelib.store import flow_triggers
from chalicelib.store.events_out import EVENT_SOURCE
from chalicelib.store.flow_triggers import LiveTrigger
from chalicelib.store.segment_watch import WatchRecord, put_watch_record, watch_records
from chalicelib.store.segments import get_segments

ENTRY = "trigger.segment_entry"
EXIT = "trigger.segment_exit"
CHECK_BATCH = 500  # contact ids per segment.check message
SWEEP_PAGE = 500  # contacts per segment.sweep message


@dataclass(frozen=True)
class WatchedSegment:
    """A segment some live trigger watches: its rules, revision and the triggers."""

    segment_id: str
    rev: str
    tree: SegmentGroup
    on_entry: tuple[LiveTrigger, ...]
    on_exit: tuple[LiveTrigger, ...]

    @property
    def time_relative(self) -> bool:
        return is_time_relative(self.tree)


@dataclass(frozen=True)
class Transition:
    """A contact that entered or left a watched segment, the triggers that fire, and the
    event that says so (``segment.entered`` / ``segment.exited``, with the segment id in
    its properties): the flow carries it into every later send's template context, and
    its id, the same for every evaluation that sees this move, lets the enrolment
    service refuse a second enrolment for it."""

    segment_id: str
    contact_id: str
    change: Change
    triggers: tuple[LiveTrigger, ...]
    event: TimelineEvent


_batch_cache: ContextVar[dict[str, list[WatchedSegment]] | None] = ContextVar(
    "watched_segments", default=None
)


@contextmanager
def batch_scope() -> Iterator[None]:
    """A worker batch's scope: ``watched`` is read once per tenant within it (outside
    one, every call reads, so a warm worker never keeps a stale answer)."""
    token = _batch_cache.set({})
    try:
        yield
    finally:
        _batch_cache.reset(token)


def watched(tenant_id: str, now: datetime) -> list[WatchedSegment]:
    """The tenant's watched segments (none: one Query, nothing else read)."""
    cache = _batch_cache.get()
    if cache is not None and tenant_id in cache:
        return cache[tenant_id]
    triggers: dict[str, list[LiveTrigger]] = {}
    for trigger in flow_triggers.live_triggers(tenant_id):
        if trigger.segment_id is not None:
            triggers.setdefault(trigger.segment_id, []).append(trigger)
    found: list[WatchedSegment] = []
    if triggers:
        records = watch_records(tenant_id)
        for segment in get_segments(tenant_id, triggers).values():
            mine = triggers[segment.id]
            watchers = frozenset(t.campaign_id for t in mine)
            rev = _revision(tenant_id, segment, watchers, records.get(segment.id), now)
            found.append(
                WatchedSegment(
                    segment_id=segment.id,
                    rev=rev,
                    tree=segment.tree,
                    on_entry=tuple(t for t in mine if t.kind == ENTRY),
                    on_exit=tuple(t for t in mine if t.kind == EXIT),
                )
            )
    if cache is not None:
        cache[tenant_id] = found
    return found


def on_watch_changed(tenant_id: str, now: datetime) -> None:
    """Call after ``flow_triggers.publish`` (a flow activated, paused, edited, ended) and
    after a segment's rules change: begins the new revisions and their baseline walks at
    once, so that the first contact change after it is judged against a baseline instead
    of becoming one."""
    watched(tenant_id, now)


def _revision(
    tenant_id: str,
    segment: Segment,
    watchers: frozenset[str],
    record: WatchRecord | None,
    now: datetime,
) -> str:
    """The segment's current revision; a new one (with its baseline walk) when needed."""
    digest = rules_digest(segment.tree)
    if record is not None and not needs_new_revision(
        digest, watchers, stored_digest=record.digest, stored=record.watchers
    ):
        if record.watchers != watchers:  # a flow began or ceased watching: remember who
            put_watch_record(
                tenant_id,
                segment.id,
                WatchRecord(record.rev, digest, watchers),
                replacing=record.rev,
            )
        return record.rev
    rev = next_revision(segment.id, digest, now)
    replacing = record.rev if record is not None else None
    if put_watch_record(
        tenant_id, segment.id, WatchRecord(rev, digest, watchers), replacing=replacing
    ):
        logger.info("segment baseline begins", extra={"segment_id": segment.id, "rev": rev})
        queue_sweep(tenant_id, [segment.id])
        return rev
    return watch_records(tenant_id)[segment.id].rev  # another worker began one first


def reevaluate(
    tenant_id: str,
    contact_ids: Iterable[str],
    now: datetime,
    *,
    created: Collection[str] = (),
    event: str | None = None,
    caused_by: str | None = None,
) -> list[Transition]:
    """Re-evaluate the watched segments of these contacts; returns the transitions made.

    ``created``: contacts this change created (they were out of every segment).
    ``event``: the change is one occurrence of this event, so only segments that read
    its summary can have moved (None: any change, every watched segment).
    ``caused_by``: the flow whose own action made the change; its triggers do not fire
    (a flow never re-triggers itself), the memberships still move.
    """
    segments = watched(tenant_id, now)
    if event is not None:
        segments = [s for s in segments if reads_event(s.tree, event)]
    if not segments:
        return []
    found = contact_store.get_with_segment_states(tenant_id, contact_ids)
    return evaluate(tenant_id, segments, found.values(), now, created=created, caused_by=caused_by)


def evaluate(
    tenant_id: str,
    segments: list[WatchedSegment],
    contacts: Iterable[tuple[Contact, contact_store.SegmentStates]],
    now: datetime,
    *,
    created: Collection[str] = (),
    caused_by: str | None = None,
) -> list[Transition]:
    """Decide, enrol and move the state of each contact in each segment."""
    tests = [(segment, compile_tree(segment.tree, now)) for segment in segments]
    made: list[Transition] = []
    evaluations = 0
    for contact, states in contacts:
        for segment, member in tests:
            evaluations += 1
            stored = states.get(segment.segment_id)
            decision = decide(stored, segment.rev, member(contact), created=contact.id in created)
            if not decision.write:
                continue
            transition = None
            if decision.change is not None:
                transition = _transition(segment, contact.id, decision, now, caused_by)
                enrol(tenant_id, transition, now)
            moved = contact_store.move_segment_state(
                tenant_id, contact.id, segment.segment_id, decision.new_state, stored
            )
            if moved and transition is not None:
                made.append(transition)
    metrics.add_metric(name="segment_evaluations", unit="Count", value=evaluations)
    if made:
        metrics.add_metric(name="segment_transitions", unit="Count", value=len(made))
    return made


def _transition(
    segment: WatchedSegment,
    contact_id: str,
    decision: Decision,
    now: datetime,
    caused_by: str | None,
) -> Transition:
    change = decision.change
    assert change is not None  # only a change is a transition
    fired = segment.on_entry if change == "entered" else segment.on_exit
    return Transition(
        segment_id=segment.segment_id,
        contact_id=contact_id,
        change=change,
        triggers=tuple(t for t in fired if t.campaign_id != caused_by),
        event=TimelineEvent(
            id=move_id(segment.segment_id, segment.rev, decision.moves, contact_id),
            name=f"segment.{change}",
            occurred_at=now,
            received_at=now,
            source=EVENT_SOURCE,
            properties={"segment_id": segment.segment_id},
        ),
    )


def enrol(tenant_id: str, transition: Transition, now: datetime) -> None:
    """Enrol the contact into the flow of every trigger that fired, carrying the move's
    event (its id makes a repeated call for the same move a ``duplicate_event``).

    A flow deleted, or edited to lose the trigger, since the trigger index was read is
    skipped: there is nothing left to enrol into.
    """
    for trigger in transition.triggers:
        try:
            answers = enrolments.enrol_contacts(
                tenant_id,
                trigger.campaign_id,
                [transition.contact_id],
                now,
                trigger_node_id=trigger.node_id,
                event=transition.event,
            )
        except (NotFound, Conflict, ValidationFailed) as gone:
            logger.warning(
                "segment trigger's flow is gone",
                extra={
                    "campaign_id": trigger.campaign_id,
                    "node_id": trigger.node_id,
                    "error": str(gone),
                },
            )
            continue
        logger.info(
            "segment trigger fired",
            extra={
                "campaign_id": trigger.campaign_id,
                "node_id": trigger.node_id,
                "contact_id": transition.contact_id,
                "change": transition.change,
                "outcome": answers[0].outcome,
                "reason": answers[0].reason,
            },
        )


def queue_check(
    tenant_id: str, contact_ids: Iterable[str], *, created: Collection[str] = ()
) -> int:
    """Queue a re-evaluation of contacts changed without a ``contact.saved`` (list
    membership, a silent import); nothing when the tenant watches no segment (one Query).
    Returns how many messages were queued."""
    ids = list(dict.fromkeys(contact_ids))
    if not ids or not flow_triggers.watched_segments(tenant_id):
        return 0
    new = set(created)
    messages = [
        SegmentCheck(
            tenant_id=tenant_id,
            contact_ids=chunk,
            created=[i for i in chunk if i in new],
        ).as_message()
        for chunk in (ids[start : start + CHECK_BATCH] for start in range(0, len(ids), CHECK_BATCH))
    ]
    return enqueue("triggers", messages)


def queue_sweep(tenant_id: str, segment_ids: list[str], cursor: str | None = None) -> None:
    """Queue (the next page of) a walk of the tenant's contacts for ``segment_ids``."""
    message = SegmentSweep(tenant_id=tenant_id, segment_ids=segment_ids, cursor=cursor)
    enqueue("control", [message.as_message()])


def sweep_page(
    tenant_id: str, segment_ids: Collection[str], cursor: str | None, now: datetime
) -> list[Transition]:
    """Evaluate one page of the tenant's contacts against those of ``segment_ids`` still
    watched, and queue the next page; returns the transitions made."""
    segments = [s for s in watched(tenant_id, now) if s.segment_id in segment_ids]
    if not segments:
        return []  # no longer watched: the walk ends
    page, cursor = contact_store.scan_with_segment_states(tenant_id, cursor, SWEEP_PAGE)
    made = evaluate(tenant_id, segments, page, now)
    if cursor is not None:
        queue_sweep(tenant_id, [s.segment_id for s in segments], cursor)
    return made
