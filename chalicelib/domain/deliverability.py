"""Deliverability rules: when a campaign must stop itself, and why.

Two rules share the arithmetic here (docs/engine.md, "The deliverability breaker" and
"Automation iterations"):

* **The breaker**, for every campaign: its complaint rate or hard-bounce rate over a
  window (1 hour, 24 hours) crossing a threshold, once the window holds a minimum volume,
  pauses it. The volume of a window is the messages whose delivery outcome arrived in it
  (``delivered + bounced``): the denominator the feedback worker sees without one more
  write per send, and the one that makes a late burst of complaints count against the
  messages it belongs with.
* **The delivery gate** of an automation: ``delivered / (delivered + bounced)`` of the
  iteration just sent, below ``min_delivery_rate``, pauses it before the next iteration.

Both give a ``Trip``: a reason code (for the ``campaign.paused`` webhook, constants
below) and a sentence for the campaign's ``error_message``. Nothing here reads the clock
or AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# Why a campaign paused itself: ``Campaign.pause_reason``, the code of its
# ``campaign.paused`` webhook. (A person's pause has none.)
PAUSE_COMPLAINT_RATE = "complaint_rate"
PAUSE_HARD_BOUNCE_RATE = "hard_bounce_rate"
PAUSE_DELIVERY_RATE = "delivery_rate"
PAUSE_REASON_CODES = frozenset({PAUSE_COMPLAINT_RATE, PAUSE_HARD_BOUNCE_RATE, PAUSE_DELIVERY_RATE})

Measure = Literal["complained", "bounced"]
# Counted per hour bucket by the feedback worker (first times only).
OUTCOMES: tuple[str, ...] = ("delivered", "bounced", "complained")
_CODES: Mapping[Measure, str] = {
    "complained": PAUSE_COMPLAINT_RATE,
    "bounced": PAUSE_HARD_BOUNCE_RATE,
}
_WORDS: Mapping[Measure, str] = {"complained": "complaint", "bounced": "hard-bounce"}


@dataclass(frozen=True)
class Threshold:
    """``measure`` above ``rate`` (a fraction) of the window's volume over ``hours``."""

    measure: Measure
    rate: float
    hours: int


@dataclass(frozen=True)
class Trip:
    """A rule that fired: the reason code and the sentence for the campaign."""

    code: str
    message: str


def _percent(value: float) -> str:
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def hour_of(at: datetime) -> datetime:
    """The hour bucket an outcome counted at ``at`` falls in."""
    return at.replace(minute=0, second=0, microsecond=0)


def breaker_trip(
    buckets: Mapping[datetime, Mapping[str, int]],
    now: datetime,
    thresholds: Iterable[Threshold],
    min_volume: int,
) -> Trip | None:
    """The first threshold crossed by the hour ``buckets`` (hour → outcome counts), if any.

    A window of N hours is the current hour's bucket and the N-1 before it, so a window
    spans between N-1 and N hours of outcomes. Rates are tested only once the window's
    volume reaches ``min_volume``: three complaints in the first ten messages say little.
    """
    current = hour_of(now)
    for threshold in thresholds:
        since = current - timedelta(hours=threshold.hours - 1)
        window = [counts for hour, counts in buckets.items() if since <= hour <= current]
        volume = sum(c.get("delivered", 0) + c.get("bounced", 0) for c in window)
        if volume < max(min_volume, 1):
            continue
        rate = sum(c.get(threshold.measure, 0) for c in window) / volume
        if rate > threshold.rate:
            return Trip(
                _CODES[threshold.measure],
                f"{_WORDS[threshold.measure]} rate {_percent(rate)} over the last "
                f"{threshold.hours} h is above the limit of {_percent(threshold.rate)} "
                f"({volume} messages with an outcome)",
            )
    return None


def delivery_rate(delivered: int, bounced: int) -> float | None:
    """``delivered / (delivered + bounced)`` in percent (one decimal); None without outcomes."""
    resolved = delivered + bounced
    return round(delivered * 100 / resolved, 1) if resolved else None


def gate_trip(delivered: int, bounced: int, min_delivery_rate: float) -> Trip | None:
    """The delivery gate: a rate below ``min_delivery_rate`` (percent) stops the automation.

    No outcomes at all (nothing resolved in time) is not a failing rate: the gate opens.
    """
    rate = delivery_rate(delivered, bounced)
    if rate is None or rate >= min_delivery_rate:
        return None
    return Trip(
        PAUSE_DELIVERY_RATE,
        f"delivery rate {rate:g}% below minimum {min_delivery_rate:g}%",
    )
