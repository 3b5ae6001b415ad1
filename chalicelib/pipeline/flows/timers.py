"""Waking waiting enrolments on time (docs/flows.md, "Timers").

``schedule_wake`` files a waiting enrolment where it will be found: a wake time at most
15 minutes away goes on the flow queue with ``DelaySeconds``; a later one into the due
index under its minute and shard. The one-minute tick runs ``sweep_due``: for every
minute since the last one swept it queues one ``flow.sweep`` per shard, and each sweep
(``sweep_shard``) queues a FlowWake per entry with the seconds left before its wake time.
An entry whose enrolment moved on meanwhile wakes a visit that is gone: the worker drops
it. Nothing here deletes: entries expire by TTL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.flows.step import Enrolment
from chalicelib.domain.flows.timers import (
    DUE_SHARDS,
    FileDue,
    QueueDelayed,
    RunNow,
    minutes_to_sweep,
    route,
    sweep_delay,
)
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import FlowSweep, FlowWake
from chalicelib.pipeline.queues import enqueue, enqueue_delayed
from chalicelib.store import enrolments
from chalicelib.store.table import Condition, ConditionFailed, system_table

_LAST_SWEPT = ("FLOWSWEEP", "last")  # system scope: the last minute the tick swept


def schedule_wake(tenant_id: str, waiting: Enrolment, now: datetime) -> bool:
    """Arrange for ``waiting`` (the enrolment as the step leaves it) to be woken at its
    ``wake_at``; True when that is already now (the caller takes the next step at once).

    Called BEFORE the step's claim: a worker that dies after the claim must not leave a
    waiting enrolment that nothing wakes. If the claim then fails, the wake names a visit
    the enrolment never reaches (or the same visit another worker filed) and is harmless.
    """
    assert waiting.wake_at is not None
    key = f"{tenant_id}#{waiting.campaign_id}#{waiting.contact_id}"
    when = route(now, waiting.wake_at, key)
    if isinstance(when, RunNow):
        return True
    if isinstance(when, QueueDelayed):
        wake = wake_of(tenant_id, waiting)
        enqueue("flows", [wake.as_message()], delay_seconds=when.delay_seconds)
    else:
        enrolments.file_due(tenant_id, waiting, when)
    return False


def wake_of(tenant_id: str, enrolment: Enrolment) -> FlowWake:
    return FlowWake(
        tenant_id=tenant_id,
        campaign_id=enrolment.campaign_id,
        contact_id=enrolment.contact_id,
        visit=enrolment.visit,
    )


# -- the sweep ------------------------------------------------------------------------
def sweep_due(now: datetime) -> None:
    """The tick job: one ``flow.sweep`` per shard that has entries, naming every minute
    not swept yet (a missed tick is caught up, at most an hour back, in 32 messages, one
    per shard: ``_busy_shards``). An idle shard costs the tick one Query of one item, not
    a queued message and an invocation: an idle Herald queues nothing.

    The sweeps are queued first and the last swept minute written after, conditional on
    the value read: a tick that dies in between, or two ticks racing, only sweep a minute
    twice (the duplicate wakes are dropped by the claim); no minute is ever skipped.
    """
    table = system_table()
    item = table.get(*_LAST_SWEPT)
    last = item.get("minute") if item else None
    minutes = minutes_to_sweep(last if isinstance(last, str) else None, now)
    if not minutes:
        return
    busy = _busy_shards(minutes)
    if busy:
        enqueue("flows", (FlowSweep(minutes=minutes, shard=s).as_message() for s in busy))
    read_as = Condition.absent() if last is None else Condition.equals("minute", last)
    try:
        table.put(*_LAST_SWEPT, {"minute": minutes[-1]}, condition=read_as)
    except ConditionFailed:
        logger.info("another tick swept these minutes too", extra={"minutes": len(minutes)})


def _busy_shards(minutes: list[str]) -> list[int]:
    """The shards to sweep: those with an entry in the minute, when the tick sweeps one
    (32 Queries of one item); every shard when it catches missed minutes up, since each
    shard's sweep reads each of its minutes anyway: probing them here would be the same
    Queries again, up to 1,920 of them one after the other in the tick."""
    if len(minutes) > 1:
        return list(range(DUE_SHARDS))
    return [shard for shard in range(DUE_SHARDS) if enrolments.any_due(FileDue(minutes[0], shard))]


def sweep_shard(message: dict[str, Any]) -> None:
    """One ``flow.sweep``: a FlowWake for each entry of its minutes in its shard, delayed
    by what is left of its wait (SendMessageBatch, ten at a time, page by page)."""
    sweep = FlowSweep.model_validate(message)
    now = clock.now()
    queued = sum(
        enqueue_delayed("flows", _wakes(FileDue(minute, sweep.shard), now))
        for minute in sweep.minutes
    )
    if queued:
        metrics.add_metric(name="flow_timers_swept", unit="Count", value=queued)


def _wakes(due: FileDue, now: datetime) -> Iterator[tuple[Mapping[str, Any], int]]:
    for entry in enrolments.due_entries(due):
        wake = FlowWake(
            tenant_id=entry.tenant_id,
            campaign_id=entry.campaign_id,
            contact_id=entry.contact_id,
            visit=entry.visit,
        )
        yield wake.as_message(), sweep_delay(now, entry.wake_at)
