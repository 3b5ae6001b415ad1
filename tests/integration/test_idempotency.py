"""Idempotency-Key on the native create routes, through the real gate and moto's DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields
from chalicelib.pipeline.queues import queue_url
from chalicelib.settings import get_settings
from chalicelib.store import contacts as contact_store
from chalicelib.store import idempotency as keys
from tests.conftest import Tenant, body_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def queued(role: str) -> list[dict[str, Any]]:
    """Take every message off a queue (nothing consumes them in these tests)."""
    sqs = client("sqs")
    taken: list[dict[str, Any]] = []
    while received := sqs.receive_message(QueueUrl=queue_url(role), MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in received:
            taken.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url(role), ReceiptHandle=message["ReceiptHandle"])
    return taken


def post(tenant: Tenant, path: str, body: Any, key: str | None = "retry-1", **headers: str) -> Any:
    sent = {**headers, **({"Idempotency-Key": key} if key else {})}
    return tenant.call("POST", path, body, headers=sent)


def count_campaigns(tenant: Tenant) -> int:
    return len(body_of(tenant.call("GET", "/v1/campaigns"))["items"])


def count_contacts(tenant: Tenant) -> int:
    return len(body_of(tenant.call("GET", "/v1/contacts"))["items"])


def count_import_chunks(tenant: Tenant) -> int:
    return sum(1 for m in queued("control") if m["kind"] == "import.chunk")


def count_published_events(tenant: Tenant) -> int:
    return len(queued("triggers"))


def event_body(tenant: Tenant) -> dict[str, Any]:
    contact_store.create_contact(tenant.id, ContactFields(email="ann@example.com"))
    queued("triggers")  # the contact.saved of that creation is not what is counted
    return {"events": [{"name": "order.paid", "contact": {"email": "ann@example.com"}}]}


ROUTES: dict[str, tuple[str, Callable[[Tenant], Any], Callable[[Tenant], int]]] = {
    "campaigns": (
        "/v1/campaigns",
        lambda t: {"name": "Autumn sale", "channel": "email"},
        count_campaigns,
    ),
    "contacts": ("/v1/contacts", lambda t: {"email": "bob@example.com"}, count_contacts),
    "imports": (
        "/v1/imports",
        lambda t: {"format": "csv", "data": "email\ncy@example.com\n"},
        count_import_chunks,
    ),
    "events": ("/v1/events", event_body, count_published_events),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_retried_create_gets_the_first_answer_and_creates_once(tenant: Tenant, route: str):
    path, make_body, count = ROUTES[route]
    body = make_body(tenant)

    first = post(tenant, path, body)
    again = post(tenant, path, body)

    assert first.status_code in (201, 202), first.body
    assert (again.status_code, body_of(again)) == (first.status_code, body_of(first))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(tenant) == 1


def test_a_json_body_sent_in_another_key_order_is_the_same_request(tenant: Tenant):
    first = post(tenant, "/v1/campaigns", '{"name": "Sale", "channel": "email"}')
    again = post(tenant, "/v1/campaigns", '{"channel":"email","name":"Sale"}')

    assert body_of(again) == body_of(first)
    assert count_campaigns(tenant) == 1


def test_the_same_key_with_a_different_body_is_refused_and_creates_nothing(tenant: Tenant):
    first = post(tenant, "/v1/campaigns", {"name": "Autumn sale", "channel": "email"})

    other = post(tenant, "/v1/campaigns", {"name": "Winter sale", "channel": "email"})

    assert first.status_code == 201
    assert other.status_code == 422
    assert body_of(other)["error"] == {
        "code": "idempotency_key_reused",
        "message": "this Idempotency-Key was already used with a different request",
        "field": "Idempotency-Key",
    }
    assert [c["name"] for c in body_of(tenant.call("GET", "/v1/campaigns"))["items"]] == [
        "Autumn sale"
    ]


def test_keys_belong_to_one_tenant_and_one_route(tenant: Tenant, other_tenant: Tenant):
    mine = post(tenant, "/v1/campaigns", {"name": "Sale", "channel": "email"})
    theirs = post(other_tenant, "/v1/campaigns", {"name": "Sale", "channel": "email"})
    contact = post(tenant, "/v1/contacts", {"email": "dee@example.com"})

    assert (mine.status_code, theirs.status_code, contact.status_code) == (201, 201, 201)
    assert body_of(mine)["id"] != body_of(theirs)["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert count_campaigns(tenant) == count_campaigns(other_tenant) == 1


def test_a_refused_request_is_not_kept_so_its_retry_runs_afresh(tenant: Tenant):
    taken = contact_store.create_contact(tenant.id, ContactFields(email="eve@example.com"))
    body = {"email": "eve@example.com", "first_name": "Eve"}

    refused = post(tenant, "/v1/contacts", body)
    tenant.call("DELETE", f"/v1/contacts/{taken.id}")
    retried = post(tenant, "/v1/contacts", body)

    assert refused.status_code == 409
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert body_of(retried)["first_name"] == "Eve"


def test_a_key_expires_after_24_hours(tenant: Tenant):
    body = {"name": "Sale", "channel": "email"}
    with clock.frozen(NOW) as frozen:
        first = post(tenant, "/v1/campaigns", body)
        frozen.advance(keys.RETENTION - timedelta(seconds=1))
        replayed = post(tenant, "/v1/campaigns", body)
        frozen.advance(timedelta(seconds=2))
        fresh = post(tenant, "/v1/campaigns", body)

    assert body_of(replayed)["id"] == body_of(first)["id"]
    assert fresh.status_code == 201 and body_of(fresh)["id"] != body_of(first)["id"]
    assert count_campaigns(tenant) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "with space"])
def test_a_malformed_key_is_422_naming_the_header(tenant: Tenant, key: str):
    response = tenant.call(
        "POST",
        "/v1/campaigns",
        {"name": "Sale", "channel": "email"},
        headers={"Idempotency-Key": key},
    )

    assert response.status_code == 422
    assert body_of(response)["error"]["field"] == "Idempotency-Key"
    assert count_campaigns(tenant) == 0


def test_a_repeat_while_the_first_runs_waits_and_a_dead_claim_is_taken_over(aws: None):
    """The claim itself: a second claim of a running request is refused until the first
    request's lease has run out (it died); only the same request may take it over."""
    tenant_id = "0" * 32
    running = keys.claim(tenant_id, "POST /v1/campaigns", "k", "same", NOW)
    meanwhile = keys.claim(tenant_id, "POST /v1/campaigns", "k", "same", NOW)
    later = NOW + keys.LEASE + timedelta(seconds=1)
    stranger = keys.claim(tenant_id, "POST /v1/campaigns", "k", "other", later)
    taken_over = keys.claim(tenant_id, "POST /v1/campaigns", "k", "same", later)

    assert (running.outcome, meanwhile.outcome) == ("claimed", "in_progress")
    assert (stranger.outcome, taken_over.outcome) == ("mismatch", "claimed")


