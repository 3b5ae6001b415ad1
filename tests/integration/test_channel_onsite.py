"""The on-site inbox: a campaign stores each message in its contact's inbox (delivered),
the contact reads it with a contact token (opened), and nobody else can."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import clock
from chalicelib.local.poller import drain
from tests.channel_kit import contact, messages, ok, send_campaign, stats
from tests.conftest import Tenant, body_of, call
from tests.flow_kit import enrol_contact, put_flow

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TEMPLATE = {
    "title": "Hello {{ contact.first_name | default('there') }}",
    "body": "Your order {{ contact.order }} shipped.",
    "url": "https://shop.example.com/orders/{{ contact.order }}",
}


def token_for(tenant: Tenant, contact_id: str) -> str:
    return str(ok(tenant, "POST", f"/v1/contacts/{contact_id}/token")["token"])


def as_contact(tenant: Tenant, token: str, method: str, path: str) -> Any:
    """A request as the end user: the contact token, no API key."""
    return call(tenant.client, method, path, key=token)


@pytest.fixture
def sent(tenant: Tenant) -> tuple[str, list[str]]:
    with clock.frozen(START):
        ann = contact(tenant, "ann@example.com", first_name="Ann", attributes={"order": "A-1"})
        bob = contact(tenant, "bob@example.com", attributes={"order": "B-2"})
        campaign_id = send_campaign(tenant, "onsite", TEMPLATE, {"name": "Site"})
    return campaign_id, [ann, bob]


def test_a_campaign_delivers_into_each_contacts_inbox(tenant: Tenant, sent):
    campaign_id, (ann, bob) = sent
    inbox = body_of(as_contact(tenant, token_for(tenant, ann), "GET", "/v1/inbox"))["items"]
    assert [(m["title"], m["body"], m["url"]) for m in inbox] == [
        ("Hello Ann", "Your order A-1 shipped.", "https://shop.example.com/orders/A-1")
    ]
    assert inbox[0]["campaign_id"] == campaign_id and inbox[0]["read_at"] is None
    bobs = body_of(as_contact(tenant, token_for(tenant, bob), "GET", "/v1/inbox"))["items"]
    assert [m["title"] for m in bobs] == ["Hello there"]
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["delivered"], counted["opened"]) == (2, 2, 0)
    assert {m["status"] for m in messages(tenant, campaign_id)} == {"delivered"}


def test_reading_records_one_open_however_often(tenant: Tenant, sent):
    campaign_id, (ann, _) = sent
    token = token_for(tenant, ann)
    (message,) = body_of(as_contact(tenant, token, "GET", "/v1/inbox"))["items"]
    for _ in range(2):
        read = body_of(as_contact(tenant, token, "POST", f"/v1/inbox/{message['id']}/read"))
        assert read["read_at"] is not None
    drain()
    counted = stats(tenant, campaign_id)
    assert (counted["delivered"], counted["opened"]) == (2, 1)
    statuses = sorted(m["status"] for m in messages(tenant, campaign_id))
    assert statuses == ["delivered", "opened"]


def test_a_token_reads_only_its_own_contacts_inbox(tenant: Tenant, other_tenant: Tenant, sent):
    _, (ann, bob) = sent
    (anns,) = body_of(as_contact(tenant, token_for(tenant, ann), "GET", "/v1/inbox"))["items"]
    bobs_token = token_for(tenant, bob)
    response = as_contact(tenant, bobs_token, "POST", f"/v1/inbox/{anns['id']}/read")
    assert response.status_code == 404
    assert body_of(response)["error"]["field"] == "inbox_message_id"
    stranger = contact(other_tenant, "ann@example.com")
    strangers = body_of(
        as_contact(other_tenant, token_for(other_tenant, stranger), "GET", "/v1/inbox")
    )
    assert strangers["items"] == []
    response = other_tenant.call("POST", f"/v1/contacts/{ann}/token")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nonsense", "Basic abc", "Bearer hct1.1.e30.AAAA"],
)
def test_without_a_genuine_contact_token_the_inbox_answers_401(tenant: Tenant, header):
    headers = {"Authorization": header} if header else {}
    response = call(tenant.client, "GET", "/v1/inbox", headers=headers)
    assert response.status_code == 401
    assert body_of(response)["error"]["field"] == "Authorization"


def test_an_api_key_is_not_a_contact_token(tenant: Tenant):
    response = tenant.call("GET", "/v1/inbox")
    assert response.status_code == 401


def test_a_token_in_the_query_string_is_not_read(tenant: Tenant, sent):
    _, (ann, _) = sent
    token = token_for(tenant, ann)
    response = call(tenant.client, "GET", f"/v1/inbox?token={token}")
    assert response.status_code in (401, 422)


def test_an_expired_token_reads_nothing(tenant: Tenant, sent):
    _, (ann, _) = sent
    with clock.frozen(START) as frozen:
        token = token_for(tenant, ann)
        frozen.advance(timedelta(days=31))
        response = as_contact(tenant, token, "GET", "/v1/inbox")
    assert response.status_code == 401


def test_messages_expire_after_the_retention(tenant: Tenant, sent):
    _, (ann, _) = sent
    with clock.frozen(START + timedelta(days=91)):
        token = token_for(tenant, ann)
        assert body_of(as_contact(tenant, token, "GET", "/v1/inbox"))["items"] == []


def test_an_onsite_template_with_a_non_http_url_fails_for_that_recipient(tenant: Tenant):
    contact(tenant, "ann@example.com", attributes={"link": "javascript:alert(1)"})
    contact(tenant, "bob@example.com", attributes={"link": "https://ok.example.com"})
    campaign_id = send_campaign(
        tenant, "onsite", {"title": "Hi", "body": "See", "url": "{{ contact.link }}"}, {"name": "S"}
    )
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["failed"]) == (1, 1)
    failed = [m for m in messages(tenant, campaign_id) if m["status"] == "failed"]
    assert "url" in failed[0]["error"]


def test_templates_of_the_new_kinds_are_checked_when_saved_naming_the_part(tenant: Tenant):
    for body, field in (
        ({"channel": "onsite", "title": "Hi", "body": "B", "url": "{{ contcat.x }}"}, "url"),
        ({"channel": "onsite", "title": "Hi", "body": "B", "html": "<p>"}, "html"),
        ({"channel": "push", "title": "{% if %}", "body": "B"}, "title"),
        ({"channel": "push", "title": "T", "body": "B", "data": {"k": "{{ nope }}"}}, "data.k"),
        ({"channel": "telegram", "text": "Hi", "parse_mode": "Markdown"}, "parse_mode"),
        ({"channel": "telegram", "body": "Hi"}, "body"),
    ):
        response = tenant.call("POST", "/v1/templates", {"name": "T", **body})
        assert response.status_code == 422, (body, response.body)
        assert body_of(response)["error"]["field"] == field, body
    assert ok(tenant, "GET", "/v1/templates")["items"] == []


def test_a_preview_renders_every_part_of_an_onsite_template(tenant: Tenant):
    template = ok(tenant, "POST", "/v1/templates", {"name": "T", "channel": "onsite", **TEMPLATE})
    shown = ok(
        tenant,
        "POST",
        f"/v1/templates/{template['id']}/preview",
        {"contact": {"email": "a@example.com", "first_name": "Ann", "attributes": {"order": 7}}},
    )
    assert (shown["channel"], shown["title"], shown["body"], shown["url"]) == (
        "onsite",
        "Hello Ann",
        "Your order 7 shipped.",
        "https://shop.example.com/orders/7",
    )
    assert shown["errors"] == []


def test_a_flows_onsite_message_counts_delivered_on_store_and_opened_on_read(tenant: Tenant):
    template_id = ok(
        tenant, "POST", "/v1/templates", {"name": "T", "channel": "onsite", **TEMPLATE}
    )["id"]
    sender_id = ok(tenant, "POST", "/v1/senders", {"channel": "onsite", "name": "Site"})["id"]
    ann = contact(tenant, "ann@example.com", attributes={"order": "A-1"})
    send = {"channel": "onsite", "template_ids": [template_id], "sender_ids": [sender_id]}
    flow = put_flow(
        tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "note", "kind": "send", "config": send},
            ],
            "edges": [{"source": "start", "target": "note"}],
        },
    )
    enrol_contact(tenant.id, flow, ann)
    drain()
    assert (stats(tenant, flow.id)["sent"], stats(tenant, flow.id)["delivered"]) == (1, 1)
    token = token_for(tenant, ann)
    (message,) = body_of(as_contact(tenant, token, "GET", "/v1/inbox"))["items"]
    as_contact(tenant, token, "POST", f"/v1/inbox/{message['id']}/read")
    drain()
    counted = stats(tenant, flow.id)
    assert (counted["delivered"], counted["opened"]) == (1, 1)
