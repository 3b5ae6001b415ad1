"""Events in: POST /v1/events and bus events → triggers queue → timeline, summary, reactors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws import client
from chalicelib.domain.contacts import Contact, ContactFields
from chalicelib.domain.events import TimelineEvent
from chalicelib.local.poller import drain, invoke, sqs_event
from chalicelib.pipeline.events import on_contact_event
from chalicelib.pipeline.queues import queue_url
from chalicelib.settings import get_settings
from chalicelib.store import contacts as contact_store
from chalicelib.store.events_out import BusEvent, publish_events
from tests.conftest import Tenant, body_of

REACTED: list[tuple[str, str, int]] = []


@on_contact_event
def remember_reaction(tenant_id: str, event: TimelineEvent, contact: Contact) -> None:
    summary = contact.events.get(event.name)
    REACTED.append((tenant_id, event.id, summary.count if summary else 0))


def add_contact(tenant: Tenant, email: str, phone: str | None = None) -> str:
    return contact_store.create_contact(tenant.id, ContactFields(email=email, phone=phone)).id


def post(tenant: Tenant, *events: dict[str, Any]) -> Any:
    return tenant.call("POST", "/v1/events", {"events": list(events)})


def timeline(tenant: Tenant, contact_id: str, query: str = "") -> dict[str, Any]:
    response = tenant.call("GET", f"/v1/contacts/{contact_id}/events{query}")
    assert response.status_code == 200, response.body
    return body_of(response)


def take_queued(role: str = "triggers") -> list[dict[str, Any]]:
    sqs = client("sqs")
    url = queue_url(role)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def deliver(messages: list[dict[str, Any]], copy: int) -> None:
    """Hand ``messages`` to the trigger worker as SQS would on a redelivery (new ids)."""
    fresh = [{**m, "MessageId": f"{m['MessageId']}-{copy}"} for m in messages]
    response = invoke("triggers", sqs_event("triggers", fresh))
    assert response.get("batchItemFailures", []) == []


def test_posted_event_reaches_timeline_summary_and_segments(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com")
    at = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)
    response = post(
        tenant,
        {
            "name": "purchase",
            "contact": {"email": "Ann@X.com"},
            "properties": {"sku": "A-1", "amount": 19.5},
            "occurred_at": at.isoformat(),
        },
    )
    assert response.status_code == 202, response.body
    accepted = body_of(response)
    assert accepted["unknown_contacts"] == [] and accepted["accepted"][0]["index"] == 0
    event_id = accepted["accepted"][0]["id"]
    segment = body_of(
        tenant.call(
            "POST",
            "/v1/segments",
            {
                "name": "Buyers",
                "rules": [{"field": "events.purchase.count", "operator": "gte", "value": 1}],
            },
        )
    )
    preview = f"/v1/segments/{segment['id']}/preview"
    assert body_of(tenant.call("POST", preview))["count"] == 0

    drain(["triggers"])

    entries = timeline(tenant, ann)["items"]
    assert [(e["id"], e["name"], e["properties"]) for e in entries] == [
        (event_id, "purchase", {"sku": "A-1", "amount": 19.5})
    ]
    assert datetime.fromisoformat(entries[0]["occurred_at"]) == at
    assert entries[0]["source"] == "herald"
    summary = contact_store.get_contact(tenant.id, ann).events["purchase"]
    assert (summary.count, summary.first_at, summary.last_at) == (1, at, at)
    assert body_of(tenant.call("POST", preview))["count"] == 1
    assert (tenant.id, event_id, 1) in REACTED


def test_redelivery_records_and_counts_once(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com")
    post(tenant, {"name": "purchase", "contact": {"id": ann}})
    messages = take_queued()
    assert len(messages) == 1
    deliver(messages, copy=1)
    deliver(messages, copy=2)
    assert len(timeline(tenant, ann)["items"]) == 1
    assert contact_store.get_contact(tenant.id, ann).events["purchase"].count == 1


def test_contacts_are_found_by_id_email_or_phone_and_unknowns_reported(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com", phone="+4915112345678")
    response = post(
        tenant,
        {"name": "a", "contact": {"id": ann}},
        {"name": "b", "contact": {"phone": "+49 151 12345678"}},
        {"name": "c", "contact": {"email": "nobody@x.com"}},
        {"name": "d", "contact": {"id": "c_" + "0" * 32}},
    )
    assert response.status_code == 202
    body = body_of(response)
    assert [a["index"] for a in body["accepted"]] == [0, 1]
    assert [u["index"] for u in body["unknown_contacts"]] == [2, 3]
    drain(["triggers"])
    assert {e["name"] for e in timeline(tenant, ann)["items"]} == {"a", "b"}


def test_timeline_is_newest_first_and_paged(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    post(
        tenant,
        *(
            {
                "name": f"step{i}",
                "contact": {"id": ann},
                "occurred_at": (start + timedelta(days=i)).isoformat(),
            }
            for i in range(3)
        ),
    )
    drain(["triggers"])
    first = timeline(tenant, ann, "?limit=2")
    assert [e["name"] for e in first["items"]] == ["step2", "step1"]
    rest = timeline(tenant, ann, f"?limit=2&cursor={first['next_cursor']}")
    assert [e["name"] for e in rest["items"]] == ["step0"]
    missing = tenant.call("GET", f"/v1/contacts/c_{'0' * 32}/events")
    assert missing.status_code == 404


def test_saving_a_contact_through_the_api_lands_on_its_timeline(tenant: Tenant):
    created = body_of(tenant.call("POST", "/v1/contacts", {"email": "ann@x.com"}))
    drain(["triggers"])
    assert [e["name"] for e in timeline(tenant, created["id"])["items"]] == ["contact.saved"]
    assert contact_store.get_contact(tenant.id, created["id"]).events["contact.saved"].count == 1


def test_batches_are_limited_and_validated(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com")
    event = {"name": "ping", "contact": {"id": ann}}
    too_many = post(tenant, *[event] * 101)
    assert too_many.status_code == 422 and body_of(too_many)["error"]["field"] == "events"
    assert post(tenant, *[event] * 100).status_code == 202
    for bad, field in [
        ({"name": "bad name!", "contact": {"id": ann}}, "events.0.name"),
        ({"name": "x", "contact": {}}, "events.0.contact"),
        ({"name": "x", "contact": {"id": ann, "email": "ann@x.com"}}, "events.0.contact"),
        (
            {"name": "x", "contact": {"id": ann}, "occurred_at": "2025-01-01T00:00:00"},
            "events.0.occurred_at",
        ),
        ({"name": "x", "contact": {"id": ann}, "tenant_id": "0" * 32}, "events.0.tenant_id"),
        (
            {"name": "x", "contact": {"id": ann}, "properties": {"blob": "x" * 17000}},
            "events.0.properties",
        ),
    ]:
        response = post(tenant, bad)
        assert response.status_code == 422, bad
        assert body_of(response)["error"]["field"] == field
    assert post(tenant).status_code == 422


def test_events_for_another_tenants_contact_are_refused(tenant: Tenant, other_tenant: Tenant):
    theirs = add_contact(other_tenant, "theirs@x.com")
    response = post(tenant, {"name": "purchase", "contact": {"id": theirs}})
    assert body_of(response)["accepted"] == []
    assert body_of(response)["unknown_contacts"][0]["index"] == 0
    # A bus producer naming the wrong tenant reaches nobody either: the id is looked up
    # in the tenant the detail names, where it does not exist.
    publish_events(tenant.id, [BusEvent("purchase", {"contact": {"id": theirs}})])
    drain(["triggers"])
    assert timeline(other_tenant, theirs)["items"] == []
    assert contact_store.get_contact(other_tenant.id, theirs).events == {}
    assert (
        other_tenant.call("GET", f"/v1/contacts/{theirs}/events", key=tenant.key).status_code == 404
    )


def test_bus_events_from_other_producers_are_recorded(tenant: Tenant):
    ann = add_contact(tenant, "ann@x.com")
    client("events").put_events(
        Entries=[
            {
                "EventBusName": get_settings().event_bus_name,
                "Source": "crm.acme",
                "DetailType": "lead.created",
                "Detail": json.dumps(
                    {
                        "tenant_id": tenant.id,
                        "contact": {"email": "ANN@x.com"},
                        "properties": {"score": 7},
                        "occurred_at": "2025-01-02T03:04:05",
                        "unknown_key": "ignored",
                    }
                ),
            }
        ]
    )
    drain(["triggers"])
    [entry] = timeline(tenant, ann)["items"]
    assert (entry["name"], entry["source"], entry["properties"]) == (
        "lead.created",
        "crm.acme",
        {"score": 7},
    )
    assert entry["occurred_at"].startswith("2025-01-02T03:04:05")  # a naive time is UTC
    summary = contact_store.get_contact(tenant.id, ann).events["lead.created"]
    assert summary.last_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_orphans_are_dropped_and_malformed_events_dead_letter(tenant: Tenant):
    publish_events(tenant.id, [BusEvent("purchase", {"contact": {"email": "ghost@x.com"}})])
    publish_events(tenant.id, [BusEvent("purchase", {"contact": "not an identity"})])
    drain(["triggers"])
    sqs = client("sqs")
    dlq = sqs.get_queue_url(QueueName=get_settings().dead_letter_queue_name("triggers"))["QueueUrl"]
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["contact"] for m in dead] == ["not an identity"]