def test_a_request_still_running_answers_409_with_the_error_shape(tenant: Tenant):
    body = {"name": "Sale", "channel": "email"}
    first = post(tenant, "/v1/campaigns", body)
    # The same request while it "runs": put its record back to in_progress, as a first
    # request that has not answered yet leaves it.
    table = client("dynamodb")
    items = table.scan(TableName=_table_name())["Items"]
    record = next(i for i in items if i["pk"]["S"].endswith("#IDEMPOTENCY"))
    table.update_item(
        TableName=_table_name(),
        Key={"pk": record["pk"], "sk": record["sk"]},
        UpdateExpression="SET #s = :r, lease_until = :l",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":r": {"S": "in_progress"}, ":l": {"N": "99999999999"}},
    )

    again = post(tenant, "/v1/campaigns", body)

    assert first.status_code == 201
    assert again.status_code == 409
    assert body_of(again)["error"]["field"] == "Idempotency-Key"
    assert count_campaigns(tenant) == 1


def _table_name() -> str:
    return get_settings().table_name


def test_the_openapi_document_names_the_header_on_the_create_routes_only(tenant: Tenant):
    document = body_of(tenant.call("GET", "/v1/openapi.json"))
    carrying = sorted(
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    )

    assert carrying == [
        "POST /v1/campaigns",
        "POST /v1/campaigns/{campaign_id}/enrollments",
        "POST /v1/contacts",
        "POST /v1/events",
        "POST /v1/imports",
    ]
