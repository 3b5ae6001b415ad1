"""Send windows: the local days and hours a flow's messages may go out (seed 001's
``allowed_windows``).

Quiet hours (``delivery.next_allowed``) are one daily span in which nothing goes out;
send windows are the opposite and may differ by day (weekdays 09:00 to 17:00, Saturday
10:00 to 12:00). Outside every window a message is deferred to the next opening, never
dropped, like a quiet-hours deferral. Windows are read in the contact's timezone, else
the campaign's, as quiet hours are. A window is ``[start, end)`` in wall-clock time on
each of its days; ``end`` may be ``24:00`` (to midnight); a window does not cross
midnight (two windows do that). An opening in a spring-forward gap is taken at the same
wall time after the jump (late, never early), as quiet hours are.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from chalicelib.domain.model import Model

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS = 50
_CLOCK = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"


class SendWindow(Model):
    """On each of ``days``, from ``start`` to ``end`` local time (``HH:MM``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Day] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=_CLOCK, examples=["09:00"])
    end: str = Field(pattern=_CLOCK, examples=["17:00"])

    @field_validator("days")
    @classmethod
    def _distinct(cls, days: list[Day]) -> list[Day]:
        if len(set(days)) != len(days):
            raise ValueError("a day is listed twice")
        return days

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.start == "24:00" or _minutes(self.start) >= _minutes(self.end):
            raise ValueError("start must be earlier than end (a window does not cross midnight)")
        return self


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _at(day: datetime, clock: str, zone: zoneinfo.ZoneInfo) -> datetime:
    """``clock`` on ``day``'s local date as a UTC instant (``24:00``: the next midnight;
    a wall time in a gap: fold 0, the same wall time after the jump)."""
    wall = datetime.combine(day.date(), time(0)) + timedelta(minutes=_minutes(clock))
    return wall.replace(tzinfo=zone).astimezone(UTC)


def next_open(
    now: datetime, zone: zoneinfo.ZoneInfo, windows: Sequence[SendWindow] | None
) -> datetime | None:
    """When a message due at ``now`` may go out: None means now (inside a window, or no
    windows at all); otherwise the UTC instant the next window opens."""
    if not windows:
        return None
    local = now.astimezone(zone)
    openings: list[datetime] = []
    for ahead in range(8):  # every weekday comes round within a week and a day
        day = local + timedelta(days=ahead)
        for window in windows:
            if DAYS[day.weekday()] not in window.days:
                continue
            start, end = _at(day, window.start, zone), _at(day, window.end, zone)
            if start <= now < end:
                return None
            if start > now:
                openings.append(start)
    return min(openings)
