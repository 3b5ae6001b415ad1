"""One-click unsubscribe (RFC 8058) through the public routes, against moto."""

from __future__ import annotations

import base64

import pytest

from chalicelib.domain import unsubscribe as unsubscribe_domain
from chalicelib.domain.unsubscribe import UnsubscribeClaim, Unsubscribed
from chalicelib.store import secrets, suppression
from tests.conftest import Tenant, body_of

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture(autouse=True)
def fresh_keys():
    """Each test's moto account starts without keys; so must this process's cache."""
    secrets.forget_cached_keys()
    yield
    secrets.forget_cached_keys()


@pytest.fixture
def heard(monkeypatch) -> list[Unsubscribed]:
    """Unsubscribes reported to hooks (the registry is emptied for the test)."""
    events: list[Unsubscribed] = []
    monkeypatch.setattr(unsubscribe_domain, "_hooks", [])
    unsubscribe_domain.on_unsubscribe(events.append)
    return events


def contact(tenant: Tenant, **fields) -> dict:
    body = {"email": "ann@example.com", "phone": "+4915112345678", "first_name": "Ann"} | fields
    response = tenant.call("POST", "/v1/contacts", body)
    assert response.status_code == 201, response.body
    return body_of(response)


def token_for(tenant: Tenant, contact_id: str, channel: str = "email") -> str:
    claim = UnsubscribeClaim(tenant.id, contact_id, channel, campaign_id="cmp_1")  # type: ignore[arg-type]
    return secrets.unsubscribe_token(claim)


def one_click(
    tenant: Tenant, token: str, headers: dict | None = None, body="List-Unsubscribe=One-Click"
):
    return tenant.client.http.request(
        "POST", f"/u/{token}", headers=headers or ONE_CLICK, body=body
    )


def test_get_shows_a_confirmation_page_and_changes_nothing(tenant: Tenant, heard):
    ann = contact(tenant)
    response = tenant.client.http.get(f"/u/{token_for(tenant, ann['id'])}", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = response.body.decode()
    assert "<form method='post'>" in page and "Unsubscribe</button>" in page
    assert "ann@example.com" not in page  # no address on the page
    assert body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))["status"] == "subscribed"
    assert not suppression.is_suppressed(tenant.id, "ann@example.com")
    assert heard == []


def test_one_click_post_unsubscribes_once_and_is_idempotent(tenant: Tenant, heard):
    ann = contact(tenant)
    token = token_for(tenant, ann["id"])
    first = one_click(tenant, token)
    assert first.status_code == 200
    assert "Location" not in first.headers
    assert "You are unsubscribed" in first.body.decode()
    stored = body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))
    assert stored["status"] == "unsubscribed" and stored["unsubscribed_at"] is not None
    entry = suppression.get_suppression(tenant.id, "ann@example.com")
    assert entry.reason == "unsubscribed"
    assert not suppression.is_suppressed(tenant.id, "+4915112345678")  # came by email only

    second = one_click(tenant, token)
    assert second.status_code == 200 and second.body == first.body
    assert suppression.get_suppression(tenant.id, "ann@example.com") == entry
    assert len(heard) == 1
    event = heard[0]
    assert (event.claim.contact_id, event.claim.campaign_id, event.address) == (
        ann["id"],
        "cmp_1",
        "ann@example.com",
    )


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b""),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
        ({"Content-Type": "text/plain"}, b"anything"),
        ({"Content-Type": "application/json"}, b"{not json"),
    ],
)
def test_any_body_and_content_type_is_accepted(tenant: Tenant, headers, body):
    ann = contact(tenant)
    response = tenant.client.http.request(
        "POST", f"/u/{token_for(tenant, ann['id'])}", headers=headers, body=body
    )
    assert response.status_code == 200, response.body
    assert suppression.is_suppressed(tenant.id, "ann@example.com")


