"""Entering and leaving flows: the enrolment service and API against moto.

The flow worker is another stream's: these tests assert what enrolment leaves behind
(the enrolment items, the FlowWake messages on the flows queue, the webhooks queued), and
drive the steps a worker would take with the store's claim where a test needs one.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain.contacts import ContactFields
from chalicelib.domain.flows.step import Enrolment, ExitReason, StepContext, take_step
from chalicelib.pipeline.queues import queue_url
from chalicelib.services import enrolments as service
from chalicelib.store import contacts as contact_store
from chalicelib.store import enrolments
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.counters import read_counts
from tests.conftest import Tenant, body_of
from tests.flow_kit import put_flow

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
MANUAL = {
    "nodes": [
        {"id": "start", "kind": "trigger.manual"},
        {"id": "tag", "kind": "add_tag", "config": {"tag": "welcomed"}},
        {"id": "wait", "kind": "delay", "config": {"amount": 2, "unit": "days"}},
    ],
    "edges": [{"source": "start", "target": "tag"}, {"source": "tag", "target": "wait"}],
}


def queued(role: str = "flows") -> list[dict[str, Any]]:
    """Every message on a queue now (taken off it)."""
    sqs, url = client("sqs"), queue_url(role)  # type: ignore[arg-type]
    bodies: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def webhooks_queued() -> list[dict[str, Any]]:
    return [m for m in queued("callbacks") if m["kind"] == "http.deliver"]


def contact(tenant_id: str, email: str) -> str:
    return contact_store.create_contact(tenant_id, ContactFields(email=email)).id


def hook(tenant: Tenant, *event_types: str) -> None:
    response = tenant.call(
        "POST",
        "/v1/webhooks",
        {"url": "https://hooks.example.com/flows", "event_types": list(event_types)},
    )
    assert response.status_code == 201, response.body


def enrol_api(tenant: Tenant, campaign_id: str, contact_ids: list[str]) -> Any:
    return tenant.call(
        "POST", f"/v1/campaigns/{campaign_id}/enrollments", {"contact_ids": contact_ids}
    )


def step(tenant_id: str, campaign_id: str, contact_id: str, now: datetime) -> Enrolment:
    """Take one step as the worker would (the claim included)."""
    campaign = get_campaign(tenant_id, campaign_id)
    current = enrolments.read(tenant_id, campaign_id, contact_id)
    assert current is not None and campaign.workflow is not None
    person = contact_store.get_contact(tenant_id, contact_id)
    taken = take_step(
        campaign.workflow, campaign.flow_settings, current, StepContext(now=now, contact=person)
    )
    assert enrolments.commit_step(tenant_id, taken, now)
    return taken.enrolment


# -- enrolling by hand ---------------------------------------------------------------
def test_every_contact_gets_its_answer_in_input_order(tenant: Tenant, other_tenant: Tenant) -> None:
    hook(tenant, "enrollment.entered")
    flow = put_flow(tenant.id, MANUAL)
    ann, bob = contact(tenant.id, "ann@example.com"), contact(tenant.id, "bob@example.com")
    theirs = contact(other_tenant.id, "eve@example.com")
    queued()

    response = enrol_api(tenant, flow.id, [bob, "c_unknown", theirs, ann, bob])

    assert response.status_code == 200, response.body
    assert body_of(response)["items"] == [
        {"contact_id": bob, "outcome": "enrolled", "reason": None},
        {"contact_id": "c_unknown", "outcome": "error", "reason": "not_found"},
        {"contact_id": theirs, "outcome": "error", "reason": "not_found"},
        {"contact_id": ann, "outcome": "enrolled", "reason": None},
        {"contact_id": bob, "outcome": "already_enrolled", "reason": None},
    ]
    wakes = queued()
    assert sorted((w["kind"], w["contact_id"], w["visit"]) for w in wakes) == sorted(
        [("flow.wake", bob, 0), ("flow.wake", ann, 0)]
    )
    assert all(w["campaign_id"] == flow.id and w["tenant_id"] == tenant.id for w in wakes)
    assert enrolments.read(other_tenant.id, flow.id, theirs) is None
    entered = enrolments.read(tenant.id, flow.id, ann)
    assert entered is not None and entered.node_id == "start" and entered.visit == 0
    sent = webhooks_queued()
    assert sorted(json.loads(d["body"])["data"]["contact_id"] for d in sent) == sorted([ann, bob])
    assert {d["event_type"] for d in sent} == {"enrollment.entered"}
    assert read_counts(tenant.id, flow.id)["enrollments"] == 2

    again = body_of(enrol_api(tenant, flow.id, [ann]))["items"]
    assert again == [{"contact_id": ann, "outcome": "already_enrolled", "reason": None}]
    # never stepped: woken again (a retry after a lost wake); the worker's claim dedupes
    assert [(w["contact_id"], w["visit"]) for w in queued()] == [(ann, 0)]


def test_a_paused_or_draft_flow_holds_enrolments_until_wake_held(tenant: Tenant) -> None:
    paused = put_flow(tenant.id, MANUAL, status="paused")
    ann = contact(tenant.id, "ann@example.com")
    queued()

    answers = service.enrol_contacts(tenant.id, paused.id, [ann], NOW)

    assert answers == [service.EnrolmentAnswer(ann, "enrolled")]
    assert queued() == []
    assert service.wake_held(tenant.id, paused.id, NOW) == 1
    assert [(w["contact_id"], w["visit"]) for w in queued()] == [(ann, 0)]
    draft = put_flow(tenant.id, MANUAL, status="draft")
    assert service.enrol_contacts(tenant.id, draft.id, [ann], NOW)[0].outcome == "enrolled"
    assert queued() == []


def test_a_finished_or_not_yet_started_flow_refuses_per_contact(tenant: Tenant) -> None:
    ann = contact(tenant.id, "ann@example.com")
    done = put_flow(tenant.id, MANUAL, status="completed")
    later = put_flow(tenant.id, MANUAL, starts_at=NOW + timedelta(days=1))
    over = put_flow(tenant.id, MANUAL, ends_at=NOW - timedelta(seconds=1))

    assert service.enrol_contacts(tenant.id, done.id, [ann], NOW)[0].reason == "campaign_not_live"
    assert service.enrol_contacts(tenant.id, later.id, [ann], NOW)[0].reason == "before_start"
    assert service.enrol_contacts(tenant.id, over.id, [ann], NOW)[0].reason == "ended"
    assert enrolments.read(tenant.id, later.id, ann) is None


def test_enrolment_api_refusals(tenant: Tenant, other_tenant: Tenant) -> None:
    flow = put_flow(tenant.id, MANUAL)
    broadcast = body_of(tenant.call("POST", "/v1/campaigns", {"name": "News", "channel": "email"}))
    ann = contact(tenant.id, "ann@example.com")

    theirs = enrol_api(other_tenant, flow.id, [ann])
    assert theirs.status_code == 404, theirs.body
    assert body_of(theirs)["error"]["field"] == "campaign_id"
    not_flow = enrol_api(tenant, broadcast["id"], [ann])
    assert not_flow.status_code == 409 and body_of(not_flow)["error"]["field"] == "campaign_id"
    too_many = enrol_api(tenant, flow.id, [f"c_{n}" for n in range(1001)])
    assert too_many.status_code == 422 and body_of(too_many)["error"]["field"] == "contact_ids"
    empty = enrol_api(tenant, flow.id, [])
    assert empty.status_code == 422
    assert other_tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments/{ann}").status_code == 404
    assert (
        other_tenant.call("DELETE", f"/v1/campaigns/{flow.id}/enrollments/{ann}").status_code == 404
    )
    listing = other_tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments?status=active")
    assert listing.status_code == 404
    bad_status = tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments?status=gone")
    assert bad_status.status_code == 422
    assert body_of(bad_status)["error"]["field"] == "query.status"


# -- re-entry ------------------------------------------------------------------------
def exit_now(tenant_id: str, campaign_id: str, contact_id: str, at: datetime) -> None:
    """End the contact's enrolment (by hand) so that re-entry is the question."""
    service.remove_enrolment(tenant_id, campaign_id, contact_id, at)


