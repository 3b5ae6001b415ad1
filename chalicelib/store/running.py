"""The running-campaigns index the watchdog walks: one system item per started campaign.

``RUNNING`` / ``<tenant>#<campaign>`` is written when the planner starts a campaign and
removed by the watchdog once the campaign is final. It holds what the watchdog saw last
(``fingerprint``: the pipeline's counters and status) and since when (``seen_at``), and
how often it re-drove the campaign without progress (``redrives``). Cost: one write per
campaign start, one write per minute per running campaign whose counters moved, one
Query page per 100 running campaigns a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from chalicelib.store.table import system_table

_RUNNING = "RUNNING"


@dataclass(frozen=True)
class RunningEntry:
    tenant_id: str
    campaign_id: str
    fingerprint: str
    seen_at: datetime
    redrives: int


def _key(tenant_id: str, campaign_id: str) -> str:
    return f"{tenant_id}#{campaign_id}"


def watch_campaign(tenant_id: str, campaign_id: str, now: datetime) -> None:
    """Start watching a campaign (again: a repeated start only resets what was seen)."""
    system_table().put(
        _RUNNING,
        _key(tenant_id, campaign_id),
        {
            "tenant_id": tenant_id,
            "campaign_id": campaign_id,
            "fingerprint": "",
            "seen_at": now.isoformat(),
            "redrives": 0,
        },
    )


def running_campaigns() -> Iterator[RunningEntry]:
    """Every watched campaign, a Query page of 100 at a time."""
    for item in system_table().query_all(_RUNNING, limit=100, consistent=True):
        yield RunningEntry(
            tenant_id=item["tenant_id"],
            campaign_id=item["campaign_id"],
            fingerprint=str(item.get("fingerprint", "")),
            seen_at=datetime.fromisoformat(item["seen_at"]),
            redrives=int(item.get("redrives", 0)),
        )


def note_seen(entry: RunningEntry, fingerprint: str, now: datetime, *, redrives: int = 0) -> None:
    """Record what the watchdog saw and when; ``redrives`` counts re-drives without progress."""
    system_table().update(
        _RUNNING,
        _key(entry.tenant_id, entry.campaign_id),
        set_values={"fingerprint": fingerprint, "seen_at": now.isoformat(), "redrives": redrives},
    )


def unwatch_campaign(tenant_id: str, campaign_id: str) -> None:
    system_table().delete(_RUNNING, _key(tenant_id, campaign_id))
