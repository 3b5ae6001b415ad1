"""The benchmark's sampling profiler puts each thread's CPU where its stack is."""

from __future__ import annotations

import threading
import time

from bench.sampler import Sampler
from chalicelib.domain.unsubscribe import SigningKey, UnsubscribeClaim, sign

TENANT = "0123456789abcdef0123456789abcdef"


def _busy(work: object, seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        work()  # type: ignore[operator]


def _herald_work() -> None:
    sign(UnsubscribeClaim(TENANT, "c_" + "1" * 32, "email", "cmp_1", "main"), SigningKey(1, b"k"))


def _own_work() -> None:
    sum(range(200))


def test_cpu_of_a_thread_running_herald_code_is_herald_and_the_rest_is_other() -> None:
    sampler = Sampler()
    with sampler.sampling() as profile:
        threads = [
            threading.Thread(target=_busy, args=(_herald_work, 0.3)),
            threading.Thread(target=_busy, args=(_own_work, 0.3)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    herald, other = profile.cpu_seconds["herald"], profile.cpu_seconds["other"]
    assert profile.cpu_seconds["aws"] == 0
    # Each thread used ~0.3 s of CPU; the split follows the stacks, not the threads' names.
    assert 0.15 < herald < 0.6 and 0.15 < other < 0.6
    assert max(profile.herald_inclusive, key=profile.herald_inclusive.__getitem__) == (
        "chalicelib.domain.unsubscribe.sign"
    )
