"""The flow runtime's figures: AWS calls and cost per step, and how fast timers are swept.

    python -m bench.flows [--contacts 200] [--due 3125]

In-process moto (the broadcast benchmark's speed-ups included), the real handlers:

1. **Steps.** ``contacts`` contacts walk each of three flows, ``trigger.manual → add_tag
   → update_score → set_field → delay 1 day`` (plain), ``trigger.manual → send → delay``
   (sending) and ``trigger.manual → delay`` (bare), and the flows queue is drained by the
   local poller, as Lambda would (batches of 10). Every AWS call is counted by the same
   botocore meter as the broadcast (``bench.meter``). ``flow_step_aws_calls`` is the plain
   walk's calls per step (a wake's fixed calls included: the batch's read, the queue's
   receive and delete); ``flow_send_step_aws_calls`` is what the send node adds to a walk,
   the sending walk's calls less the bare walk's (its ledger and suppression read, the
   provider call, the ledger record; its claim is the walk's). The formula used until
   2026-12-06, the sending walk's calls less two plain steps, is kept in ``steps``
   (``send_step_calls_beyond_two_plain_steps``): it charged the send step 0.6 of a wake's
   fixed calls (five plain steps share a wake, three steps of the sending walk do), and
   any saving on plain steps raised it.
2. **The sweep.** ``due`` enrolments (3,125: a shard's share of 100,000 due in one minute)
   are filed in one minute of one shard; one ``flow.sweep`` handler queues a FlowWake for
   each (SendMessageBatch, 10 at a time). ``timer_sweep_per_second`` = entries ÷ the
   handler's CPU time (moto's included), one worker.
3. **Lateness (a model, stated in results):** a contact due at T is advanced by
   T + tick offset + its shard's sweep time + its wait in the flows queue. The tick fires
   at the start of the minute (EventBridge: ``tick_offset_s`` assumed), the 32 shards are
   swept in parallel (each 100,000 / 32 entries at the measured rate), and the flows
   Lambda drains the minute's wakes at ``flow_workers`` x the measured steps per second
   per worker: p99 ≈ offset + sweep + 0.99 x 100,000 / (workers x steps/s per worker),
   where a worker's steps/s is from the measured Herald CPU + in-region latency per step.

Writes ``bench/out/flows.json`` and prints the figures; ``python -m bench`` includes them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench import figures, prices
from bench.harness import ROOT, SENDER, SERVICES, _aws, verified_sender
from bench.meter import AwsMeter, Tally

OUT = ROOT / "bench" / "out" / "flows.json"
DUE_IN_ONE_MINUTE = 100_000
TICK_OFFSET_S = 2.0  # assumed: EventBridge fires a rate(1 minute) rule within seconds
FLOW_WORKERS = 50  # the flows Lambda's concurrency assumed for the lateness model
LAMBDA_MB = 512


def run(contacts: int = 200, due: int = 3_125) -> dict[str, Any]:
    with _aws():
        from chalicelib.domain.flows.timers import DUE_SHARDS
        from chalicelib.local.provision import provision
        from chalicelib.settings import get_settings
        from chalicelib.store import tenants

        settings = get_settings()
        provision()
        tenant, _, key = tenants.create_tenant("Bench flows")
        verified_sender(SENDER, tenant.id)
        meter = AwsMeter(settings.region).install(SERVICES)
        try:
            steps = _steps(meter, tenant.id, key, contacts)
        finally:
            meter.uninstall()
        sweep = _sweep(tenant.id, due)  # its figure is CPU time: the meter's hooks left out
    per_worker = 1 / (steps["herald_s_per_step"] + steps["latency_s_per_step"])
    sweep_s = (DUE_IN_ONE_MINUTE / DUE_SHARDS) / sweep["per_second"]
    drain_s = 0.99 * DUE_IN_ONE_MINUTE / (FLOW_WORKERS * per_worker)
    values = {
        "flow_step_aws_calls": steps["non_send_calls_per_step"],
        "flow_send_step_aws_calls": steps["send_step_calls"],
        "flow_overhead_usd_per_million_steps": steps["usd_per_million_steps"],
        "timer_sweep_per_second": sweep["per_second"],
        "timer_lateness_p99_s": round(TICK_OFFSET_S + sweep_s + drain_s, 1),
    }
    return {
        "figures": values,  # targets and methods: bench.figures.FIGURES
        "steps": steps,
        "sweep": sweep,
        "lateness_model": {
            "tick_offset_s": TICK_OFFSET_S,
            "shard_sweep_s": round(sweep_s, 2),
            "flow_workers": FLOW_WORKERS,
            "steps_per_second_per_worker": round(per_worker, 1),
            "drain_p99_s": round(drain_s, 2),
            "formula": "tick offset + (100,000 / 32) / sweep rate + "
            "0.99 x 100,000 / (workers x steps per second per worker)",
        },
    }


def _steps(meter: AwsMeter, tenant_id: str, key: str, contacts: int) -> dict[str, Any]:
    """Three flows walked (the module docstring): plain steps, a send, neither."""
    from bench.harness import TEMPLATE, _api

    with _api() as http:
        sender = http.post("/v1/senders", key, {"channel": "email", "from_email": SENDER})
        template = http.post("/v1/templates", key, TEMPLATE)
    send = {"channel": "email", "template_ids": [template["id"]], "sender_ids": [sender["id"]]}
    plain = _walk(
        meter,
        tenant_id,
        contacts,
        [
            {"id": "tag", "kind": "add_tag", "config": {"tag": "bench"}},
            {"id": "score", "kind": "update_score", "config": {"delta": 5}},
            {
                "id": "plan",
                "kind": "set_field",
                "config": {"field": "attributes.plan", "value": "pro"},
            },
        ],
    )
    sending = _walk(meter, tenant_id, contacts, [{"id": "mail", "kind": "send", "config": send}])
    bare = _walk(meter, tenant_id, contacts, [])
    per_plain_step = plain["calls"] / plain["steps"]
    send_step = (sending["calls"] - bare["calls"]) / contacts
    steps = plain["steps"] + sending["steps"]
    cpu = plain["herald_cpu_s"] + sending["herald_cpu_s"]
    usd = plain["usd"] + sending["usd"]
    latency = plain["latency_s"] + sending["latency_s"]
    return {
        "contacts": contacts,
        "plain_flow": plain,
        "send_flow": sending,
        "bare_flow": bare,
        "non_send_calls_per_step": round(per_plain_step, 3),
        "send_step_calls": round(send_step, 3),
        "send_step_calls_beyond_two_plain_steps": round(
            sending["calls"] / contacts - 2 * per_plain_step, 3
        ),
        "usd_per_million_steps": round(usd * 1_000_000 / steps, 2),
        "herald_s_per_step": round(cpu / steps, 6),
        "latency_s_per_step": round(latency / steps, 4),
    }


def _walk(
    meter: AwsMeter, tenant_id: str, contacts: int, actions: list[dict[str, Any]]
) -> dict[str, Any]:
    """Enrol ``contacts`` new contacts in ``trigger.manual → actions… → delay 1 day`` and
    drain the flows queue as Lambda would; what the wakes cost (SES's send excluded from
    the price, not from the calls)."""
    from chalicelib.domain import clock
    from chalicelib.domain.contacts import ContactFields, new_contact
    from chalicelib.domain.imports import ChunkPlan
    from chalicelib.local.poller import poll_once
    from chalicelib.services.enrolments import MAX_CONTACTS_PER_CALL, enrol_contacts
    from chalicelib.store.contacts import write_import_plan
    from chalicelib.store.counters import read_counts
    from tests.flow_kit import put_flow

    ids = ["start", *(a["id"] for a in actions), "later"]
    flow = put_flow(
        tenant_id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                *actions,
                {"id": "later", "kind": "delay", "config": {"amount": 1, "unit": "days"}},
            ],
            "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
        },
    )
    plan = ChunkPlan()
    for _ in range(contacts):
        made = new_contact(
            ContactFields(email=f"flow{len(plan.created)}-{flow.id}@example.com"),
            datetime(2026, 1, 1, tzinfo=UTC),
        )
        plan.created[made.id] = made
        plan.claimed[("email", str(made.email))] = made.id
    write_import_plan(tenant_id, plan)
    # Set-up, not measured: the API's bulk enrolment (up to MAX_CONTACTS_PER_CALL a call),
    # which queues the same first wakes as enrolling one by one, for fewer calls.
    contact_ids = list(plan.created)
    for start in range(0, contacts, MAX_CONTACTS_PER_CALL):
        chunk = contact_ids[start : start + MAX_CONTACTS_PER_CALL]
        answers = enrol_contacts(tenant_id, flow.id, chunk, clock.now())
        assert all(a.outcome == "enrolled" for a in answers), answers
    before, cpu = meter.calls_so_far(), time.process_time()
    tally_before = _copy(meter.tally("herald"))
    with meter.attributed("herald"):
        while poll_once("flows", redeliver_failures=True):
            pass
    cpu_seconds = time.process_time() - cpu
    calls = meter.calls_so_far() - before
    tally = _minus(meter.tally("herald"), tally_before)
    counts = read_counts(tenant_id, flow.id)
    steps = sum(counts.get(f"node.{n}.completed", 0) for n in ids[:-1])
    steps += counts.get("node.later.waiting", 0)  # filing the wait is a step too
    assert steps == contacts * len(ids), counts
    by_operation: Counter[str] = Counter()
    for kind, n in calls.items():
        by_operation[kind.split("/", 1)[0]] += n
    latency = sum(
        n * figures.LATENCY_SECONDS.get(op.split(".")[0], 0.01) for op, n in by_operation.items()
    )
    herald_cpu = max(0.0, cpu_seconds - meter.cpu_seconds(calls))
    return {
        "steps": steps,
        "sent": counts.get("sent", 0),
        "calls": sum(by_operation.values()),
        "calls_by_operation": dict(by_operation),
        "herald_cpu_s": round(herald_cpu, 3),
        "latency_s": round(latency, 3),
        "usd": _usd(tally, herald_cpu, latency, by_operation),
    }


def _copy(tally: Tally) -> Tally:
    copied = Tally()
    copied.add(tally)
    return copied


def _minus(after: Tally, before: Tally) -> Tally:
    diff = Tally()
    diff.billed_requests = after.billed_requests - before.billed_requests
    diff.write_units = after.write_units - before.write_units
    diff.index_write_units = after.index_write_units - before.index_write_units
    diff.read_units = after.read_units - before.read_units
    return diff


def _usd(tally: Tally, cpu_seconds: float, latency: float, by_operation: Counter[str]) -> float:
    """The steps' AWS bill, SES excluded, at list prices (bench/prices.py)."""
    sqs = sum(n for op, n in tally.billed_requests.items() if op.startswith("sqs."))
    events = sum(n for op, n in tally.billed_requests.items() if op.startswith("events."))
    invocations = by_operation.get("sqs.ReceiveMessage", 0)
    gb_seconds = (cpu_seconds + latency) * LAMBDA_MB / 1024
    return (
        prices.usd("dynamodb_write_unit", tally.write_units + tally.index_write_units)
        + prices.usd("dynamodb_read_unit", tally.read_units)
        + prices.usd("sqs_request", sqs)
        + prices.usd("eventbridge_event", events)
        + prices.usd("lambda_request", invocations)
        + prices.usd("lambda_gb_second", gb_seconds)
    )


