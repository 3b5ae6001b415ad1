"""Herald's sense of time, injectable so that time-dependent rules are testable.

Every rule that depends on "now" (quiet hours, frequency caps, schedules, leases, pacing)
asks this module rather than ``datetime.now``/``time.sleep``, so a test can freeze the
clock at 20:59 in Tokyo, advance it one minute and watch a quiet-hours window close,
without waiting. In AWS and in the embedded stack nothing is installed and the real
clock is used. The sender's pool reads the clock from several threads: a frozen clock
is guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current instant and a way to let time pass."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: aware UTC datetimes and real sleeping."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FrozenClock:
    """A clock that only moves when told to; ``sleep`` advances it instead of waiting."""

    def __init__(self, at: datetime) -> None:
        self._at = _aware(at)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(timedelta(seconds=seconds))

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta``; returns the new now."""
        with self._lock:
            self._at += delta
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = _aware(at)


_system = SystemClock()
_installed: list[Clock] = [_system]  # one slot: the process-wide clock


def now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return _installed[0].now()


def sleep(seconds: float) -> None:
    """Let ``seconds`` pass (really, or on a frozen clock by advancing it)."""
    _installed[0].sleep(seconds)


def install(clock: Clock) -> None:
    """Make ``clock`` the process-wide clock (tests; the embedded stack never calls this)."""
    _installed[0] = clock


def use_system_clock() -> None:
    """Back to real time."""
    install(_system)


@contextmanager
def frozen(at: datetime) -> Iterator[FrozenClock]:
    """Freeze time at ``at`` for the duration of a ``with`` block; yields the clock to advance."""
    previous = _installed[0]
    clock = FrozenClock(at)
    install(clock)
    try:
        yield clock
    finally:
        install(previous)


def _aware(at: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so a frozen clock never returns a naive time."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
