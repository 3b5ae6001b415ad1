"""The benchmark's sampling profiler puts each thread's CPU where its stack is."""

from __future__ import annotations

import gc
import sys
import threading
import time

from bench.sampler import Sampler
from chalicelib.domain.unsubscribe import SigningKey, UnsubscribeClaim, sign

TENANT = "0123456789abcdef0123456789abcdef"


def _busy(work: object, seconds: float, done: threading.Event) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        work()  # type: ignore[operator]
    done.wait()  # alive until the last sample has read this thread's CPU clock


def _herald_work() -> None:
    sign(UnsubscribeClaim(TENANT, "c_" + "1" * 32, "email", "cmp_1", "main"), SigningKey(1, b"k"))


def _own_work() -> None:
    sum(range(200))


def _both_waiting(threads: list[threading.Thread]) -> bool:
    """Both threads have done their work (they then wait, using no CPU)."""
    frames = sys._current_frames()
    return all(
        (frame := frames.get(t.ident or 0)) is not None and "wait" in frame.f_code.co_name
        for t in threads
    )


def test_cpu_of_a_thread_running_herald_code_is_herald_and_the_rest_is_other() -> None:
    sampler, done = Sampler(), threading.Event()
    threads = [
        threading.Thread(target=_busy, args=(_herald_work, 0.3, done)),
        threading.Thread(target=_busy, args=(_own_work, 0.3, done)),
    ]
    with sampler.sampling() as profile:
        for thread in threads:
            thread.start()
        while sum(1 for t in threads if t.is_alive()) and not _both_waiting(threads):
            time.sleep(0.01)
    done.set()
    for thread in threads:
        thread.join()
    herald, other = profile.cpu_seconds["herald"], profile.cpu_seconds["other"]
    assert profile.cpu_seconds["aws"] == 0
    # Each thread used 0.3 s of CPU; the split follows the stacks, not the threads' names.
    assert 0.25 < herald / (herald + other) < 0.75 and herald + other > 0.5
    assert max(profile.herald_inclusive, key=profile.herald_inclusive.__getitem__) == (
        "chalicelib.domain.unsubscribe.sign"
    )


def _collect() -> None:
    gc.collect()


def test_the_collectors_cpu_is_its_own_bucket_and_counted_once() -> None:
    """A collection scans the process's whole heap (in the benchmark, mostly moto's): its
    CPU goes to ``gc``, whatever code set it off, and is not charged again by a sample."""
    heap = [[index] for index in range(300_000)]  # something for each collection to scan
    sampler, done = Sampler(), threading.Event()
    thread = threading.Thread(target=_busy, args=(_collect, 0.3, done))
    with sampler.sampling() as profile:
        thread.start()
        while thread.is_alive() and not _both_waiting([thread]):
            time.sleep(0.01)
        assert thread.ident is not None
        used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    done.set()
    thread.join()
    collected, other = profile.cpu_seconds["gc"], profile.cpu_seconds["other"]
    assert collected > 0.6 * used  # the thread did little but collect
    assert collected + other < used + 0.1  # its CPU counted once, not twice
    assert profile.cpu_seconds["herald"] == 0
    assert len(heap) == 300_000
