"""Where a waiting enrolment is filed so that it wakes on time, and the keys that say so.

Millions of contacts each wait on their own clock. EventBridge Scheduler is the wrong
tool for that (60 s precision, 1,000 invocations/s by default) and DynamoDB TTL is no
timer (deletes "typically within two days"). Instead (docs/flows.md, "Timers"):

- a wake time within ``SQS_MAX_DELAY`` of now goes straight onto the flow queue with
  ``DelaySeconds``;
- a later one is filed in the due index under its minute and one of ``DUE_SHARDS``
  shards; the one-minute tick fans out one sweep per shard of the minutes that came due,
  and each sweep queues its entries with the seconds left in the minute as
  ``DelaySeconds`` (the sub-minute remainder).

Why 32 shards: 100,000 contacts due in one minute are 3,125 per shard, which one sweep
worker reads (one Query of one page) and queues (SQS batches of 10) in about 1.5 s at
the 2,000 a second a worker sustains, and whose writes stay far below the 1,000 writes
a second one DynamoDB partition takes. More shards cost one more Query per minute each
when nothing is due.

The layout is a store concern; it is written down here, pure, so that the timer tests
can pin it and the store module (``chalicelib/store/enrolments.py``, next) uses only it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DUE_SHARDS = 32
SQS_MAX_DELAY = 900  # seconds: SQS DelaySeconds is 0..900
_MINUTE_FORMAT = "%Y%m%d%H%M"
DUE_RETENTION = timedelta(days=2)  # a due entry outlives its minute by this, then TTL


@dataclass(frozen=True)
class RunNow:
    """Already due: take the step in this invocation."""


@dataclass(frozen=True)
class QueueDelayed:
    """Put the step on the flow queue with ``DelaySeconds=delay_seconds``."""

    delay_seconds: int


@dataclass(frozen=True)
class FileDue:
    """Write a due entry under ``minute`` (``YYYYMMDDHHMM``, UTC) in ``shard``."""

    minute: str
    shard: int


TimerRoute = RunNow | QueueDelayed | FileDue


def route(now: datetime, wake_at: datetime, enrolment_key: str) -> TimerRoute:
    """How a step due at ``wake_at`` gets woken, seen from ``now``."""
    if wake_at <= now:
        return RunNow()
    seconds = math.ceil((wake_at - now).total_seconds())
    if seconds <= SQS_MAX_DELAY:
        return QueueDelayed(seconds)
    return FileDue(minute_bucket(wake_at), due_shard(enrolment_key))


def minute_bucket(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_MINUTE_FORMAT)


def minute_start(bucket: str) -> datetime:
    return datetime.strptime(bucket, _MINUTE_FORMAT).replace(tzinfo=UTC)


def due_shard(enrolment_key: str) -> int:
    """The shard an enrolment's timers go to; stable across processes (crc32)."""
    return zlib.crc32(enrolment_key.encode()) % DUE_SHARDS


def minutes_to_sweep(last_swept: str | None, now: datetime, *, catch_up: int = 60) -> list[str]:
    """The minute buckets a tick sweeps: every minute after ``last_swept`` up to the one
    ``now`` is in, so a missed tick is caught up (at most ``catch_up`` minutes back; older
    entries are swept by the catch-up of the tick after).

    With no sweep on record (Herald's first tick) only the current minute: there is no
    missed tick to catch up, since an entry is filed only for a wake at least 15 minutes
    after its filing (shorter waits are queue delays) and the tick runs every minute from
    the start. Catching up an hour there would cost 60 x 32 Queries for nothing, which on
    the embedded stack (moto scans its whole table per Query) froze every worker for
    minutes a minute after each ``make run``.
    """
    current = now.astimezone(UTC).replace(second=0, microsecond=0)
    if last_swept is None:
        return [minute_bucket(current)]
    first = max(
        current - timedelta(minutes=catch_up - 1), minute_start(last_swept) + timedelta(minutes=1)
    )
    count = int((current - first) / timedelta(minutes=1)) + 1
    return [minute_bucket(first + timedelta(minutes=i)) for i in range(max(count, 0))]


def sweep_delay(now: datetime, wake_at: datetime) -> int:
    """``DelaySeconds`` for an entry a sweep found: what is left of its wait, 0 if overdue."""
    return min(SQS_MAX_DELAY, max(0, math.ceil((wake_at - now).total_seconds())))


# -- the key layout (ScopedTable adds the scope prefix to every partition key) ----------
def enrolment_key(campaign_id: str, contact_id: str) -> tuple[str, str]:
    """Tenant scope: ``ENROL#<campaign>`` / ``<contact>``: one enrolment per contact per flow;
    listing a flow's enrolments is one Query."""
    return f"ENROL#{campaign_id}", contact_id


def due_partition(due: FileDue) -> str:
    return f"FLOWDUE#{due.minute}#{due.shard:02d}"


def due_key(
    due: FileDue, tenant_id: str, campaign_id: str, contact_id: str, *, visit: int
) -> tuple[str, str]:
    """System scope: ``FLOWDUE#<minute>#<shard>`` / ``<tenant>#<campaign>#<contact>#<visit>``.

    Cross-tenant, as the sweep is. The visit in the sort key makes a stale entry (the
    enrolment moved on meanwhile) harmless: its step's claim fails and it is dropped;
    entries are never deleted one by one but expire DUE_RETENTION after their minute.
    """
    return due_partition(due), f"{tenant_id}#{campaign_id}#{contact_id}#{visit:010d}"


def due_entry_of(sort: str) -> tuple[str, str, str, int]:
    """The tenant, campaign, contact and visit a due entry's sort key names (``due_key``
    read back; no id holds a ``#``). The key says all of it, so the entry stores only its
    wake time: the sweep reads thousands of entries a minute, and DynamoDB bills a read
    by the size of what it reads."""
    tenant_id, campaign_id, contact_id, visit = sort.split("#")
    return tenant_id, campaign_id, contact_id, int(visit)


def step_key(campaign_id: str, contact_id: str, node_id: str, visit: int) -> str:
    """The one id of a step: its claim, the ledger occurrence of its send, the
    ``webhook-id`` of its webhook, so that every retry of the step is recognised."""
    return f"{campaign_id}#{contact_id}#{node_id}#{visit}"
