"""The loop behind the local stack's pollers, scheduler and tick: it survives failures
and stops when asked."""

from __future__ import annotations

import logging
import threading

from chalicelib.local.services import Worker


def test_a_failing_step_is_logged_and_the_loop_goes_on(caplog):
    attempts: list[int] = []
    recovered = threading.Event()

    def step() -> None:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise RuntimeError("moto went away")
        recovered.set()

    worker = Worker("flaky", step, 0)
    with caplog.at_level(logging.ERROR):
        worker.start()
        assert recovered.wait(10)
    worker.stop()

    assert worker.join(5)
    assert [r.getMessage() for r in caplog.records] == ["local worker step failed"]


def test_stop_ends_a_worker_waiting_for_its_first_interval():
    ran = threading.Event()
    worker = Worker("hourly", ran.set, 3600, immediately=False)
    worker.start()

    worker.stop()

    assert worker.join(5)
    assert not ran.is_set()