@pytest.mark.parametrize(
    ("reentry", "later", "expected"),
    [
        ({"mode": "once"}, timedelta(days=400), "reentry_once"),
        ({"mode": "after_exit"}, timedelta(seconds=1), "enrolled"),
        (
            {"mode": "every", "interval": {"amount": 30, "unit": "days"}},
            timedelta(days=29),
            "reentry_interval",
        ),
        (
            {"mode": "every", "interval": {"amount": 30, "unit": "days"}},
            timedelta(days=30),
            "enrolled",
        ),
    ],
)
def test_reentry_follows_the_flows_policy(
    tenant: Tenant, reentry: dict[str, Any], later: timedelta, expected: str
) -> None:
    flow = put_flow(tenant.id, MANUAL, reentry=reentry)
    ann = contact(tenant.id, "ann@example.com")
    assert service.enrol_contacts(tenant.id, flow.id, [ann], NOW)[0].outcome == "enrolled"
    assert service.enrol_contacts(tenant.id, flow.id, [ann], NOW)[0].outcome == "already_enrolled"
    exit_now(tenant.id, flow.id, ann, NOW + timedelta(seconds=1))

    answer = service.enrol_contacts(tenant.id, flow.id, [ann], NOW + later)[0]

    assert (answer.reason or answer.outcome) == expected
    current = enrolments.read(tenant.id, flow.id, ann)
    assert current is not None and current.exited == (expected != "enrolled")


