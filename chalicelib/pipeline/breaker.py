"""The deliverability breaker: a campaign whose complaints or hard bounces run too high
pauses itself (docs/engine.md, "The deliverability breaker").

The feedback worker calls ``record_outcomes`` once per feedback batch and campaign with
the first-time outcomes the batch counted: one ADD to the hour bucket, and only when the
batch brought a bounce or a complaint (the rates can only rise then) one BatchGetItem of
the last 24 buckets and the rule. The same function serves broadcasts and flows: both
are counted by campaign id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.deliverability import OUTCOMES, Threshold, Trip, breaker_trip
from chalicelib.domain.errors import InvalidTransition
from chalicelib.observability import logger, metrics
from chalicelib.services.notices import campaign_paused, notify_webhooks
from chalicelib.settings import Settings, get_settings
from chalicelib.store.campaigns import apply_action
from chalicelib.store.outcome_windows import add_outcomes, read_window

# A campaign in these statuses is sending and can be paused (broadcast, flow).
_RUNNING = frozenset({"sending", "active"})


def thresholds(settings: Settings) -> tuple[Threshold, ...]:
    """The breaker's rules from the settings, shortest windows first."""
    return (
        Threshold("complained", settings.breaker_complaint_rate_1h, 1),
        Threshold("bounced", settings.breaker_hard_bounce_rate_1h, 1),
        Threshold("complained", settings.breaker_complaint_rate_24h, 24),
        Threshold("bounced", settings.breaker_hard_bounce_rate_24h, 24),
    )


def record_outcomes(
    tenant_id: str, campaign: Campaign, counts: Mapping[str, int], now: datetime
) -> Trip | None:
    """Count a feedback batch's outcomes in the hour windows; pause the campaign if a
    threshold is crossed. Returns the trip (None: nothing crossed or nothing to test)."""
    outcomes = {name: counts.get(name, 0) for name in OUTCOMES}
    add_outcomes(tenant_id, campaign.id, campaign.resumed_at, outcomes, now)
    if campaign.status not in _RUNNING or not (outcomes["bounced"] or outcomes["complained"]):
        return None
    settings = get_settings()
    buckets = read_window(tenant_id, campaign.id, campaign.resumed_at, now)
    trip = breaker_trip(buckets, now, thresholds(settings), settings.breaker_min_volume)
    if trip is not None:
        pause_for(tenant_id, campaign.id, trip, now)
    return trip


def pause_for(tenant_id: str, campaign_id: str, trip: Trip, now: datetime, **progress: Any) -> bool:
    """Pause the campaign with the trip's reason (and ``progress`` fields recorded with
    it), announced by ``campaign.paused``; False if it was not running any more."""
    with contextlib.suppress(InvalidTransition):
        paused = apply_action(
            tenant_id,
            campaign_id,
            "pause",
            now,
            error_message=trip.message,
            pause_reason=trip.code,
            **progress,
        )
        notify_webhooks([campaign_paused(tenant_id, paused, now)])
        logger.warning("campaign paused itself", extra={"reason": trip.message})
        metrics.add_metric(name="campaigns_self_paused", unit="Count", value=1)
        return True
    return False
