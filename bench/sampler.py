"""Herald's own CPU time, measured by sampling the stacks of every thread.

A thread of the benchmark wakes every ``interval`` seconds, reads every other thread's
stack (``sys._current_frames()``) and its CPU clock (``CLOCK_THREAD_CPUTIME_ID`` through
``time.pthread_getcpuclockid``), and charges the CPU time each thread used since the last
sample to where that thread is now. CPU time rather than wall time: a thread waiting for
the GIL, a lock or the pool's queue uses none, and the work of other processes on the
machine is not counted (it only slows each sample's work, it does not add to it).

Each sample is put in one bucket:

- **aws**: the stack is inside an invocation (below) and holds a botocore, boto3 or moto
  frame: serialising a request, moto answering it, parsing the answer (in AWS a network
  wait), and the benchmark's meter hooks, which run inside the call;
- **herald**: inside an invocation and no AWS frame: Herald's code and the libraries it
  calls (pydantic, Jinja, json, hashlib…);
- **other**: the benchmark itself, the SES simulator publishing SES's events, the local
  poller receiving and deleting messages (Lambda's event source mapping, not Herald);
- **gc**: the cyclic garbage collector, whichever thread's allocation set it off, timed
  by ``gc.callbacks`` (the thread's CPU clock at the collection's start and stop) and
  taken out of that thread's next sample. A collection scans the whole heap of its
  generation, and this process's heap is mostly moto's: every item of every table, every
  queued message. A full collection took ~150 ms here, seven of them in a 2,000-contact
  broadcast, ~0.8 ms per recipient in all (young ones included), charged to whatever
  code happened to allocate (Herald's or moto's), where a Lambda holds only Herald's own
  objects. Each collection is an interval of its thread's CPU clock, the clock the
  samples read, so a sample takes out exactly the part of it that falls since the
  thread's last sample.

A thread found **blocked** (waiting on a lock, an event, a future or the pool's queue:
its innermost frame is one of ``_WAITING``) used its CPU since the last sample before it
blocked: that CPU is charged to the stack it had at its last sample while running, not
to the wait. Charging it to the wait had put the last moto call before every wait into
Herald's bucket: a batch waiting for its threads' round showed 0.6 ms per recipient
"in" ``concurrent.futures.wait``. Where it ran in between is not known: its last running
stack is a guess, but the wait, which uses no CPU, is certainly wrong. Threads that
take turns quickly (a batch and its one sending thread, a round of one recipient each)
stay hard to split between ``herald`` and ``other``: bench/README.md, "Issue 19, the
send path". ``bench.herald_time`` therefore runs the deployed rounds of eight recipients
on one sending thread: the batch's thread hands a round over and waits once per eight.

"Inside an invocation" is what Lambda would run: everything below the local poller's
``invoke_handler`` (the call of app.py's handler, Chalice's event wrapping included), an
app.py frame (the API request that starts the send), or a thread that runs Herald's code
from its first frame (the send worker's pool).

``herald_ms_per_recipient`` = the herald bucket's CPU time ÷ messages sent. Each sample
also names the innermost Herald frame and the library running inside it, so the profile
(``report``) says where the time goes.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INTERVAL_SECONDS = 0.0005
SWITCH_INTERVAL_SECONDS = 0.0001
_PROJECT = str(ROOT / "chalicelib") + "/"
_LOCAL = str(ROOT / "chalicelib" / "local") + "/"
_APP = str(ROOT / "app.py")
_AWS_PARTS = ("/botocore/", "/boto3/", "/moto/", "/s3transfer/", "/responses/")

# Where a blocked thread's innermost Python frame is: (file name ending, function)
_WAITING = (
    ("/threading.py", "wait"),
    ("/threading.py", "_wait_for_tstate_lock"),
    ("/concurrent/futures/thread.py", "_worker"),  # the pool's idle thread (SimpleQueue.get)
)

# What a code object is (``Sampler._kind``, decided once per code object)
_OTHER, _AWS, _HERALD, _LOCAL_KIND, _ENTRY = range(5)


def _seconds() -> defaultdict[str, float]:
    return defaultdict(float)


def _largest(seconds: Mapping[str, float], top: int | None = None) -> list[tuple[str, float]]:
    return sorted(seconds.items(), key=lambda kv: -kv[1])[:top]


@dataclass
class Profile:
    """CPU seconds by bucket, and Herald's by where it was spent."""

    cpu_seconds: defaultdict[str, float] = field(default_factory=_seconds)  # herald, aws, other, gc
    herald_sites: defaultdict[str, float] = field(
        default_factory=_seconds
    )  # innermost Herald frame
    herald_libraries: defaultdict[str, float] = field(default_factory=_seconds)  # what it called
    herald_calls: defaultdict[str, float] = field(default_factory=_seconds)  # site → library
    herald_inclusive: defaultdict[str, float] = field(
        default_factory=_seconds
    )  # every Herald frame
    herald_by_handler: defaultdict[str, float] = field(
        default_factory=_seconds
    )  # app.py entry point
    samples: int = 0
    seconds: float = 0.0

    def ms_per(self, bucket: str, recipients: int) -> float:
        return round(self.cpu_seconds[bucket] / max(1, recipients) * 1000, 3)

    def summary(self, recipients: int) -> dict[str, Any]:
        return {
            "method": "sampled thread CPU time (bench/sampler.py)",
            "interval_ms": INTERVAL_SECONDS * 1000,
            "samples": self.samples,
            "herald_ms_per_recipient": self.ms_per("herald", recipients),
            "aws_ms_per_recipient": self.ms_per("aws", recipients),
            "other_ms_per_recipient": self.ms_per("other", recipients),
            "gc_ms_per_recipient": self.ms_per("gc", recipients),
            # Load on the machine slows every instruction, Herald's and moto's alike: the
            # share is steadier than either figure when other work shares the cores.
            "herald_share_of_invocations": round(
                self.cpu_seconds["herald"]
                / max(1e-9, self.cpu_seconds["herald"] + self.cpu_seconds["aws"]),
                4,
            ),
            "herald_ms_per_recipient_by_handler": {
                name: round(s / max(1, recipients) * 1000, 3)
                for name, s in _largest(self.herald_by_handler)
            },
        }

    def report(self, recipients: int, top: int = 40) -> str:
        """The profile as text: Herald's CPU µs per recipient by site, library, function."""

        def table(title: str, counter: Mapping[str, float]) -> list[str]:
            lines = [f"\n{title} (µs per recipient)"]
            for name, seconds in _largest(counter, top):
                lines.append(f"{seconds / max(1, recipients) * 1e6:>10.1f}  {name}")
            return lines

        lines = [
            f"{recipients} recipients, {self.samples} samples over {self.seconds:.1f} s",
            *(
                f"{bucket:<8}{self.ms_per(bucket, recipients):>8.3f} ms per recipient"
                for bucket in ("herald", "aws", "other", "gc")
            ),
        ]
        lines += table("Herald by handler", self.herald_by_handler)
        lines += table("Herald by innermost Herald frame (self time)", self.herald_sites)
        lines += table("Herald by the library running inside it", self.herald_libraries)
        lines += table("Herald's calls into libraries (site → library)", self.herald_calls)
        lines += table("Herald by function, inclusive", self.herald_inclusive)
        return "\n".join(lines) + "\n"


