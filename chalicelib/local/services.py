"""The background components of the embedded stack, and the loop most of them are.

A ``Service`` is anything with a name that starts and stops: the API server, a queue
poller, the schedule emulator, the tick (and later simulators). Stopping has two steps so
the stack can ask every component to stop at once, then wait for each: shutdown then
takes as long as the slowest component, not the sum of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from chalicelib.observability import logger

_BACKOFF_SECONDS = 1.0


class Service(Protocol):
    name: str

    def start(self) -> None:
        """Begin working in the background; return at once."""

    def stop(self) -> None:
        """Ask the component to stop; return promptly (``join`` does the waiting)."""

    def join(self, timeout: float) -> bool:
        """Wait until stopped; True if it did within ``timeout`` seconds."""


class Worker:
    """A thread that runs ``step`` every ``interval`` seconds until stopped.

    A step that raises is logged and retried after a pause: one bad message or a moment
    without AWS must not end local processing for the rest of the session. With
    ``interval=0`` the step paces itself (a long poll). With ``immediately=False`` the
    first step waits one interval, as a ``rate()`` rule does.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        interval: float,
        *,
        immediately: bool = True,
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._immediately = immediately
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"herald-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float) -> bool:
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if not self._immediately and self._stopping.wait(self._interval):
            return
        while not self._stopping.is_set():
            pause = self._interval
            try:
                self._step()
            except Exception:  # logged, never fatal: the loop is the emulated AWS service
                if self._stopping.is_set():
                    return  # the stack is going down; the error is part of that
                logger.exception("local worker step failed", extra={"worker": self.name})
                pause = max(pause, _BACKOFF_SECONDS)
            if self._stopping.wait(pause):
                return
