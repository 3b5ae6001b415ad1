"""The breaker's and the delivery gate's arithmetic (chalicelib.domain.deliverability)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.deliverability import (
    PAUSE_COMPLAINT_RATE,
    PAUSE_DELIVERY_RATE,
    PAUSE_HARD_BOUNCE_RATE,
    Threshold,
    breaker_trip,
    delivery_rate,
    gate_trip,
)

NOW = datetime(2026, 6, 1, 12, 40, tzinfo=UTC)
HOUR = NOW.replace(minute=0)
RULES = (
    Threshold("complained", 0.01, 1),
    Threshold("bounced", 0.10, 1),
    Threshold("complained", 0.003, 24),
    Threshold("bounced", 0.05, 24),
)


def test_below_the_minimum_volume_nothing_trips() -> None:
    buckets = {HOUR: {"delivered": 200, "complained": 50, "bounced": 99}}
    assert breaker_trip(buckets, NOW, RULES, min_volume=300) is None


def test_the_one_hour_complaint_rule_trips_with_its_reason() -> None:
    buckets = {HOUR: {"delivered": 295, "bounced": 5, "complained": 4}}
    trip = breaker_trip(buckets, NOW, RULES, min_volume=300)
    assert trip is not None and trip.code == PAUSE_COMPLAINT_RATE
    assert trip.message == (
        "complaint rate 1.3% over the last 1 h is above the limit of 1% "
        "(300 messages with an outcome)"
    )


def test_the_day_window_adds_up_earlier_hours_and_forgets_older_ones() -> None:
    quiet = {"delivered": 1000, "complained": 2}  # 0.2 %: under both complaint limits
    buckets = {HOUR - timedelta(hours=n): dict(quiet) for n in range(24)}
    assert breaker_trip(buckets, NOW, RULES, min_volume=300) is None
    buckets[HOUR - timedelta(hours=23)] = {"delivered": 1000, "complained": 90}
    trip = breaker_trip(buckets, NOW, RULES, min_volume=300)
    assert trip is not None and trip.code == PAUSE_COMPLAINT_RATE and "24 h" in trip.message
    # One hour later that bucket is out of the window.
    assert breaker_trip(buckets, NOW + timedelta(hours=1), RULES, min_volume=300) is None


def test_hard_bounces_trip_on_their_own_rule() -> None:
    buckets = {HOUR: {"delivered": 340, "bounced": 60}}
    trip = breaker_trip(buckets, NOW, RULES, min_volume=300)
    assert trip is not None and trip.code == PAUSE_HARD_BOUNCE_RATE
    assert trip.message.startswith("hard-bounce rate 15% over the last 1 h")


def test_the_delivery_gate() -> None:
    assert delivery_rate(0, 0) is None
    assert delivery_rate(884, 116) == 88.4
    trip = gate_trip(884, 116, 92)
    assert trip is not None and trip.code == PAUSE_DELIVERY_RATE
    assert trip.message == "delivery rate 88.4% below minimum 92%"
    assert gate_trip(920, 80, 92) is None  # exactly the minimum passes
    assert gate_trip(0, 0, 92) is None  # nothing resolved: no rate to fail
