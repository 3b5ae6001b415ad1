"""Events in and flows: event_id dedupe, trigger.event enrolment, goals, wait_for_event
wakes, and the exits from outside (deletion, bounce, complaint, unsubscribe).

Events take their real road: ``POST /v1/events`` (or a PutEvents of another producer)
→ the bus → the triggers queue → ``receive_bus_event`` → the flow entry reactor.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.delivery import message_id
from chalicelib.domain.feedback import DeliveryEvent
from chalicelib.domain.flows.step import ExitReason
from chalicelib.domain.unsubscribe import UnsubscribeClaim
from chalicelib.local.poller import drain, invoke, sqs_event
from chalicelib.pipeline.feedback import apply_event, feedback_batch
from chalicelib.pipeline.queues import queue_url
from chalicelib.settings import get_settings
from chalicelib.store import enrolments
from chalicelib.store.counters import read_counts
from chalicelib.store.secrets import unsubscribe_token
from tests.conftest import Tenant, body_of
from tests.flow_kit import put_flow
from tests.integration.test_enrolments import contact, hook, queued, step, webhooks_queued

ORDERS = {
    "nodes": [
        {
            "id": "order",
            "kind": "trigger.event",
            "config": {
                "event_type": "order.placed",
                "where": {"rules": [{"field": "properties.total", "operator": "gt", "value": 50}]},
                "dedupe_key": "order_id",
            },
        },
        {"id": "wait", "kind": "delay", "config": {"amount": 3, "unit": "days"}},
    ],
    "edges": [{"source": "order", "target": "wait"}],
}
WAITING = {
    "nodes": [
        {"id": "start", "kind": "trigger.manual"},
        {
            "id": "await",
            "kind": "wait_for_event",
            "config": {"event_type": "purchase", "timeout": {"amount": 2, "unit": "days"}},
        },
        {"id": "thanks", "kind": "add_tag", "config": {"tag": "buyer"}},
        {"id": "nudge", "kind": "add_tag", "config": {"tag": "nudged"}},
    ],
    "edges": [
        {"source": "start", "target": "await"},
        {"source": "await", "target": "thanks", "branch": "event"},
        {"source": "await", "target": "nudge", "branch": "timeout"},
    ],
}


def post_events(tenant: Tenant, *events: dict[str, Any]) -> dict[str, Any]:
    response = tenant.call("POST", "/v1/events", {"events": list(events)})
    assert response.status_code == 202, response.body
    return body_of(response)  # type: ignore[no-any-return]


def order(contact_id: str, order_id: str, total: float, **fields: Any) -> dict[str, Any]:
    return {
        "name": "order.placed",
        "contact": {"id": contact_id},
        "properties": {"order_id": order_id, "total": total},
        **fields,
    }


def wakes() -> list[tuple[str, int, str | None]]:
    return [
        (w["contact_id"], w["visit"], (w.get("event") or {}).get("name"))
        for w in queued()
        if w["kind"] == "flow.wake"
    ]


# -- event_id ------------------------------------------------------------------------
def test_a_repeated_event_id_is_a_duplicate_and_is_not_processed(tenant: Tenant) -> None:
    ann = contact(tenant.id, "ann@example.com")
    first = post_events(tenant, {"name": "signup", "contact": {"id": ann}, "event_id": "crm-1"})
    again = post_events(
        tenant,
        {"name": "signup", "contact": {"id": ann}, "event_id": "crm-1"},
        {"name": "signup", "contact": {"id": ann}, "event_id": "crm-2"},
        {"name": "signup", "contact": {"id": ann}, "event_id": "crm-2"},
    )
    drain(["triggers"])

    first_id = first["accepted"][0]["id"]
    assert first["accepted"][0]["duplicate"] is False
    assert [(a["index"], a["duplicate"]) for a in again["accepted"]] == [
        (0, True),
        (1, False),
        (2, True),
    ]
    assert again["accepted"][0]["id"] == first_id
    assert again["accepted"][2]["id"] == again["accepted"][1]["id"]
    timeline = body_of(tenant.call("GET", f"/v1/contacts/{ann}/events"))["items"]
    assert sorted(e["id"] for e in timeline) == sorted([first_id, again["accepted"][1]["id"]])
    too_long = tenant.call(
        "POST",
        "/v1/events",
        {"events": [{"name": "x", "contact": {"id": ann}, "event_id": "e" * 101}]},
    )
    assert too_long.status_code == 422
    assert body_of(too_long)["error"]["field"] == "events.0.event_id"


def test_the_bus_path_drops_a_second_event_with_the_same_id_but_reprocesses_a_redelivery(
    tenant: Tenant,
) -> None:
    ann = contact(tenant.id, "ann@example.com")
    drain(["triggers"])

    def put(event_id: str) -> None:
        detail = {"tenant_id": tenant.id, "contact": {"id": ann}, "event_id": event_id}
        entry = {
            "EventBusName": get_settings().event_bus_name,
            "Source": "shop.example",
            "DetailType": "purchase",
            "Detail": json.dumps(detail),
        }
        client("events").put_events(Entries=[entry])

    put("order-9")
    put("order-9")
    sqs, url = client("sqs"), queue_url("triggers")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    for copy in ("a", "b"):  # each delivered twice, as SQS may
        fresh = [{**m, "MessageId": f"{m['MessageId']}-{copy}"} for m in messages]
        assert invoke("triggers", sqs_event("triggers", fresh)).get("batchItemFailures") == []

    timeline = body_of(tenant.call("GET", f"/v1/contacts/{ann}/events"))["items"]
    assert [e["id"] for e in timeline] == ["order-9"]


# -- trigger.event -------------------------------------------------------------------
def test_an_event_enrols_only_where_its_trigger_fires_and_a_business_event_once(
    tenant: Tenant,
) -> None:
    hook(tenant, "enrollment.entered")
    flow = put_flow(tenant.id, ORDERS, reentry={"mode": "after_exit"})
    ann, bob = contact(tenant.id, "ann@example.com"), contact(tenant.id, "bob@example.com")
    drain(["triggers"])
    queued()
    queued("callbacks")

    small = post_events(tenant, order(ann, "o-1", 20))
    drain(["triggers"])
    assert enrolments.read(tenant.id, flow.id, ann) is None
    assert wakes() == []

    big = post_events(tenant, order(ann, "o-2", 80))["accepted"][0]["id"]
    drain(["triggers"])
    entered = enrolments.read(tenant.id, flow.id, ann)
    assert entered is not None and entered.trigger_event is not None
    assert (entered.trigger_event.id, entered.trigger_event.properties["order_id"]) == (big, "o-2")
    assert wakes() == [(ann, 0, "order.placed")]
    sent = webhooks_queued()
    assert [json.loads(d["body"])["data"]["event_id"] for d in sent] == [big]

    # ann leaves; the same order arrives again as another event: never a second enrolment
    from chalicelib.services import enrolments as service

    service.remove_enrolment(tenant.id, flow.id, ann, clock.now())
    post_events(tenant, order(ann, "o-2", 80))
    drain(["triggers"])
    assert enrolments.read(tenant.id, flow.id, ann).exit_reason == ExitReason.REMOVED  # type: ignore[union-attr]
    post_events(tenant, order(ann, "o-3", 90))  # a new order: re-entry after exit
    drain(["triggers"])
    assert enrolments.read(tenant.id, flow.id, ann).exited is False  # type: ignore[union-attr]
    assert enrolments.read(tenant.id, flow.id, bob) is None
    assert small["accepted"][0]["duplicate"] is False


def test_a_redelivered_event_never_enrols_twice_even_after_an_exit(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, ORDERS, reentry={"mode": "after_exit"})
    ann = contact(tenant.id, "ann@example.com")
    drain(["triggers"])
    post_events(
        tenant, {"name": "order.placed", "contact": {"id": ann}, "properties": {"total": 99}}
    )
    sqs, url = client("sqs"), queue_url("triggers")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    invoke("triggers", sqs_event("triggers", messages))
    from chalicelib.services import enrolments as service

    service.remove_enrolment(tenant.id, flow.id, ann, clock.now())
    redelivered = [{**m, "MessageId": m["MessageId"] + "-again"} for m in messages]
    invoke("triggers", sqs_event("triggers", redelivered))

    after = enrolments.read(tenant.id, flow.id, ann)
    assert after is not None and after.exit_reason == ExitReason.REMOVED


def test_a_flows_own_contact_change_never_triggers_that_flow(tenant: Tenant) -> None:
    saved = {
        "nodes": [
            {"id": "changed", "kind": "trigger.event", "config": {"event_type": "contact.saved"}},
            {"id": "tag", "kind": "add_tag", "config": {"tag": "seen"}},
        ],
        "edges": [{"source": "changed", "target": "tag"}],
    }
    own, other = put_flow(tenant.id, saved), put_flow(tenant.id, saved)
    ann = contact(tenant.id, "ann@example.com")  # (made in the store: no contact.saved)
    props = {"source": "flow", "campaign_id": own.id, "changed": ["tags"]}

    post_events(tenant, {"name": "contact.saved", "contact": {"id": ann}, "properties": props})
    drain(["triggers"])

    assert enrolments.read(tenant.id, own.id, ann) is None
    assert enrolments.read(tenant.id, other.id, ann) is not None


# -- goals and waits -----------------------------------------------------------------
def test_a_goal_event_exits_with_goal_and_counts_a_conversion(tenant: Tenant) -> None:
    hook(tenant, "enrollment.exited")
    flow = put_flow(tenant.id, WAITING, exit_on=["purchase"])
    ann = contact(tenant.id, "ann@example.com")
    drain(["triggers"])
    from chalicelib.services import enrolments as service

    service.enrol_contacts(tenant.id, flow.id, [ann], clock.now())
    step(tenant.id, flow.id, ann, clock.now())  # on to the wait
    queued()
    queued("callbacks")

    post_events(tenant, {"name": "purchase", "contact": {"id": ann}})
    drain(["triggers"])

    after = enrolments.read(tenant.id, flow.id, ann)
    assert after is not None and after.exit_reason == ExitReason.GOAL
    counts = read_counts(tenant.id, flow.id)
    assert (counts["conversions"], counts["node.await.conversions"]) == (1, 1)
    assert wakes() == []  # a goal wins over the wait it stood on
    exits = [json.loads(d["body"])["data"] for d in webhooks_queued()]
    assert [(e["reason"], e["node_id"]) for e in exits] == [("goal", "await")]


def test_an_awaited_event_queues_a_wake_carrying_the_event(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, WAITING)
    ann, bob = contact(tenant.id, "ann@example.com"), contact(tenant.id, "bob@example.com")
    drain(["triggers"])
    from chalicelib.services import enrolments as service

    service.enrol_contacts(tenant.id, flow.id, [ann, bob], clock.now())
    for person in (ann, bob):
        step(tenant.id, flow.id, person, clock.now())
        step(tenant.id, flow.id, person, clock.now())  # waiting for purchase
    queued()

    posted = post_events(
        tenant, {"name": "purchase", "contact": {"id": ann}, "properties": {"sku": "A"}}
    )
    post_events(tenant, {"name": "browse", "contact": {"id": bob}})
    drain(["triggers"])

    messages = [m for m in queued() if m["kind"] == "flow.wake"]
    assert [(m["contact_id"], m["visit"]) for m in messages] == [(ann, 2)]
    assert messages[0]["event"]["id"] == posted["accepted"][0]["id"]
    assert messages[0]["event"]["properties"] == {"sku": "A"}


# -- exits from outside --------------------------------------------------------------
def enrolled_and_stepped(tenant: Tenant, flow_id: str, email: str) -> str:
    from chalicelib.services import enrolments as service

    person = contact(tenant.id, email)
    service.enrol_contacts(tenant.id, flow_id, [person], clock.now())
    step(tenant.id, flow_id, person, clock.now())
    return person


def test_deleting_a_contact_exits_its_flows_and_purges_their_traces(tenant: Tenant) -> None:
    hook(tenant, "enrollment.exited")
    first, second = put_flow(tenant.id, WAITING), put_flow(tenant.id, WAITING)
    ann = enrolled_and_stepped(tenant, first.id, "ann@example.com")
    from chalicelib.services import enrolments as service

    service.enrol_contacts(tenant.id, second.id, [ann], clock.now())
    bob = enrolled_and_stepped(tenant, first.id, "bob@example.com")
    queued("callbacks")

    assert tenant.call("DELETE", f"/v1/contacts/{ann}").status_code == 204

    for flow in (first, second):
        assert enrolments.read(tenant.id, flow.id, ann) is None
        assert enrolments.read_trace(tenant.id, flow.id, ann) == []
    assert enrolments.enrolments_of_contact(tenant.id, ann) == []
    assert len(enrolments.read_trace(tenant.id, first.id, bob)) == 1
    exits = [json.loads(d["body"])["data"] for d in webhooks_queued()]
    assert sorted((e["campaign_id"], e["reason"]) for e in exits) == sorted(
        [(first.id, "deleted"), (second.id, "deleted")]
    )
    gone = tenant.call("GET", f"/v1/campaigns/{first.id}/enrollments/{ann}")
    assert gone.status_code == 404


def test_a_hard_bounce_and_a_complaint_exit_the_contacts_flows(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, WAITING)
    ann = enrolled_and_stepped(tenant, flow.id, "ann@example.com")
    bob = enrolled_and_stepped(tenant, flow.id, "bob@example.com")
    long_ago = clock.now() - timedelta(days=1)  # no ledger record: an old event is dropped

    for person, kind in ((ann, "bounced"), (bob, "complained")):
        event = DeliveryEvent(
            kind=kind,
            channel="email",
            provider="ses",
            provider_event=kind,
            occurred_at=long_ago,
            recipients=(f"{'ann' if person == ann else 'bob'}@example.com",),
            suppress=True,
            tenant_id=tenant.id,
            campaign_id=flow.id,
            message_id=message_id("await", person, "email"),
        )
        with feedback_batch() as effects:
            apply_event(event, effects)
            apply_event(event, effects)  # a duplicate changes nothing

    assert enrolments.read(tenant.id, flow.id, ann).exit_reason == ExitReason.BOUNCED  # type: ignore[union-attr]
    assert enrolments.read(tenant.id, flow.id, bob).exit_reason == ExitReason.COMPLAINED  # type: ignore[union-attr]
    assert read_counts(tenant.id, flow.id)["exited.bounced"] == 1


def test_an_unsubscribe_exits_the_contacts_flows(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, WAITING)
    ann = enrolled_and_stepped(tenant, flow.id, "ann@example.com")
    bob = enrolled_and_stepped(tenant, flow.id, "bob@example.com")

    token = unsubscribe_token(UnsubscribeClaim(tenant.id, ann, "email"))
    assert tenant.call("POST", f"/u/{token}", "List-Unsubscribe=One-Click").status_code == 200
    patched = tenant.call("PATCH", f"/v1/contacts/{bob}", {"status": "complained"})
    assert patched.status_code == 200, patched.body

    assert enrolments.read(tenant.id, flow.id, ann).exit_reason == ExitReason.UNSUBSCRIBED  # type: ignore[union-attr]
    assert enrolments.read(tenant.id, flow.id, bob).exit_reason == ExitReason.COMPLAINED  # type: ignore[union-attr]
    trace = enrolments.read_trace(tenant.id, flow.id, ann)
    assert (trace[-1].outcome, trace[-1].reason) == ("exited", "unsubscribed")
