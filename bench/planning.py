"""How long planning 10 million recipients takes, and how soon sending reaches the account rate.

``plan_seconds_per_10m`` (measured, then projected): a campaign for all of a tenant's
contacts is started and its planning chains run in parallel in-process, one thread per
chain, each taking the control queue's next message and handing it to the real control
handler (as Lambda's pollers would, one message per invocation), against moto. Per
planner page it records the thread's CPU time, the part of it spent inside moto (which
stands in for AWS and costs nothing on a Lambda), and the AWS calls made, by operation.
The check: the campaign is planned (``sending``) with every contact examined once, and
the send queue holds each eligible contact exactly once.

A page in AWS then takes::

    t_page = Herald + botocore CPU (measured) / PLANNER_VCPU
             + sum over its calls of LATENCY_MS[call]   (the page's calls run one after another)
             + HANDOFF_MS                                (the next page's message to its invocation)

and 10 million recipients, in ``settings.plan_chains`` chains of 500-contact pages running
side by side, take ``ceil(10,000,000 / chains / 500) * t_page`` plus the start.

``time_to_account_rate_s`` (a model, from the same per-page time and the send path's
measured CPU): see ``time_to_account_rate``. bench/README.md states every number used.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber

from bench.harness import _api, _aws, _campaign, _contacts, _tenant

TEN_MILLION = 10_000_000
PAGE_SIZE = 500
# Stated in-region latencies of the planner's calls (milliseconds, p50; bench/README.md):
LATENCY_MS = {
    "dynamodb.Query": 25.0,  # one page of up to 500 contacts (~250 KB read)
    "dynamodb.BatchGetItem": 10.0,  # ≤ 100 keys (suppression, planned markers, counters)
    "dynamodb.BatchWriteItem": 15.0,  # ≤ 25 items (planned markers)
    "dynamodb": 6.0,  # any other DynamoDB call: one small item
    "sqs.SendMessageBatch": 12.0,  # ten batch messages of ≤ 100 ids
    "sqs": 10.0,
}
HANDOFF_MS = 50.0  # SQS → Lambda: the next page's message received and its invocation begun
PLANNER_VCPU = 1.0  # the control worker has 1,769 MB: one full vCPU (chalicelib.resources)
COLD_START_S = 0.6  # a new execution environment: init + `import app` (cold_import_ms ≈ 0.3 s)

# time_to_account_rate_s (docs: docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html)
SQS_FIRST_INVOCATIONS = 5  # "Lambda starts processing five batches at a time"
SQS_SCALE_PER_SECOND = 300 / 60  # "up to 300 more instances per minute"
SES_SEND_MS = 40.0  # SES v2 SendEmail p50, in region
LEDGER_PUT_MS = 6.0  # the conditional PutItem after each send
BOTOCORE_MS_PER_SEND = 0.8  # client-side CPU of those two calls (serialise, sign, parse)
SEND_VCPU = 512 / 1769  # the send worker's 512 MB: ~0.29 vCPU
ACCOUNT_RATE = 1000.0  # the SES account rate the figure is computed for (sends/second)
SUSTAINED_SHARE = 0.99  # "at the rate": 99 % of it


@dataclass
class PageSample:
    chain: int
    page: int
    cpu_s: float
    moto_cpu_s: float
    calls: Counter[str]


@dataclass
class _ThreadTally:
    moto_cpu_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)


_tally = threading.local()
_moto_lock = threading.RLock()


@contextmanager
def _metered_moto() -> Iterator[None]:
    """Each moto request runs alone (DynamoDB serialises writes to an item; moto, run from
    several threads, would not) and its CPU is charged to the calling thread's tally."""
    unpatched = BotocoreStubber.__call__

    def call(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        tally: _ThreadTally | None = getattr(_tally, "current", None)
        with _moto_lock:
            began = time.thread_time()
            try:
                return unpatched(self, event_name, request, **kwargs)
            finally:
                if tally is not None:
                    tally.moto_cpu_s += time.thread_time() - began
                    # "before-send.dynamodb.Query" → "dynamodb.Query"
                    tally.calls[event_name.split(".", 1)[-1]] += 1

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = unpatched  # type: ignore[method-assign]


@dataclass
class PlanningRun:
    contacts: int
    eligible: int
    chains: int
    wall_s: float
    samples: list[PageSample]
    members_by_page: dict[tuple[int, int], int]
    sanity: dict[str, Any]


def run_planning(contacts: int = 16_000, chains: int = 16) -> PlanningRun:
    """Plan one all-contacts campaign in ``chains`` chains on as many threads (see above)."""
    previous = os.environ.get("HERALD_PLAN_CHAINS")
    os.environ["HERALD_PLAN_CHAINS"] = str(chains)
    try:
        with _aws():
            return _run(contacts, chains)
    finally:
        if previous is None:
            os.environ.pop("HERALD_PLAN_CHAINS", None)
        else:
            os.environ["HERALD_PLAN_CHAINS"] = previous


def _run(contacts: int, chains: int) -> PlanningRun:
    from chalicelib.local.provision import provision
    from chalicelib.observability import metrics
    from chalicelib.store.campaigns import get_campaign
    from chalicelib.store.ledger import unit_outcomes

    provision()
    tenant_id, key = _tenant()
    eligible = _contacts(tenant_id, contacts)
    with _api() as http:
        campaign_id = _campaign(http, key)
        http.post(f"/v1/campaigns/{campaign_id}/send", key, {})
    samples: list[PageSample] = []
    began = time.perf_counter()
    with _metered_moto():
        _handle_next()  # the start: every chain's first page queued
        workers = [
            threading.Thread(target=_work, args=(tenant_id, campaign_id, samples))
            for _ in range(chains)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    wall = time.perf_counter() - began
    metrics.clear_metrics()  # nothing to publish from a benchmark
    members = {}
    for unit in unit_outcomes(tenant_id, campaign_id, "PLAN"):
        chain, page = (int(n) for n in str(unit["unit_id"]).split("."))
        members[(chain, page)] = int(unit.get("planned", {}).get("members", 0))
    campaign = get_campaign(tenant_id, campaign_id)
    sanity = _sanity(campaign, contacts, eligible)
    return PlanningRun(contacts, eligible, chains, wall, samples, members, sanity)


def _handle_next(tally: _ThreadTally | None = None) -> tuple[dict[str, Any], float] | None:
    """Receive one control message and run its real handler: the message and the thread's
    CPU seconds in the handler (its calls and moto's share in ``tally``), or None if none.
    The receive and the delete are the event source mapping's, not the handler's."""
    import app as herald
    from chalicelib.aws import client
    from chalicelib.pipeline.dispatch import decode
    from chalicelib.pipeline.queues import queue_url

    sqs, url = client("sqs"), queue_url("control")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
    if not received:
        return None
    _tally.current = tally
    cpu = time.thread_time()
    handler, message = decode("control", herald.QUEUE_CONSUMERS["control"], received[0]["Body"])
    handler(message)
    cpu = time.thread_time() - cpu
    _tally.current = None
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    return message, cpu


def _work(tenant_id: str, campaign_id: str, samples: list[PageSample]) -> None:
    """One planner worker: take pages until the campaign is planned and the queue is empty."""
    from chalicelib.store.campaigns import get_campaign

    while True:
        tally = _ThreadTally()
        handled = _handle_next(tally)
        if handled is None:
            if get_campaign(tenant_id, campaign_id).status != "calculating":
                return
            time.sleep(0.01)
            continue
        message, cpu = handled
        samples.append(
            PageSample(
                int(message.get("chain", 0)),
                int(message.get("page", 0)),
                cpu,
                tally.moto_cpu_s,
                tally.calls,
            )
        )


def _sanity(campaign: Any, contacts: int, eligible: int) -> dict[str, Any]:
    """Every contact examined once, every eligible one queued in exactly one batch."""
    from chalicelib.aws import client
    from chalicelib.pipeline.queues import queue_url

    sqs, url = client("sqs"), queue_url("send")
    queued: Counter[str] = Counter()
    batches = 0
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        for message in got:
            batches += 1
            queued.update(json.loads(message["Body"])["recipients"])
    checks = {
        "status": campaign.status,
        "total_recipients": campaign.total_recipients,
        "planned_batches": campaign.planned_batches,
        "batches_queued": batches,
        "recipients_queued": len(queued),
        "queued_twice": sum(1 for n in queued.values() if n > 1),
    }
    checks["ok"] = (
        campaign.status == "sending"
        and campaign.total_recipients == contacts
        and campaign.planned_batches == batches
        and len(queued) == eligible
        and checks["queued_twice"] == 0
    )
    return checks


# -- the figures ----------------------------------------------------------------------------
def page_seconds(run: PlanningRun) -> dict[str, Any]:
    """The mean full page (500 contacts examined) in AWS, by the model above."""
    full = [s for s in run.samples if run.members_by_page.get((s.chain, s.page)) == PAGE_SIZE]
    pages = full or run.samples
    herald_cpu_s = sum(s.cpu_s - s.moto_cpu_s for s in pages) / len(pages)
    calls: Counter[str] = Counter()
    for sample in pages:
        calls.update(sample.calls)
    per_page = {name: n / len(pages) for name, n in sorted(calls.items())}
    waiting_ms = sum(n * _latency_ms(name) for name, n in per_page.items())
    seconds = herald_cpu_s / PLANNER_VCPU + (waiting_ms + HANDOFF_MS) / 1000
    return {
        "full_pages_measured": len(full),
        "herald_cpu_ms": round(herald_cpu_s * 1000, 1),
        "aws_wait_ms": round(waiting_ms, 1),
        "handoff_ms": HANDOFF_MS,
        "calls_per_page": {name: round(n, 2) for name, n in per_page.items()},
        "seconds": round(seconds, 3),
    }


def _latency_ms(name: str) -> float:
    return LATENCY_MS.get(name, LATENCY_MS.get(name.split(".", maxsplit=1)[0], 10.0))


def plan_seconds_per_10m(page_s: float, chains: int) -> float:
    """10 M recipients in ``chains`` chains of pages, side by side, plus the start."""
    pages_per_chain = math.ceil(TEN_MILLION / chains / PAGE_SIZE)
    start = COLD_START_S + HANDOFF_MS / 1000 + 0.05  # the start invocation queues the chains
    # The control queue's mapping runs 5 invocations, then 5 more a second: the last chain
    # begins that much later; each chain's first page is a cold start.
    ramp = max(0, chains - SQS_FIRST_INVOCATIONS) / SQS_SCALE_PER_SECOND
    return round(start + ramp + COLD_START_S + pages_per_chain * page_s, 1)


def send_worker_rate(herald_ms_per_send: float, concurrency: int) -> float:
    """Sends a second one send worker can make, unpaced: the lower of what its threads'
    waiting allows and what its share of a vCPU allows."""
    cpu_ms = herald_ms_per_send + BOTOCORE_MS_PER_SEND
    by_latency = concurrency * 1000 / (SES_SEND_MS + LEDGER_PUT_MS + cpu_ms / SEND_VCPU)
    by_cpu = SEND_VCPU * 1000 / cpu_ms
    return min(by_latency, by_cpu)


def time_to_account_rate(
    *,
    rate: float,
    send_workers: int,
    maximum_concurrency: int | None,
    herald_ms_per_send: float,
    send_concurrency: int,
    page_s: float,
) -> dict[str, Any]:
    """Seconds from ``POST /send`` until the workers running can send at ``rate`` a second.

    The start invocation (cold) queues every chain's first page; each chain's first page
    (cold) queues its batches, so the send queue has work from ``first_batches_s``. Lambda
    then runs 5 send invocations and adds up to 5 a second (300 a minute), up to the send
    queue's maximum concurrency (the reserved concurrency caps it too; without a maximum
    concurrency the mapping would invoke past it and be throttled); each new worker
    starts cold. Each paces itself to ``rate / send_workers`` and can do at most
    ``send_worker_rate``. None if the workers cannot reach the rate at all (too few).
    """
    per_worker = min(rate / send_workers, send_worker_rate(herald_ms_per_send, send_concurrency))
    ceiling = min(send_workers, maximum_concurrency or send_workers)
    needed = math.ceil(SUSTAINED_SHARE * rate / per_worker - 1e-9)
    first_batches = 2 * (HANDOFF_MS / 1000 + COLD_START_S) + page_s
    result: dict[str, Any] = {
        "account_rate": rate,
        "send_workers": send_workers,
        "maximum_concurrency": maximum_concurrency,
        "worker_rate": round(per_worker, 1),
        "workers_needed": needed,
        "first_batches_s": round(first_batches, 2),
    }
    if needed > ceiling:
        result["seconds"] = None
        return result
    scaling = max(0.0, (needed - SQS_FIRST_INVOCATIONS) / SQS_SCALE_PER_SECOND)
    result["seconds"] = round(first_batches + HANDOFF_MS / 1000 + scaling + COLD_START_S, 1)
    return result


def measure(*, quick: bool, herald_ms_per_send: float | None = None) -> dict[str, Any]:
    """Both figures, as a section of ``python -m bench`` (``quick``: fewer contacts).

    The send path's CPU per recipient is ``herald_ms_per_send`` if given, else the
    committed full run's ``herald_ms_per_recipient`` (bench/results.json: this section runs
    beside the broadcasts, not after them)."""
    from chalicelib.settings import get_settings

    settings = get_settings()
    run = run_planning(*((4_000, 4) if quick else (16_000, 16)))  # ≥ 2 full pages a chain
    page = page_seconds(run)
    chains = settings.plan_chains
    send_ms = herald_ms_per_send if herald_ms_per_send is not None else _committed_send_ms()
    workers = max(settings.send_workers, _workers_for(ACCOUNT_RATE, send_ms, settings))
    account = time_to_account_rate(
        rate=ACCOUNT_RATE,
        send_workers=workers,
        maximum_concurrency=workers,
        herald_ms_per_send=send_ms,
        send_concurrency=settings.send_concurrency,
        page_s=page["seconds"],
    )
    defaults = time_to_account_rate(
        rate=ACCOUNT_RATE,
        send_workers=settings.send_workers,
        maximum_concurrency=settings.send_workers,
        herald_ms_per_send=send_ms,
        send_concurrency=settings.send_concurrency,
        page_s=page["seconds"],
    )
    plan_seconds = plan_seconds_per_10m(page["seconds"], chains)
    return {
        "figures": {
            "plan_seconds_per_10m": plan_seconds,
            "time_to_account_rate_s": account["seconds"],
        },
        "plan_seconds_per_10m": plan_seconds,
        "plan_seconds_per_10m_one_chain": plan_seconds_per_10m(page["seconds"], 1),
        "herald_ms_per_send": send_ms,
        "plan_chains": chains,
        "page": page,
        "measured": {
            "contacts": run.contacts,
            "eligible": run.eligible,
            "chains_in_parallel": run.chains,
            "pages": len(run.samples),
            "wall_s_in_moto": round(run.wall_s, 2),
            "sanity": run.sanity,
        },
        "time_to_account_rate_s": account["seconds"],
        "account_rate": account,
        "account_rate_with_default_workers": defaults,
    }


def _committed_send_ms() -> float:
    from bench.harness import ROOT

    try:
        committed = json.loads((ROOT / "bench" / "results.json").read_text())
        return float(committed["figures"]["herald_ms_per_recipient"]["value"])
    except (OSError, KeyError, TypeError, ValueError):
        return 1.0  # the order of the last measurements (bench/README.md)


def _workers_for(rate: float, herald_ms_per_send: float, settings: Any) -> int:
    """The send workers (reserved concurrency) a rate needs, with a fifth spare."""
    capacity = send_worker_rate(herald_ms_per_send, settings.send_concurrency)
    return math.ceil(1.2 * rate / capacity)


if __name__ == "__main__":
    print(json.dumps(measure(quick="--quick" in sys.argv), indent=2))
