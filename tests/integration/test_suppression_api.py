"""The suppression list through HTTP and through the store the send pipeline uses."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from chalicelib.store import suppression
from tests.conftest import Tenant, body_of

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def add(tenant: Tenant, address: str, reason: str | None = None, expect: int = 201) -> dict:
    body = {"address": address} | ({"reason": reason} if reason else {})
    response = tenant.call("POST", "/v1/suppressions", body)
    assert response.status_code == expect, response.body
    return body_of(response)


def test_add_normalizes_and_defaults_to_manual(tenant: Tenant):
    email = add(tenant, "Ann@Example.COM")
    assert email["address"] == "ann@example.com"
    assert email["kind"] == "email" and email["reason"] == "manual"
    phone = add(tenant, "+49 151 12345678")
    assert phone["address"] == "+4915112345678" and phone["kind"] == "phone"
    listed = body_of(tenant.call("GET", "/v1/suppressions"))["items"]
    assert [s["address"] for s in listed] == ["+4915112345678", "ann@example.com"]


def test_adding_again_is_idempotent_and_only_raises_the_reason(tenant: Tenant):
    add(tenant, "bo@example.com", "unsubscribed")
    same = add(tenant, "BO@example.com", "unsubscribed", expect=200)
    weaker = add(tenant, "bo@example.com", "manual", expect=200)
    assert same["reason"] == weaker["reason"] == "unsubscribed"
    stronger = add(tenant, "bo@example.com", "complained", expect=201)
    assert stronger["reason"] == "complained"
    assert add(tenant, "bo@example.com", "bounced", expect=200)["reason"] == "complained"
    listed = body_of(tenant.call("GET", "/v1/suppressions"))["items"]
    assert [(s["address"], s["reason"]) for s in listed] == [("bo@example.com", "complained")]


def test_list_by_reason_and_page_with_cursor(tenant: Tenant):
    for i in range(3):
        add(tenant, f"b{i}@example.com", "bounced")
    add(tenant, "m@example.com")
    bounced = body_of(tenant.call("GET", "/v1/suppressions?reason=bounced&limit=2"))
    assert [s["address"] for s in bounced["items"]] == ["b0@example.com", "b1@example.com"]
    rest = body_of(
        tenant.call(
            "GET", f"/v1/suppressions?reason=bounced&limit=2&cursor={bounced['next_cursor']}"
        )
    )
    assert [s["address"] for s in rest["items"]] == ["b2@example.com"]
    manual = body_of(tenant.call("GET", "/v1/suppressions?reason=manual"))["items"]
    assert [s["address"] for s in manual] == ["m@example.com"]
    # A reason raised moves the address between the per-reason listings.
    add(tenant, "m@example.com", "complained")
    assert body_of(tenant.call("GET", "/v1/suppressions?reason=manual"))["items"] == []
    bad = tenant.call("GET", "/v1/suppressions?reason=bored")
    assert bad.status_code == 422 and body_of(bad)["error"]["field"] == "query.reason"


def test_get_and_delete_take_url_encoded_addresses(tenant: Tenant):
    add(tenant, "ann@example.com")
    add(tenant, "+4915112345678")
    for address in ("ann@example.com", "+4915112345678"):
        path = f"/v1/suppressions/{quote(address, safe='')}"
        assert body_of(tenant.call("GET", path))["address"] == address
        assert tenant.call("DELETE", path).status_code == 204
        missing = tenant.call("GET", path)
        assert missing.status_code == 404 and body_of(missing)["error"]["field"] == "address"
    assert tenant.call("DELETE", "/v1/suppressions/ann@example.com").status_code == 404
    assert body_of(tenant.call("GET", "/v1/suppressions"))["items"] == []


def test_invalid_addresses_and_reasons_are_refused(tenant: Tenant):
    for body, field in (
        ({"address": "not an address"}, "address"),
        ({"address": "a@b"}, "address"),
        ({"address": "a@example.com", "reason": "annoyed"}, "reason"),
        ({"address": "a@example.com", "extra": 1}, "extra"),
    ):
        response = tenant.call("POST", "/v1/suppressions", body)
        assert response.status_code == 422, body
        assert body_of(response)["error"]["field"] == field
    assert body_of(tenant.call("GET", "/v1/suppressions"))["items"] == []


def test_suppressions_are_per_tenant(tenant: Tenant, other_tenant: Tenant):
    add(tenant, "ann@example.com")
    assert body_of(other_tenant.call("GET", "/v1/suppressions"))["items"] == []
    assert other_tenant.call("GET", "/v1/suppressions/ann%40example.com").status_code == 404
    assert other_tenant.call("DELETE", "/v1/suppressions/ann%40example.com").status_code == 404
    assert suppression.is_suppressed(tenant.id, "ann@example.com")
    assert not suppression.is_suppressed(other_tenant.id, "ann@example.com")


def test_suppressed_among_checks_a_batch_in_one_call(tenant: Tenant):
    for i in range(0, 150, 3):
        suppression.suppress(tenant.id, f"r{i}@example.com", "bounced", AT)
    suppression.suppress(tenant.id, "+4915112345678", "unsubscribed", AT)
    batch = [f"R{i}@example.com" for i in range(150)] + ["+4915112345678", "not-an-address"]
    found = suppression.suppressed_among(tenant.id, batch)
    assert found == {f"R{i}@example.com" for i in range(0, 150, 3)} | {"+4915112345678"}
    assert suppression.suppressed_among(tenant.id, []) == set()


def test_store_suppress_reports_what_changed(tenant: Tenant):
    record, changed = suppression.suppress(tenant.id, "x@example.com", "bounced", AT)
    assert changed and record.reason == "bounced" and record.at == AT
    again, changed = suppression.suppress(tenant.id, "x@example.com", "unsubscribed", AT)
    assert not changed and again.reason == "bounced"
