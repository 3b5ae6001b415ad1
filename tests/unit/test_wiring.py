"""app.py's tables are the whole wiring: every queue message kind and every tick job is in
them exactly once, on the queue it travels on, and the Lambda functions read them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import app as herald
from chalicelib.domain.unsubscribe import unsubscribe_hooks
from chalicelib.local.poller import invoke, sqs_event
from chalicelib.pipeline import feedback as provider_feedback
from chalicelib.pipeline import messages
from chalicelib.pipeline.dispatch import Consumer, UnknownMessage, decode
from chalicelib.settings import QUEUE_ROLES

SAMPLES: dict[type[messages.QueueMessage], messages.QueueMessage] = {
    messages.StartCampaign: messages.StartCampaign(tenant_id="t", campaign_id="c"),
    messages.PlanMessage: messages.PlanMessage(tenant_id="t", campaign_id="c", page=3),
    messages.BatchMessage: messages.BatchMessage(
        tenant_id="t", campaign_id="c", batch_id="000000-000", recipients=["a"]
    ),
    messages.IterationSettle: messages.IterationSettle(tenant_id="t", campaign_id="c", iteration=1),
    messages.IterationStart: messages.IterationStart(tenant_id="t", campaign_id="c", iteration=2),
    messages.ImportChunk: messages.ImportChunk(tenant_id="t", import_id="i", chunk=0),
    messages.ListPurge: messages.ListPurge(tenant_id="t", list_id="l"),
    messages.SegmentCheck: messages.SegmentCheck(tenant_id="t", contact_ids=["c"]),
    messages.SegmentSweep: messages.SegmentSweep(tenant_id="t", segment_ids=["s"], cursor="x"),
    messages.SegmentSweepTenants: messages.SegmentSweepTenants(cursor="x"),
    messages.EndFlow: messages.EndFlow(tenant_id="t", campaign_id="c"),
    messages.EnterAudience: messages.EnterAudience(
        tenant_id="t", campaign_id="c", node_id="n", fire_at=datetime(2027, 1, 4, tzinfo=UTC)
    ),
    messages.ChannelReceipt: messages.ChannelReceipt(tenant_id="t", event={"kind": "delivered"}),
    messages.SesEventsObject: messages.SesEventsObject(bucket="b", key="k", start=3),
    messages.CallbackFlush: messages.CallbackFlush(
        tenant_id="t", campaign_id="c", event="delivered", start=60, due=120
    ),
    messages.HttpDelivery: messages.HttpDelivery(
        tenant_id="t",
        target="webhook",
        target_id="w",
        event_type="message.delivered",
        delivery_id="d",
        body="{}",
    ),
    messages.FlowWake: messages.FlowWake(tenant_id="t", campaign_id="c", contact_id="k", visit=2),
    messages.FlowSweep: messages.FlowSweep(minutes=["202612061400"], shard=7),
}


def test_every_queue_has_a_consumer_and_nothing_else_does():
    assert sorted(herald.QUEUE_CONSUMERS) == sorted(QUEUE_ROLES)


def test_every_message_kind_has_exactly_one_handler_on_its_own_queue():
    assert set(SAMPLES) == set(messages.MESSAGE_TYPES)
    for model in messages.MESSAGE_TYPES:
        homes = [r for r, c in herald.QUEUE_CONSUMERS.items() if model.KIND in c.handlers]
        assert homes == [model.QUEUE], model.KIND


def test_the_table_holds_only_known_kinds_on_the_queues_they_reach():
    own = {(m.QUEUE, m.KIND) for m in messages.MESSAGE_TYPES}
    foreign = {(role, kind) for kind, roles in messages.ENVELOPES.items() for role in roles}
    listed = {(role, kind) for role, c in herald.QUEUE_CONSUMERS.items() for kind in c.handlers}
    assert listed == own | foreign


def test_kinds_are_unique():
    kinds = [m.KIND for m in messages.MESSAGE_TYPES] + list(messages.ENVELOPES)
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("model", messages.MESSAGE_TYPES, ids=lambda m: m.KIND)
def test_a_produced_message_decodes_to_its_handler_and_model(model):
    produced = SAMPLES[model].as_message()
    consumer = herald.QUEUE_CONSUMERS[model.QUEUE]

    handler, message = decode(model.QUEUE, consumer, json.dumps(produced))

    assert handler is consumer.handlers[model.KIND]
    assert model.model_validate(message) == SAMPLES[model]  # what the consumer reads back
    elsewhere = next(r for r in QUEUE_ROLES if r != model.QUEUE and r != "feedback")
    with pytest.raises(UnknownMessage):
        decode(elsewhere, herald.QUEUE_CONSUMERS[elsewhere], json.dumps(produced))


@pytest.mark.parametrize("role", QUEUE_ROLES)
def test_each_queue_function_in_app_reads_its_own_row(role, monkeypatch):
    """The Lambda function infra subscribes to a queue hands its batch to that queue's row."""
    heard: list[dict[str, object]] = []
    monkeypatch.setitem(herald.QUEUE_CONSUMERS, role, Consumer({"probe": heard.append}))
    received = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": '{"kind":"probe"}'}]

    response = invoke(role, sqs_event(role, received))

    assert response == {"batchItemFailures": []}
    assert heard == [{"kind": "probe"}]


def test_a_batch_reader_sees_the_batch_first_and_its_failure_fails_no_record(monkeypatch):
    """``Consumer.ahead`` (the flow worker's read-ahead) is only a saving: when it fails,
    every record is still handled, reading for itself."""
    order: list[tuple[str, object]] = []

    def ahead(batch):
        order.append(("ahead", [m["n"] for m in batch]))
        raise RuntimeError("read-ahead refused")

    def handle(message):
        order.append(("handled", message["n"]))

    monkeypatch.setitem(herald.QUEUE_CONSUMERS, "flows", Consumer({"probe": handle}, ahead=ahead))
    bodies = [
        json.dumps({"kind": "probe", "n": 1}),
        "not json",
        json.dumps({"kind": "probe", "n": 2}),
    ]
    received = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body}
        for i, body in enumerate(bodies)
    ]

    response = invoke("flows", sqs_event("flows", received))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}  # the undecodable one
    assert order == [("ahead", [1, 2]), ("handled", 1), ("handled", 2)]


def test_every_tick_job_is_listed_in_app():
    assert set(herald.TICK_JOBS) == {
        "campaigns.overdue",
        "campaigns.watchdog",
        "callback-windows",
        "segments.hourly",
        "flows.sweep",
    }
    assert all(callable(job) for job in herald.TICK_JOBS.values())


def test_the_unsubscribe_link_counts_on_the_campaign_because_app_wires_it():
    assert provider_feedback.count_unsubscribe in unsubscribe_hooks()


def test_importing_app_leaves_the_collector_on_with_the_cold_start_frozen():
    # A fresh interpreter, as a cold start: app.py turns the collector off while it
    # imports and must turn it back on, or every invocation after it would leak cycles.
    probe = "import gc, app; print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))"
    result = subprocess.run(
        [sys.executable, "-c", f"import json; {probe}"],
        cwd=Path(herald.__file__).parent,
        env={**os.environ, "HERALD_STAGE": "dev", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    enabled, frozen = json.loads(result.stdout.strip().splitlines()[-1])
    assert enabled is True
    assert frozen > 10_000  # the modules, classes and routes of the import