def test_sms_link_suppresses_the_phone(tenant: Tenant):
    ann = contact(tenant)
    assert one_click(tenant, token_for(tenant, ann["id"], "sms")).status_code == 200
    assert suppression.get_suppression(tenant.id, "+4915112345678").reason == "unsubscribed"
    assert not suppression.is_suppressed(tenant.id, "ann@example.com")


def test_a_stronger_status_and_reason_are_kept(tenant: Tenant, heard):
    ann = contact(tenant)
    tenant.call("PATCH", f"/v1/contacts/{ann['id']}", {"status": "complained"})
    tenant.call("POST", "/v1/suppressions", {"address": "ann@example.com", "reason": "complained"})
    assert one_click(tenant, token_for(tenant, ann["id"])).status_code == 200
    assert body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))["status"] == "complained"
    assert suppression.get_suppression(tenant.id, "ann@example.com").reason == "complained"
    assert heard == []


def test_a_deleted_contact_still_gets_200(tenant: Tenant, heard):
    ann = contact(tenant)
    token = token_for(tenant, ann["id"])
    assert tenant.call("DELETE", f"/v1/contacts/{ann['id']}").status_code in (200, 204)
    response = one_click(tenant, token)
    assert response.status_code == 200
    assert heard == []


def forged_tokens(token: str, other_tenant_id: str) -> list[str]:
    data = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    tampered = bytearray(data)
    tampered[-1] ^= 0xFF
    retargeted = bytearray(data)
    retargeted[4:20] = bytes.fromhex(other_tenant_id)
    encode = lambda d: base64.urlsafe_b64encode(bytes(d)).decode().rstrip("=")  # noqa: E731
    return [encode(tampered), encode(retargeted), "garbage", token[:-2], "A" * 100]


def test_forged_tokens_are_404_json_for_clients_html_for_browsers(tenant: Tenant, other_tenant):
    ann = contact(tenant)
    for forged in forged_tokens(token_for(tenant, ann["id"]), other_tenant.id):
        response = one_click(tenant, forged, headers={**ONE_CLICK, "Accept": "application/json"})
        assert response.status_code == 404, forged
        assert body_of(response)["error"] == {
            "code": "not_found",
            "message": "unknown or invalid unsubscribe link",
            "field": "token",
        }
        page = tenant.client.http.get(f"/u/{forged}", headers=BROWSER)
        assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert not suppression.is_suppressed(tenant.id, "ann@example.com")
    assert body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))["status"] == "subscribed"


def test_a_token_of_tenant_a_cannot_touch_tenant_b(tenant: Tenant, other_tenant: Tenant):
    ann = contact(tenant)
    bob = contact(other_tenant, email="bob@example.com", phone="+4915112345679")
    # A genuine token of tenant A that names tenant B's contact id finds nothing in A.
    assert one_click(tenant, token_for(tenant, bob["id"])).status_code == 200
    # ...and tenant A's token rewritten to name tenant B is a forgery.
    retargeted = forged_tokens(token_for(tenant, bob["id"]), other_tenant.id)[1]
    assert one_click(tenant, retargeted).status_code == 404
    assert body_of(other_tenant.call("GET", f"/v1/contacts/{bob['id']}"))["status"] == "subscribed"
    assert not suppression.is_suppressed(other_tenant.id, "bob@example.com")
    assert body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))["status"] == "subscribed"


def test_links_survive_key_rotation(tenant: Tenant):
    ann = contact(tenant)
    old = token_for(tenant, ann["id"])
    assert secrets.rotate_signing_key() == 2
    new = token_for(tenant, ann["id"])
    assert new != old
    secrets.forget_cached_keys()  # another process that has never seen either key
    assert secrets.read_unsubscribe_token(old) == secrets.read_unsubscribe_token(new)
    assert one_click(tenant, old).status_code == 200


def test_the_signing_key_is_created_once_and_shared(tenant: Tenant):
    first = secrets.signing_key()
    secrets.forget_cached_keys()
    assert secrets.signing_key() == first
    assert len(first.secret) == 32 and first.id == 1