def _sweep(tenant_id: str, due: int) -> dict[str, Any]:
    from chalicelib.aws import client
    from chalicelib.domain.flows.step import Enrolment
    from chalicelib.domain.flows.timers import FileDue, minute_bucket
    from chalicelib.pipeline.flows.timers import sweep_shard
    from chalicelib.pipeline.messages import FlowSweep
    from chalicelib.pipeline.queues import queue_url
    from chalicelib.store import enrolments
    from chalicelib.store.table import system_table

    at = datetime(2026, 6, 1, 9, 0, 30, tzinfo=UTC)
    minute = minute_bucket(at)
    for n in range(due):
        waiting = Enrolment("cmp_bench", f"c_{n:06d}", "later", 3, at, at, wake_at=at)
        enrolments.file_due(tenant_id, waiting, FileDue(minute, 0))
    assert sum(1 for _ in system_table().query_all(f"FLOWDUE#{minute}#00")) == due
    message = FlowSweep(minutes=[minute], shard=0).as_message()
    started, cpu = time.perf_counter(), time.process_time()
    sweep_shard(message)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    queued = int(
        client("sqs").get_queue_attributes(
            QueueUrl=queue_url("flows"), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    ) + int(
        client("sqs").get_queue_attributes(
            QueueUrl=queue_url("flows"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    assert queued >= due, f"{queued} of {due} queued"
    # CPU time, not wall time: on a shared machine the wall clock also measures others'
    # work; in-process moto's CPU is in it (the calls are network waits in AWS).
    return {
        "entries": due,
        "wall_seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "per_second": round(due / cpu_seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--due", type=int, default=3_125)
    args = parser.parse_args(argv)
    results = run(args.contacts, args.due)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results["figures"].items():
        figure = figures.FIGURES[key].judged(value)
        print(f"{key:40} {value!s:>10}  target {figure['target']}  met {figure['met']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
