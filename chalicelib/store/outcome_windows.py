"""A campaign's delivery outcomes per hour, for the deliverability breaker.

``OUTCOMES#<campaign>#<arm>`` / ``<hour, UTC>``: ``delivered``, ``bounced`` (permanent),
``complained``, ADDed by the feedback worker once per feedback batch per campaign (the
same batch write as the campaign counters, so no write per message). ``arm`` names the
campaign's last resume: a resumed campaign starts new windows, which is what re-arms the
breaker (the outcomes that tripped it no longer count). Buckets expire after two days;
a 24-hour window reads 24 keys with ONE BatchGetItem.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from chalicelib.domain.deliverability import hour_of
from chalicelib.store.table import tenant_table

WINDOW_HOURS = 24
RETENTION = timedelta(days=2)


def _partition(campaign_id: str, armed_at: datetime | None) -> str:
    arm = f"{armed_at.astimezone(UTC):%Y%m%dT%H%M%S%f}" if armed_at else "0"
    return f"OUTCOMES#{campaign_id}#{arm}"


def _hour_key(hour: datetime) -> str:
    return f"{hour.astimezone(UTC):%Y-%m-%dT%H}"


def add_outcomes(
    tenant_id: str,
    campaign_id: str,
    armed_at: datetime | None,
    counts: Mapping[str, int],
    now: datetime,
) -> None:
    """Add ``counts`` to the bucket of the hour ``now`` is in (one UpdateItem)."""
    deltas = {name: n for name, n in counts.items() if n}
    if not deltas:
        return
    hour = hour_of(now.astimezone(UTC))
    tenant_table(tenant_id).update(
        _partition(campaign_id, armed_at),
        _hour_key(hour),
        add_values=deltas,
        set_values={"expires_at": int((hour + RETENTION).timestamp())},
    )


def read_window(
    tenant_id: str, campaign_id: str, armed_at: datetime | None, now: datetime
) -> dict[datetime, dict[str, int]]:
    """The buckets of the last ``WINDOW_HOURS`` hours (hour → counts), ONE BatchGetItem."""
    current = hour_of(now.astimezone(UTC))
    hours = {
        _hour_key(current - timedelta(hours=n)): current - timedelta(hours=n)
        for n in range(WINDOW_HOURS)
    }
    partition = _partition(campaign_id, armed_at)
    found = tenant_table(tenant_id).batch_get(((partition, key) for key in hours), consistent=True)
    return {
        hours[sort]: {
            k: int(v) for k, v in item.items() if k != "expires_at" and isinstance(v, int)
        }
        for (_, sort), item in found.items()
    }
