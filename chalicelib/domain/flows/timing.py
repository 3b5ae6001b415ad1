"""The flow runtime's units of time: one duration shape, 5-field cron, local times of day.

Every duration in a workflow (``delay``, ``within``, ``timeout``, ``every``,
``max_lateness``) is the one shape ``{amount, unit}``, so a client learns it once. Cron
expressions and ``wait_until`` times are wall-clock times in an IANA zone; the DST rules
are the quiet-hours rules of ``chalicelib.domain.delivery.next_allowed``: a wall time in
the spring-forward gap happens at the same wall time after the jump (late, never early),
one in the repeated autumn hour at its first occurrence.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from chalicelib.domain.model import Model

Unit = Literal["seconds", "minutes", "hours", "days"]
MAX_DURATION = timedelta(days=366)  # Pinpoint's wait activity stops at 365 days
_SECONDS: dict[Unit, int] = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Duration(Model):
    """``{amount, unit}``: a positive length of time of at most MAX_DURATION."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(ge=1, examples=[2])
    unit: Unit = Field(examples=["days"])

    @model_validator(mode="after")
    def _within_limit(self) -> Duration:
        # Compared in seconds first: an amount past timedelta's range must be a 422 too.
        if self.amount * _SECONDS[self.unit] > MAX_DURATION.total_seconds():
            raise ValueError(f"a duration is at most {MAX_DURATION.days} days")
        return self

    def as_timedelta(self) -> timedelta:
        return timedelta(seconds=self.amount * _SECONDS[self.unit])


def wall_clock_instant(day: date, at: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in ``zone``.

    A time in the spring-forward gap (02:30 when clocks jump from 02:00 to 03:00) is read
    as the same wall time after the jump (03:30); a repeated time as its first occurrence.
    """
    # zoneinfo reads a gap time with the offset from before the jump, which lands it
    # after the jump; fold=0 picks the first of two repeated times.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def next_local_time(
    now: datetime, at: time, zone: zoneinfo.ZoneInfo, days: Iterable[Weekday] = ()
) -> datetime:
    """The first instant at or after ``now`` that is wall-clock ``at`` in ``zone``, on one of
    ``days`` (any day when empty). Always within eight days."""
    allowed = {WEEKDAYS.index(d) for d in days} or set(range(7))
    today = now.astimezone(zone).date()
    for offset in range(9):
        day = today + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        instant = wall_clock_instant(day, at, zone)
        if instant >= now:
            return instant
    raise AssertionError("a weekday recurs within eight days")  # pragma: no cover


# -- cron ------------------------------------------------------------------------------
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12))
_CRON_SEARCH_DAYS = 366 * 8  # Feb 29 only: one leap day in at most eight years (2096-2104)


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression: minute hour day-of-month month day-of-week.

    Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a
    comma-separated list of those; day-of-week is 0-7 with 0 and 7 both Sunday. As in
    Vixie cron, when both day-of-month and day-of-week are restricted, a day matching
    either fires. Names (``MON``, ``JAN``) and ``@daily`` are not accepted.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Monday, as date.weekday()
    day_of_month_any: bool
    day_of_week_any: bool

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_month_day = day.day in self.days_of_month
        by_weekday = day.weekday() in self.days_of_week
        if self.day_of_month_any or self.day_of_week_any:
            return by_month_day and by_weekday
        return by_month_day or by_weekday

    def next_fire(self, after: datetime, zone: zoneinfo.ZoneInfo) -> datetime | None:
        """The first firing strictly after ``after``, read in ``zone``; None if it never
        fires (``0 0 30 2 *``)."""
        start = after.astimezone(zone).date()
        for offset in range(_CRON_SEARCH_DAYS):
            day = start + timedelta(days=offset)
            if not self.fires_on(day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    instant = wall_clock_instant(day, time(hour, minute), zone)
                    if instant > after:
                        return instant
        return None


def parse_cron(expression: str) -> Cron:
    """A ``Cron`` from ``expression``; ValueError naming the field that is wrong."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError("a cron expression has 5 fields: minute hour day month weekday")
    values = [
        _cron_field(text, name, low, high)
        for text, (name, low, high) in zip(parts, _CRON_FIELDS, strict=False)
    ]
    weekdays = _cron_field(parts[4], "day of week", 0, 7)
    return Cron(
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=frozenset((d - 1) % 7 for d in weekdays),  # cron 0/7 = Sunday = 6
        day_of_month_any=parts[2].startswith("*"),
        day_of_week_any=parts[4].startswith("*"),
    )


def _cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = _cron_number(step_text, name) if step_text else 1
        if step < 1:
            raise ValueError(f"cron {name}: a step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = _cron_number(first_text, name), _cron_number(last_text, name)
        else:
            first = _cron_number(span, name)
            last = high if step_text else first
        if not low <= first <= last <= high:
            raise ValueError(f"cron {name}: '{item}' is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _cron_number(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValueError(f"cron {name}: '{text}' is not a number")
    return int(text)