# -- listing, trace, removal ---------------------------------------------------------
def test_listing_by_status_the_trace_and_removal(tenant: Tenant) -> None:
    hook(tenant, "enrollment.exited")
    flow = put_flow(tenant.id, MANUAL)
    people = [contact(tenant.id, f"p{n}@example.com") for n in range(5)]
    service.enrol_contacts(tenant.id, flow.id, people, NOW)
    for person in people[:3]:  # trigger → tag → delay: three steps, now waiting
        for minute in range(3):
            step(tenant.id, flow.id, person, NOW + timedelta(minutes=minute))
    queued("callbacks")

    def listed(status: str, limit: int = 2) -> list[str]:
        found, cursor = [], None
        while True:
            query = f"limit={limit}" + (f"&status={status}" if status else "")
            query += f"&cursor={cursor}" if cursor else ""
            response = tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments?{query}")
            assert response.status_code == 200, response.body
            page = body_of(response)
            found += [e["contact_id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return sorted(found)

    assert listed("waiting") == sorted(people[:3])
    assert listed("active") == sorted(people[3:])
    assert listed("exited") == []
    assert listed("", limit=3) == sorted(people)

    detail = tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments/{people[0]}")
    assert detail.status_code == 200, detail.body
    shown = body_of(detail)
    assert shown["status"] == "waiting" and shown["node_id"] == "wait"
    assert [(t["node_id"], t["outcome"]) for t in shown["trace"]] == [
        ("start", "entered"),
        ("tag", "performed"),
        ("wait", "waiting"),
    ]
    assert shown["trace"][2]["until"].startswith("2026-12-09T10:02")

    removed = tenant.call("DELETE", f"/v1/campaigns/{flow.id}/enrollments/{people[0]}")
    assert removed.status_code == 200, removed.body
    assert body_of(removed)["status"] == "exited" and body_of(removed)["exit_reason"] == "removed"
    again = tenant.call("DELETE", f"/v1/campaigns/{flow.id}/enrollments/{people[0]}")
    assert again.status_code == 200 and body_of(again)["exit_reason"] == "removed"
    assert listed("exited") == [people[0]]
    trace = body_of(tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments/{people[0]}"))["trace"]
    assert (trace[-1]["outcome"], trace[-1]["reason"]) == ("exited", "removed")
    exits = webhooks_queued()
    assert [json.loads(d["body"])["data"]["reason"] for d in exits] == ["removed"]
    assert read_counts(tenant.id, flow.id)["exited.removed"] == 1
    missing = tenant.call("GET", f"/v1/campaigns/{flow.id}/enrollments/c_nobody")
    assert missing.status_code == 404 and body_of(missing)["error"]["field"] == "contact_id"


def test_an_exit_racing_a_worker_exits_where_the_enrolment_now_stands(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, MANUAL)
    ann = contact(tenant.id, "ann@example.com")
    service.enrol_contacts(tenant.id, flow.id, [ann], NOW)
    stale = enrolments.read(tenant.id, flow.id, ann)
    assert stale is not None
    step(tenant.id, flow.id, ann, NOW)  # the worker moved it after we read it

    assert service._exit_one(tenant.id, stale, ExitReason.UNSUBSCRIBED, NOW) is not None

    after = enrolments.read(tenant.id, flow.id, ann)
    assert after is not None and after.exit_reason == ExitReason.UNSUBSCRIBED
    assert after.node_id == "tag" and after.visit == 2


def test_remove_flow_enrolments_ends_every_live_one(tenant: Tenant) -> None:
    flow = put_flow(tenant.id, MANUAL)
    people = [contact(tenant.id, f"p{n}@example.com") for n in range(3)]
    service.enrol_contacts(tenant.id, flow.id, people, NOW)
    service.remove_enrolment(tenant.id, flow.id, people[0], NOW)

    assert service.remove_flow_enrolments(tenant.id, flow.id, ExitReason.CAMPAIGN_ENDED, NOW) == 2

    reasons = {p: enrolments.read(tenant.id, flow.id, p).exit_reason for p in people}  # type: ignore[union-attr]
    assert reasons == {
        people[0]: ExitReason.REMOVED,
        people[1]: ExitReason.CAMPAIGN_ENDED,
        people[2]: ExitReason.CAMPAIGN_ENDED,
    }


def test_an_enrolment_request_costs_one_write_per_contact_and_batched_reads(
    tenant: Tenant,
) -> None:
    flow = put_flow(tenant.id, MANUAL)
    people = [contact(tenant.id, f"p{n}@example.com") for n in range(150)]
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.split(".", 2)[2]] += 1

    events = [client(service_name).meta.events for service_name in ("dynamodb", "sqs")]
    for hooks in events:
        hooks.register("before-call.*.*", count)
    try:
        started = time.perf_counter()
        answers = service.enrol_contacts(tenant.id, flow.id, people, NOW)
        took = time.perf_counter() - started
    finally:
        for hooks in events:
            hooks.unregister("before-call.*.*", count)

    assert [a.outcome for a in answers] == ["enrolled"] * 150
    assert calls["PutItem"] == 150  # one conditional put per enrolment
    assert calls["BatchWriteItem"] == 6  # the contacts' index items, 25 a call
    assert calls["BatchGetItem"] == 4  # 150 contacts, then 150 enrolments: 100 a call
    assert calls["SendMessageBatch"] == 15  # the FlowWakes, 10 a call
    assert calls["GetItem"] <= 2 and calls["Query"] <= 2  # the flow, the webhook endpoints
    assert len(queued()) == 150
    print(f"enrol 150 contacts: {took:.2f} s on moto, {dict(calls)}")