class Sampler:
    """The sampling thread (see the module docstring); use ``with sampler.sampling():``."""

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.profile = Profile()
        self._kinds: dict[CodeType, tuple[int, str]] = {}
        self._clocks: dict[int, int] = {}
        self._last_cpu: dict[int, float] = {}
        self._running: dict[int, FrameType] = {}  # each thread's stack when last seen running
        self._gc_started: dict[int, float] = {}
        # Collections not yet taken out of a sample: (start, stop) on the thread's CPU clock
        self._gc_intervals: defaultdict[int, list[tuple[float, float]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def sampling(self) -> Iterator[Profile]:
        started = time.perf_counter()
        self._stop.clear()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        for ident in sys._current_frames():
            self._last_cpu[ident] = self._cpu(ident) or 0.0
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        gc.callbacks.append(self._collected)
        self._thread.start()
        try:
            yield self.profile
        finally:
            self._stop.set()
            self._thread.join()
            self._sample()  # the time since the last sample
            gc.callbacks.remove(self._collected)
            sys.setswitchinterval(switch_interval)
            self.profile.seconds += time.perf_counter() - started

    def _collected(self, phase: str, _info: dict[str, Any]) -> None:
        """``gc.callbacks``: note when a collection starts and stops on its thread's clock."""
        now, ident = time.thread_time(), threading.get_ident()
        if phase == "start":
            self._gc_started[ident] = now
        elif (started := self._gc_started.pop(ident, None)) is not None:
            self._gc_intervals[ident].append((started, now))

    def _collecting(self, ident: int, since: float, until: float) -> float:
        """The CPU a thread spent collecting between two of its clock readings.

        A collection still open counts up to now: the sampler, kept waiting for the GIL
        during a collection, typically gets it at the first Python line of the ``stop``
        callback, before that callback has recorded the interval.
        """
        pending = self._gc_intervals.pop(ident, [])
        open_since = self._gc_started.get(ident)
        if open_since is not None:
            pending.append((open_since, until))
        spent = sum(max(0.0, min(stop, until) - max(start, since)) for start, stop in pending)
        self._gc_intervals[ident].extend(i for i in pending if i[1] > until)
        return spent

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _cpu(self, ident: int) -> float | None:
        try:
            clock = self._clocks.get(ident)
            if clock is None:
                clock = self._clocks[ident] = time.pthread_getcpuclockid(ident)
            return time.clock_gettime(clock)
        except (OSError, ProcessLookupError):
            return None  # the thread ended

    def _sample(self) -> None:
        own = threading.get_ident()
        profile = self.profile
        profile.samples += 1
        for ident, frame in sys._current_frames().items():
            if ident == own or not isinstance(frame, FrameType):
                continue  # (CPython 3.11 once handed out a str here, a thread being torn down)
            cpu = self._cpu(ident)
            if cpu is None:
                continue
            last = self._last_cpu.get(ident, 0.0)
            collecting = self._collecting(ident, last, cpu)
            profile.cpu_seconds["gc"] += collecting
            used = cpu - last - collecting
            self._last_cpu[ident] = cpu
            if _waiting(frame):
                where = self._running.get(ident, frame)
            else:
                where = self._running[ident] = frame
            if used > 0:
                self._charge(where, used)

    def _kind(self, code: CodeType) -> tuple[int, str]:
        known = self._kinds.get(code)
        if known is None:
            path = code.co_filename
            if any(part in path for part in _AWS_PARTS):
                known = (_AWS, "")
            elif path == _APP:
                known = (_ENTRY, f"app.{code.co_name}")
            elif path.startswith(_LOCAL):
                entry = code.co_name == "invoke_handler"
                known = (_ENTRY if entry else _LOCAL_KIND, "")
            elif path.startswith(_PROJECT):
                module = path[len(str(ROOT)) + 1 : -3].replace("/", ".")
                known = (_HERALD, f"{module}.{code.co_qualname}")
            else:
                known = (_OTHER, _library(path))
            self._kinds[code] = known
        return known

    def _charge(self, frame: FrameType | None, used: float) -> None:
        """Put ``used`` CPU seconds in the bucket of the stack ending in ``frame``."""
        innermost_site = innermost_library = handler = None
        entered = aws = False
        outermost_project: int | None = None
        functions: list[str] = []
        while frame is not None:  # innermost to outermost
            kind, label = self._kind(frame.f_code)
            if kind == _AWS:
                aws = True
            elif kind == _HERALD:
                functions.append(label)
                if innermost_site is None:
                    innermost_site = label
                outermost_project = kind
            elif kind == _ENTRY:
                entered = True
                handler = handler or label or None
                outermost_project = kind
            elif kind == _LOCAL_KIND:
                outermost_project = kind
            elif innermost_site is None:
                innermost_library = label  # ends as the library Herald's frame called
            frame = frame.f_back
        if not (entered or outermost_project == _HERALD):
            self.profile.cpu_seconds["other"] += used
            return
        if aws:
            self.profile.cpu_seconds["aws"] += used
            return
        profile = self.profile
        profile.cpu_seconds["herald"] += used
        profile.herald_sites[innermost_site or "(Lambda glue: chalice)"] += used
        profile.herald_libraries[innermost_library or "herald"] += used
        if innermost_library is not None:
            profile.herald_calls[f"{innermost_site} → {innermost_library}"] += used
        profile.herald_by_handler[handler or "send pool"] += used
        for name in set(functions):
            profile.herald_inclusive[name] += used


def _waiting(frame: FrameType) -> bool:
    code = frame.f_code
    return any(
        code.co_name == name and code.co_filename.endswith(ending) for ending, name in _WAITING
    )


def _library(path: str) -> str:
    """A short name for a file outside Herald: its top package in site-packages, the
    benchmark's module, or the stdlib module (``<string>``: code made by ``exec``, such as
    a dataclass's ``__init__``)."""
    marker = "site-packages/"
    at = path.rfind(marker)
    if path.startswith(str(ROOT / "bench")):
        return "bench." + Path(path).stem
    if at >= 0:
        return path[at + len(marker) :].split("/", maxsplit=1)[0].removesuffix(".py")
    return "stdlib." + Path(path).stem
