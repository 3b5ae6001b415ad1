"""The flow worker against moto: enrolments walked step by step through every node kind,
waits of seconds (SQS delays) and of hours (the due index and the tick's sweep), sends
through the send pipeline's pieces, contact changes in the step's claim, webhooks to a
local receiver, and the stats read back from the counters."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.feedback import DeliveryEvent
from chalicelib.domain.flows.nodes import AbSplit
from chalicelib.domain.flows.step import ExitReason, TriggerEvent, ab_variant
from chalicelib.domain.flows.timers import step_key
from chalicelib.local.poller import drain, poll_once
from chalicelib.pipeline.feedback import apply_event, feedback_batch
from chalicelib.store import contacts, enrolments
from chalicelib.store.counters import read_counts
from chalicelib.store.ledger import list_messages
from chalicelib.store.suppression import suppress
from chalicelib.store.timeline import list_timeline
from chalicelib.store.webhooks import callback_signing_secret
from tests.feedback_kit import receiver
from tests.flow_kit import enrol_contact, outcomes, put_flow
from tests.send_kit import (
    START,
    Shop,
    drain_delivering_twice,
    recipients_of,
    sent_mail,
)

pytestmark = pytest.mark.usefixtures("fast_sends")


def send_node(
    shop: Shop, node_id: str = "welcome", template_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": node_id,
        "kind": "send",
        "config": {
            "channel": "email",
            "template_ids": [template_id or shop.template_id],
            "sender_ids": [shop.sender_id],
        },
    }


def chain(*node_ids: str) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in itertools.pairwise(node_ids)]


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """The detail of every event Herald puts on its bus during the test."""
    events: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        events.extend(
            {"name": e["DetailType"], **json.loads(e["Detail"])} for e in params["Entries"]
        )

    hooks = client("events").meta.events
    hooks.register("provide-client-params.events.PutEvents", record)
    yield events
    hooks.unregister("provide-client-params.events.PutEvents", record)


def test_a_contact_walks_trigger_send_delay_condition_exit(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    template = shop.ok(
        "POST",
        "/v1/templates",
        {
            "name": "Order",
            "channel": "email",
            "subject": "Order {{ event.properties.order_id }} for {{ contact.first_name }}",
            "html": "<p>Thanks! <a href='{{ unsubscribe_url }}'>unsubscribe</a></p>",
        },
    )
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.event", "config": {"event_type": "order.placed"}},
                send_node(shop, template_id=template["id"]),
                {"id": "pause", "kind": "delay", "config": {"amount": 2, "unit": "seconds"}},
                {
                    "id": "vip",
                    "kind": "attribute_check",
                    "config": {
                        "rules": {
                            "condition": "AND",
                            "rules": [{"field": "lead_score", "operator": "gte", "value": 50}],
                        }
                    },
                },
                {"id": "tag-vip", "kind": "add_tag", "config": {"tag": "vip"}},
                {
                    "id": "plan",
                    "kind": "set_field",
                    "config": {"field": "attributes.plan", "value": "basic"},
                },
                {"id": "done", "kind": "exit"},
            ],
            "edges": [
                *chain("start", "welcome", "pause", "vip"),
                {"source": "vip", "target": "tag-vip", "branch": "yes"},
                {"source": "vip", "target": "plan", "branch": "no"},
                *chain("tag-vip", "done"),
                *chain("plan", "done"),
            ],
        },
    )
    [big] = shop.contacts(1, first_name="Ada", lead_score=60)
    [small] = shop.contacts(1, first_name="Bob", lead_score=10)
    for contact_id in (big, small):
        order = TriggerEvent(f"ev_{contact_id}", "order.placed", START, {"order_id": "A-17"})
        enrol_contact(shop.tenant.id, flow, contact_id, event=order)

    drain_delivering_twice(release_delays=False)

    mail = sent_mail()
    assert recipients_of(mail) == {"person0@example.com": 1, "person1@example.com": 1}
    subjects = sorted(email.message_from_string(m.raw_data)["Subject"] for m in mail)
    assert subjects == ["Order A-17 for Ada", "Order A-17 for Bob"]
    waiting = enrolments.read(shop.tenant.id, flow.id, big)
    assert waiting is not None and waiting.node_id == "pause" and waiting.wake_at is not None

    frozen.advance(timedelta(seconds=2))
    drain_delivering_twice()

    for contact_id in (big, small):
        ended = enrolments.read(shop.tenant.id, flow.id, contact_id)
        assert ended is not None and ended.exit_reason is ExitReason.EXIT_NODE
    assert contacts.get_contact(shop.tenant.id, big).tags == ["vip"]
    assert contacts.get_contact(shop.tenant.id, small).attributes == {"plan": "basic"}
    # moto releases delays in real time: on a busy machine the 2 s can pass while the
    # frozen clock stands still, and such an early wake waits on (one more "waiting").
    trace = outcomes(shop.tenant.id, flow.id, big)
    walked = [o for n, o in enumerate(trace) if n == 0 or o != trace[n - 1]]
    assert walked == [
        ("start", "entered"),
        ("welcome", "performed"),
        ("pause", "waiting"),
        ("pause", "resumed"),
        ("vip", "branched"),
        ("tag-vip", "performed"),
        ("done", "exited"),
    ]
    assert len(sent_mail()) == 2  # nothing sent twice although every message came twice
    stats = shop.ok("GET", f"/v1/campaigns/{flow.id}/stats")
    assert (stats["enrollments"], stats["messages"], stats["sent"]) == (2, 2, 2)
    assert stats["exited"] == {"exit_node": 2}
    assert stats["nodes"]["welcome"] == {
        "entered": 2,
        "completed": 2,
        "waiting": 0,
        "sent": 2,
        "conversions": 0,
        "skipped": {},
        "exited": {},
    }
    assert stats["nodes"]["pause"]["waiting"] == 0 and stats["nodes"]["pause"]["completed"] == 2
    assert stats["nodes"]["tag-vip"]["entered"] == 1 and stats["nodes"]["plan"]["entered"] == 1
    assert stats["nodes"]["done"]["exited"] == {"exit_node": 2}


def test_waiting_contacts_show_on_their_node(shop: Shop, frozen: clock.FrozenClock) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "pause", "kind": "delay", "config": {"amount": 3, "unit": "days"}},
            ],
            "edges": chain("start", "pause"),
        },
    )
    for contact_id in shop.contacts(3):
        enrol_contact(shop.tenant.id, flow, contact_id)
    drain()

    stats = shop.ok("GET", f"/v1/campaigns/{flow.id}/stats")
    assert stats["nodes"]["pause"]["waiting"] == 3
    assert stats["nodes"]["start"]["completed"] == 3


def test_a_delay_of_hours_waits_in_the_due_index_until_the_sweep(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "pause", "kind": "delay", "config": {"amount": 2, "unit": "hours"}},
                send_node(shop),
            ],
            "edges": chain("start", "pause", "welcome"),
        },
    )
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()
    herald.TICK_JOBS["flows.sweep"](clock.now())
    drain()
    assert sent_mail() == []  # nothing is due yet: the sweep found no entry

    frozen.advance(timedelta(hours=1, minutes=59))
    herald.TICK_JOBS["flows.sweep"](clock.now())  # the minute before the wake's
    drain()
    assert sent_mail() == []
    frozen.advance(timedelta(minutes=1))
    herald.TICK_JOBS["flows.sweep"](clock.now())  # the wake's minute
    drain()

    assert recipients_of(sent_mail()) == {"person0@example.com": 1}
    ended = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert ended is not None and ended.exit_reason is ExitReason.COMPLETED


def test_a_missed_tick_is_caught_up_and_a_minute_is_swept_once(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "pause", "kind": "delay", "config": {"amount": 20, "unit": "minutes"}},
                send_node(shop),
            ],
            "edges": chain("start", "pause", "welcome"),
        },
    )
    [contact_id] = shop.contacts(1)
    herald.TICK_JOBS["flows.sweep"](clock.now())
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()

    frozen.advance(timedelta(minutes=25))  # ticks at +1 … +24 never ran
    queries: list[str] = []

    def query(**_: Any) -> None:
        queries.append("Query")

    hooks = client("dynamodb").meta.events
    hooks.register("before-call.dynamodb.Query", query)
    try:
        herald.TICK_JOBS["flows.sweep"](clock.now())
    finally:
        hooks.unregister("before-call.dynamodb.Query", query)
    herald.TICK_JOBS["flows.sweep"](clock.now())  # the same minute again: nothing new
    drain_delivering_twice()

    # The catching-up tick probed no shard (each of the 32 sweeps reads its 25 minutes).
    assert queries == []
    assert recipients_of(sent_mail()) == {"person0@example.com": 1}


def test_wait_until_moves_on_at_the_local_time(shop: Shop, frozen: clock.FrozenClock) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "morning", "kind": "wait_until", "config": {"local_time": "09:00"}},
                send_node(shop),
            ],
            "edges": chain("start", "morning", "welcome"),
        },
    )
    [contact_id] = shop.contacts(1, timezone="Europe/Berlin")  # START is 14:30 in Berlin
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()
    waiting = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert waiting is not None and waiting.wake_at == START.replace(hour=7, minute=0) + timedelta(
        days=1
    )

    frozen.set(waiting.wake_at)
    herald.TICK_JOBS["flows.sweep"](clock.now())
    drain()

    assert recipients_of(sent_mail()) == {"person0@example.com": 1}


def test_contact_actions_land_once_and_announce_a_flow_change(
    shop: Shop, frozen: clock.FrozenClock, published: list[dict[str, Any]]
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {
                    "id": "plan",
                    "kind": "set_field",
                    "config": {"field": "attributes.plan", "value": "pro"},
                },
                {
                    "id": "name",
                    "kind": "set_field",
                    "config": {"field": "first_name", "value": "Grace"},
                },
                {"id": "tag", "kind": "add_tag", "config": {"tag": "onboarded"}},
                {"id": "untag", "kind": "remove_tag", "config": {"tag": "trial"}},
                {"id": "score", "kind": "update_score", "config": {"delta": 15}},
            ],
            "edges": chain("start", "plan", "name", "tag", "untag", "score"),
        },
    )
    [contact_id] = shop.contacts(1, tags=["trial", "beta"], lead_score=5)
    enrol_contact(shop.tenant.id, flow, contact_id)

    drain_delivering_twice()

    contact = contacts.get_contact(shop.tenant.id, contact_id)
    assert contact.attributes == {"plan": "pro"}
    assert contact.first_name == "Grace"
    assert contact.tags == ["beta", "onboarded"]
    assert contact.lead_score == 20  # added once, although the wake came twice
    saved = [e for e in published if e["name"] == "contact.saved"]
    assert [e["properties"]["changed"] for e in saved] == [
        ["attributes"],
        ["first_name"],
        ["tags"],
        ["tags"],
        ["lead_score"],
    ]
    assert {(e["properties"]["source"], e["properties"]["campaign_id"]) for e in saved} == {
        ("flow", flow.id)
    }


def test_a_refused_value_skips_the_node_with_a_reason(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {
                    "id": "zone",
                    "kind": "set_field",
                    "config": {"field": "timezone", "value": "Mars/Base"},
                },
            ],
            "edges": chain("start", "zone"),
        },
    )
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()

    trace = enrolments.read_trace(shop.tenant.id, flow.id, contact_id)
    assert [(e.node_id, e.outcome, e.reason) for e in trace][1] == (
        "zone",
        "skipped",
        "invalid_value",
    )
    assert contacts.get_contact(shop.tenant.id, contact_id).timezone is None


def test_an_ab_split_is_deterministic_and_counted_per_variant(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    split = {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "test", "kind": "ab_split", "config": split},
                send_node(shop, "mail-a"),
                send_node(shop, "mail-b"),
            ],
            "edges": [
                *chain("start", "test"),
                {"source": "test", "target": "mail-a", "branch": "a"},
                {"source": "test", "target": "mail-b", "branch": "b"},
            ],
        },
    )
    people = shop.contacts(8)
    for contact_id in people:
        enrol_contact(shop.tenant.id, flow, contact_id)
    drain_delivering_twice()

    config = AbSplit.model_validate(split)
    expected = dict.fromkeys(("a", "b"), 0)
    for contact_id in people:
        chosen = ab_variant(config, flow.id, "test", contact_id)
        expected[chosen] += 1
        trace = enrolments.read_trace(shop.tenant.id, flow.id, contact_id)
        assert (trace[1].node_id, trace[1].branch) == ("test", chosen)
        assert trace[2].node_id == f"mail-{chosen}"
    stats = shop.ok("GET", f"/v1/campaigns/{flow.id}/stats")
    taken = {k: n for k, n in expected.items() if n}
    assert {name: v["sent"] for name, v in stats["variants"]["test"].items()} == taken
    assert {name: v["entered"] for name, v in stats["variants"]["test"].items()} == taken
    assert len(sent_mail()) == 8


def test_a_webhook_node_posts_once_signed_with_the_step_key(
    shop: Shop, frozen: clock.FrozenClock, herald_env: Any
) -> None:
    herald_env(allow_loopback_callbacks="true")
    with receiver() as hook:
        flow = put_flow(
            shop.tenant.id,
            {
                "nodes": [
                    {"id": "start", "kind": "trigger.manual"},
                    {
                        "id": "crm",
                        "kind": "webhook",
                        "config": {"url": hook.url + "/flow", "body": {"stage": "welcomed"}},
                    },
                ],
                "edges": chain("start", "crm"),
            },
        )
        [contact_id] = shop.contacts(1)
        enrol_contact(shop.tenant.id, flow, contact_id)
        drain_delivering_twice()

    ids = {r.headers["webhook-id"] for r in hook.requests}
    assert ids == {step_key(flow.id, contact_id, "crm", 1)}
    posted = hook.requests[0]
    body = json.loads(posted.body)
    assert body["type"] == "flow.webhook"
    assert body["data"]["body"] == {"stage": "welcomed"}
    assert body["data"]["contact"]["id"] == contact_id
    secret = callback_signing_secret(shop.tenant.id)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{posted.headers['webhook-id']}.{posted.headers['webhook-timestamp']}.".encode()
    expected = base64.b64encode(hmac.new(key, signed + posted.body, hashlib.sha256).digest())
    assert posted.headers["webhook-signature"] == "v1," + expected.decode()


def test_feedback_on_a_flow_message_counts_for_its_campaign_and_variant(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    split = {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "test", "kind": "ab_split", "config": split},
                send_node(shop),
            ],
            "edges": [*chain("start", "test"), {"source": "test", "target": "welcome"}],
        },
    )
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()
    chosen = ab_variant(AbSplit.model_validate(split), flow.id, "test", contact_id)
    [record], _ = list_messages(shop.tenant.id, flow.id, ["welcome"])
    assert record.occurrence == "2"  # the visit the enrolment sent it on
    assert (record.model_extra or {})["variant"] == f"test.{chosen}"

    for kind in ("delivered", "opened", "opened"):  # the second open is a duplicate
        event = DeliveryEvent(
            kind=kind,
            channel="email",
            provider="ses",
            provider_event=kind,
            occurred_at=clock.now(),
            recipients=(record.address,),
            tenant_id=shop.tenant.id,
            campaign_id=flow.id,
            message_id=record.message_id,
        )
        with feedback_batch() as effects:
            apply_event(event, effects)

    stats = shop.ok("GET", f"/v1/campaigns/{flow.id}/stats")
    assert (stats["sent"], stats["delivered"], stats["opened"]) == (1, 1, 1)
    assert stats["variants"]["test"][chosen] == {
        "entered": 1,
        "sent": 1,
        "delivered": 1,
        "opened": 1,
        "clicked": 0,
        "conversions": 0,
    }


def test_a_flow_change_does_not_trigger_the_flow_again(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "saved", "kind": "trigger.event", "config": {"event_type": "contact.saved"}},
                {"id": "mark", "kind": "update_score", "config": {"delta": 1}},
            ],
            "edges": chain("saved", "mark"),
        },
        reentry={"mode": "after_exit"},  # re-entry allowed: only the source rule stops a loop
    )
    [contact_id] = shop.contacts(1, lead_score=0)
    first = TriggerEvent("ev_first", "contact.saved", START, {})
    enrol_contact(shop.tenant.id, flow, contact_id, event=first)

    drain()

    events, _ = list_timeline(shop.tenant.id, contact_id)
    assert [e.name for e in events] == ["contact.saved"]  # the flow's change reached the bus
    assert events[0].properties["source"] == "flow"
    assert contacts.get_contact(shop.tenant.id, contact_id).lead_score == 1
    assert read_counts(shop.tenant.id, flow.id)["enrollments"] == 1


def test_a_batch_of_wakes_reads_its_flow_enrolments_contacts_and_endpoints_once(
    shop: Shop, frozen: clock.FrozenClock, herald_env: Any
) -> None:
    herald_env(allow_loopback_callbacks="true")
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                send_node(shop),
                {"id": "later", "kind": "delay", "config": {"amount": 1, "unit": "days"}},
            ],
            "edges": chain("start", "welcome", "later"),
        },
    )
    reads: list[str] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "BatchGetItem":
            [request] = params["RequestItems"].values()
            kinds = Counter(k["pk"]["S"].split("#")[2] for k in request["Keys"])  # T#<tenant>#…
            if kinds["CAMPAIGNS"]:
                reads.append(f"read ahead: {dict(sorted(kinds.items()))}")
            return
        wire = json.dumps(params.get("Key") or params.get("ExpressionAttributeValues"))
        if model.name == "GetItem" and "#CAMPAIGNS" in wire and flow.id in wire:
            reads.append(f"flow {flow.id}")
        elif model.name == "GetItem" and ("#ENROL#" in wire or "#CONTACTS#" in wire):
            reads.append("an enrolment or a contact")
        elif model.name == "Query" and "#WEBHOOK" in wire:
            reads.append("webhook endpoints")

    with receiver() as hook:
        shop.ok("POST", "/v1/webhooks", {"url": hook.url + "/events"})
        contact_ids = shop.contacts(3)
        for contact_id in contact_ids:
            enrol_contact(shop.tenant.id, flow, contact_id)
        hooks = client("dynamodb").meta.events
        hooks.register("provide-client-params.dynamodb.*", record)
        try:
            assert poll_once("flows") == 3  # the three wakes arrive in one batch
        finally:
            hooks.unregister("provide-client-params.dynamodb.*", record)
        drain()

    # One BatchGetItem of the flow and the three wakes' enrolments and contacts, then the
    # endpoints once (the first send's message.submitted), nothing read again per wake.
    assert reads == [
        "read ahead: {'CAMPAIGNS': 1, 'CONTACTS': 3, 'ENROL': 3}",
        "webhook endpoints",
    ]
    assert len(sent_mail()) == 3
    posted = [json.loads(r.body) for r in hook.requests]
    submitted = [b["data"]["recipients"] for b in posted if b["type"] == "message.submitted"]
    assert sorted(submitted) == sorted(
        [contacts.get_contact(shop.tenant.id, c).email] for c in contact_ids
    )


def test_a_send_step_skips_a_suppressed_address_read_with_its_ledger_record(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [{"id": "start", "kind": "trigger.manual"}, send_node(shop)],
            "edges": chain("start", "welcome"),
        },
    )
    kept, bounced = shop.contacts(2)
    address = contacts.get_contact(shop.tenant.id, bounced).email
    assert address is not None
    suppress(shop.tenant.id, address.upper(), "bounced", clock.now())  # stored normalised
    for contact_id in (kept, bounced):
        enrol_contact(shop.tenant.id, flow, contact_id)
    drain_delivering_twice()

    assert recipients_of(sent_mail()) == {contacts.get_contact(shop.tenant.id, kept).email: 1}
    stats = shop.ok("GET", f"/v1/campaigns/{flow.id}/stats")
    assert stats["nodes"]["welcome"]["sent"] == 1
    assert stats["nodes"]["welcome"]["skipped"] == {"suppressed": 1}
