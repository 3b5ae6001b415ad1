"""Watched segments' baselines, and the gate of the hourly sweep.

Layout:
- tenant scope ``SEGWATCH`` / ``<segment id>`` → ``{rev, digest, watchers}``: the
  current revision of a watched segment (docs/flows.md, "Segment triggers"). Written with
  a condition on the revision it replaces, so of many workers noticing a new revision at
  once, one starts its baseline walk.
- system scope ``SEGSWEEP`` / ``HOURLY`` → ``{hour}``: the last hour whose sweep of
  time-relative segments was started; the one-minute tick moves it forward at most once
  an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.store.table import Condition, ConditionFailed, system_table, tenant_table

_WATCH = "SEGWATCH"
_SWEEP = "SEGSWEEP"
_HOURLY = "HOURLY"


@dataclass(frozen=True)
class WatchRecord:
    """A watched segment's current revision: the digest of the rules it was taken for
    and the flows that watched the segment (the last time anyone looked)."""

    rev: str
    digest: str
    watchers: frozenset[str]


def watch_records(tenant_id: str) -> dict[str, WatchRecord]:
    """Every watched segment's record, by segment id (one Query)."""
    return {
        item["segment_id"]: WatchRecord(
            item["rev"], item["digest"], frozenset(item.get("watchers") or ())
        )
        for item in tenant_table(tenant_id).query_all(_WATCH, consistent=True)
    }


def put_watch_record(
    tenant_id: str, segment_id: str, record: WatchRecord, *, replacing: str | None
) -> bool:
    """Store ``record`` if the segment's revision is still ``replacing`` (None: none yet);
    False if another worker moved it first (read the records again)."""
    condition = Condition.absent() if replacing is None else Condition.equals("rev", replacing)
    try:
        tenant_table(tenant_id).put(
            _WATCH,
            segment_id,
            {
                "segment_id": segment_id,
                "rev": record.rev,
                "digest": record.digest,
                "watchers": sorted(record.watchers),
            },
            condition=condition,
        )
    except ConditionFailed:
        return False
    return True


def claim_sweep_hour(hour: datetime) -> bool:
    """True for the first caller in ``hour`` (an ISO hour stamp compares as text)."""
    stamp = hour.isoformat()
    condition = Condition(
        "attribute_not_exists(pk) OR #c_h < :c_h", {"#c_h": "hour"}, {":c_h": stamp}
    )
    try:
        system_table().put(_SWEEP, _HOURLY, {"hour": stamp}, condition=condition)
    except ConditionFailed:
        return False
    return True
