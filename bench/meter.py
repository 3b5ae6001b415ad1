"""What every AWS call costs: counted, timed and sized by botocore event hooks.

The meter hooks the clients ``chalicelib.aws.client`` hands out (the only clients Herald
uses), so nothing in Herald changes or is bypassed. Per call it records:

- the operation (``service.Operation``) and whether it was made inside a handler
  invocation (Herald's work) or outside (set-up, SES publishing its own events);
- the CPU time the calling thread spent inside the call (``time.thread_time``, from
  ``provide-client-params``, the first event of a call, to ``after-call``, the last):
  that includes botocore's serialising and parsing and moto's own work, which in AWS is
  a network wait; Herald's own time is everything else the process spent in a handler.
  Reading a thread's CPU clock costs up to half a millisecond on this VM while other
  threads run (it doubled the benchmark's time): calls on the main thread are all timed,
  but of the sender pool's calls only the first few and then one in ``CPU_SAMPLE_EVERY``
  of each kind, the others being charged their kind's mean. A kind is an operation and
  the size of its request (a Query for 500 contacts costs more than one for 16 shards);
- what a DynamoDB call bills: write and read request units, sized by DynamoDB's rules
  from the item as moto stores it right after the write (``bench.capacity``), and which
  item each write touched (for the hot-key figure);
- what an SQS, SNS or EventBridge request bills: one request per 64 KB of payload;
- what a Firehose put (SES's, when it publishes its events to a stream) bills: its
  records and their size, each record rounded up to 5 KB, and the S3 object Firehose
  writes from it (moto writes one object per call; Firehose one per 1 MiB or 60 s).

An empty ReceiveMessage is counted apart (``idle_polls``): Lambda's pollers long-poll an
idle queue at a fixed rate whatever the audience, so it is not a per-recipient cost.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench import capacity

_START = "bench_meter_start"
_CHUNK = 64 * 1024  # SQS, SNS and EventBridge bill one request per 64 KB of payload
_FIREHOSE_RECORD_KB = 5  # Firehose bills each record rounded up to 5 KB
_FIREHOSE_PUTS = ("firehose.PutRecordBatch", "firehose.PutRecord")
_POOL_THREAD_PREFIX = "send"  # the send pool (thread_name_prefix in pipeline/send/batch.py)
CPU_SAMPLE_EVERY = 16
CPU_SAMPLE_FIRST = 3


@dataclass
class Tally:
    """Everything counted in one phase (a run, or a part of one)."""

    calls: Counter[str] = field(default_factory=Counter)
    billed_requests: Counter[str] = field(default_factory=Counter)  # 64 KB chunks
    pooled_calls: Counter[str] = field(default_factory=Counter)  # made by the send pool
    idle_polls: int = 0
    write_units: float = 0.0
    index_write_units: float = 0.0
    read_units: float = 0.0
    item_writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    firehose_records: int = 0
    firehose_billed_kb: int = 0  # each record rounded up to 5 KB
    firehose_bytes: int = 0  # what the records really held
    firehose_objects: int = 0  # S3 objects Firehose wrote (S3 PUTs)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def add(self, other: Tally) -> None:
        self.calls.update(other.calls)
        self.billed_requests.update(other.billed_requests)
        self.pooled_calls.update(other.pooled_calls)
        self.idle_polls += other.idle_polls
        self.write_units += other.write_units
        self.index_write_units += other.index_write_units
        self.read_units += other.read_units
        self.item_writes.update(other.item_writes)
        self.firehose_records += other.firehose_records
        self.firehose_billed_kb += other.firehose_billed_kb
        self.firehose_bytes += other.firehose_bytes
        self.firehose_objects += other.firehose_objects


class AwsMeter:
    """Hooks Herald's boto3 clients and tallies their calls (see the module docstring)."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._lock = threading.Lock()
        self.tallies: dict[str, Tally] = {}
        self.phase = "setup"
        self._started_calls: Counter[str] = Counter()
        self._cpu_samples: dict[str, list[float]] = {}  # by kind (operation/size)
        self.calls_by_kind: Counter[str] = Counter()
        self._hooks: list[tuple[Any, str, Any]] = []

    def install(self, services: tuple[str, ...]) -> AwsMeter:
        from chalicelib.aws import client

        for service in services:
            events = client(service).meta.events
            # First in, last out: another hook's work on the call (the SES simulator's
            # event building) is then inside the call's time, where it belongs.
            events.register_first("provide-client-params.*.*", self._started)
            events.register_last("after-call.*.*", self._ended)
            events.register_last("after-call-error.*.*", self._failed)
            self._hooks += [
                (events, "provide-client-params.*.*", self._started),
                (events, "after-call.*.*", self._ended),
                (events, "after-call-error.*.*", self._failed),
            ]
        return self

    def uninstall(self) -> None:
        for events, name, handler in self._hooks:
            events.unregister(name, handler)
        self._hooks = []

    @contextmanager
    def attributed(self, phase: str) -> Iterator[None]:
        """Tally the calls made inside the block under ``phase`` (e.g. "herald", "ses")."""
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before

    def tally(self, phase: str) -> Tally:
        with self._lock:
            return self.tallies.setdefault(phase, Tally())

    def calls_so_far(self) -> Counter[str]:
        """Every call made so far (empty polls aside), by kind (a copy)."""
        with self._lock:
            return Counter(self.calls_by_kind)

    def mean_cpu_seconds(self, kind: str) -> float:
        """The mean CPU time of one call of ``kind`` (from the sampled calls)."""
        samples = self._cpu_samples.get(kind) or [0.0]
        return sum(samples) / len(samples)

    def cpu_seconds(self, calls: Counter[str]) -> float:
        """The CPU time ``calls`` (by kind) spent inside AWS calls, by their kinds' means."""
        return sum(n * self.mean_cpu_seconds(kind) for kind, n in calls.items())

    def mean_cpu_ms_by_operation(self) -> dict[str, float]:
        """Mean CPU milliseconds of one call per operation, over all its kinds."""
        by_operation: dict[str, list[float]] = {}
        for kind, n in self.calls_by_kind.items():
            totals = by_operation.setdefault(kind.partition("/")[0], [0.0, 0.0])
            totals[0] += n * self.mean_cpu_seconds(kind)
            totals[1] += n
        return {name: round(t[0] / t[1] * 1000, 2) for name, t in sorted(by_operation.items())}

    # -- hooks --------------------------------------------------------------------------
    def _started(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        kind = f"{model.service_model.service_name}.{model.name}/{_size_class(params)}"
        with self._lock:
            seen = self._started_calls[kind]
            self._started_calls[kind] += 1
        sampled = (
            threading.current_thread() is threading.main_thread()
            or seen < CPU_SAMPLE_FIRST
            or seen % CPU_SAMPLE_EVERY == 0
        )
        started = time.thread_time() if sampled else None
        pending = []
        if model.service_model.service_name == "dynamodb":
            pending = capacity.before_write(self._region, model.name, params)
        context[_START] = (started, params, pending, kind)

    def _ended(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        self._record(model, context, parsed)

    def _failed(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self._record(model, context, None)

    def _record(self, model: Any, context: dict[str, Any], parsed: dict[str, Any] | None) -> None:
        started = context.pop(_START, None)
        if started is None:
            return
        params: dict[str, Any] = started[1]
        service = model.service_model.service_name
        name = f"{service}.{model.name}"
        units = None
        if service == "dynamodb":
            units = capacity.of_call(self._region, model.name, params, parsed, started[2])
        cpu = None if started[0] is None else time.thread_time() - started[0]
        pooled = threading.current_thread().name.startswith(_POOL_THREAD_PREFIX)
        with self._lock:
            tally = self.tallies.setdefault(self.phase, Tally())
            if name == "sqs.ReceiveMessage" and not (parsed or {}).get("Messages"):
                tally.idle_polls += 1
                return
            kind = started[3]
            self.calls_by_kind[kind] += 1
            if cpu is not None:
                self._cpu_samples.setdefault(kind, []).append(cpu)
            tally.calls[name] += 1
            if pooled:
                tally.pooled_calls[name] += 1
            tally.billed_requests[name] += _billed_requests(name, params, parsed)
            if name in _FIREHOSE_PUTS and parsed is not None:
                _tally_firehose(tally, params)
            if units is not None:
                tally.write_units += units.write
                tally.index_write_units += units.index_write
                tally.read_units += units.read
                tally.item_writes.update(units.items_written)


def _size_class(params: dict[str, Any]) -> int:
    """How big a request is, in powers of two of the items it names or asks for."""
    requested = params.get("RequestItems")
    if isinstance(requested, dict):  # BatchGetItem, BatchWriteItem
        size = sum(len(v.get("Keys", v) if isinstance(v, dict) else v) for v in requested.values())
    else:
        size = len(params.get("Entries") or params.get("TransactItems") or ()) or int(
            params.get("Limit") or params.get("MaxNumberOfMessages") or 1
        )
    return int(size).bit_length()


def _billed_requests(name: str, params: dict[str, Any], parsed: dict[str, Any] | None) -> int:
    """Requests as SQS, SNS and EventBridge bill them: one per 64 KB of payload."""
    payload = 0
    if name in ("sqs.SendMessageBatch", "events.PutEvents"):
        entries = params.get("Entries", [])
        payload = sum(len(e.get("MessageBody", e.get("Detail", ""))) for e in entries)
        if name == "events.PutEvents":  # billed per event, each per 64 KB
            return sum(max(1, math.ceil(len(e.get("Detail", "")) / _CHUNK)) for e in entries)
    elif name in ("sqs.SendMessage", "sns.Publish"):
        payload = len(params.get("MessageBody", params.get("Message", "")))
    elif name == "sqs.ReceiveMessage":
        payload = sum(len(m.get("Body", "")) for m in (parsed or {}).get("Messages", []))
    return max(1, math.ceil(payload / _CHUNK))


def _tally_firehose(tally: Tally, params: dict[str, Any]) -> None:
    """A Firehose put: its records, their size as billed (5 KB steps) and as sent, and
    the S3 object moto writes for it at once."""
    records = params.get("Records") or [params.get("Record", {})]
    sizes = [len(record.get("Data", b"")) for record in records]
    tally.firehose_records += len(sizes)
    tally.firehose_bytes += sum(sizes)
    step = _FIREHOSE_RECORD_KB * 1024
    tally.firehose_billed_kb += sum(
        max(1, math.ceil(size / step)) * _FIREHOSE_RECORD_KB for size in sizes
    )
    tally.firehose_objects += 1
