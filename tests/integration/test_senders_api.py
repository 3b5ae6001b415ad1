"""Senders through HTTP: SES verification (moto), header-injection refusals, CRUD, isolation."""

from __future__ import annotations

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.aws import client
from chalicelib.channels import identities
from chalicelib.domain.senders import Usability
from chalicelib.store.numbering import resolve_number
from chalicelib.store.senders import get_sender
from tests.conftest import Tenant, body_of, own


def create(tenant: Tenant, body: dict) -> dict:
    response = tenant.call("POST", "/v1/senders", body)
    assert response.status_code == 201, response.body
    return body_of(response)


def ses_identity(name: str):
    return ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].email_identities[name]


def test_sender_with_unknown_identity_is_not_usable(tenant: Tenant):
    sender = create(
        tenant,
        {"channel": "email", "from_email": "News@Example.com", "from_name": "Acme News"},
    )
    assert sender["from_email"] == "news@example.com"
    assert sender["verification"]["status"] == "NOT_FOUND"
    assert sender["verification"]["identity"] == "example.com"
    assert sender["verification"]["verified"] is False
    assert sender["usable"] is False and "not verified" in sender["unusable_reason"]


def test_sender_whose_address_is_verified_is_usable(tenant: Tenant):
    # SES v1's verify_email_identity marks an address verified in moto.
    client("ses").verify_email_identity(EmailAddress="news@acme.example.com")
    own(tenant.id, "news@acme.example.com")
    sender = create(tenant, {"channel": "email", "from_email": "news@acme.example.com"})
    assert sender["verification"] == {
        "identity": "news@acme.example.com",
        "kind": "address",
        "verified": True,
        "status": "SUCCESS",
        "checked_at": sender["verification"]["checked_at"],
    }
    assert sender["usable"] is True and sender["unusable_reason"] is None


def test_a_verified_domain_covers_every_address_in_it(tenant: Tenant):
    client("sesv2").create_email_identity(EmailIdentity="acme.example.com")
    own(tenant.id, "acme.example.com")
    sender = create(tenant, {"channel": "email", "from_email": "anyone@acme.example.com"})
    assert sender["verification"]["identity"] == "acme.example.com"
    assert sender["verification"]["kind"] == "domain"
    assert sender["usable"] is True


def test_pending_verification_shows_live_and_listing_shows_last_seen(tenant: Tenant):
    client("sesv2").create_email_identity(EmailIdentity="pending.example.com")
    own(tenant.id, "pending.example.com")
    ses_identity("pending.example.com").verification_status = "PENDING"
    sender = create(tenant, {"channel": "email", "from_email": "hi@pending.example.com"})
    assert sender["verification"]["status"] == "PENDING" and sender["usable"] is False

    ses_identity("pending.example.com").verification_status = "SUCCESS"  # DNS records found
    listed = body_of(tenant.call("GET", "/v1/senders"))["items"][0]
    assert listed["verification"]["status"] == "PENDING"  # no SES call per listed sender
    cached = body_of(tenant.call("GET", f"/v1/senders/{sender['id']}"))
    assert cached["verification"]["status"] == "PENDING"  # asked SES under 10 s ago
    identities.forget_cached_statuses()  # as 10 s later
    live = body_of(tenant.call("GET", f"/v1/senders/{sender['id']}"))
    assert live["verification"]["status"] == "SUCCESS" and live["usable"] is True
    listed = body_of(tenant.call("GET", "/v1/senders"))["items"][0]
    assert listed["usable"] is True  # the live answer was remembered


def test_verify_asks_ses_to_verify_the_address_or_domain(tenant: Tenant):
    sender = create(tenant, {"channel": "email", "from_email": "ops@fresh.example.com"})
    assert sender["usable"] is False
    response = tenant.call("POST", f"/v1/senders/{sender['id']}/verify", {"scope": "domain"})
    assert response.status_code == 200, response.body
    identities = client("sesv2").list_email_identities()["EmailIdentities"]
    assert [i["IdentityName"] for i in identities] == ["fresh.example.com"]
    assert body_of(response)["verification"]["identity"] == "fresh.example.com"
    again = tenant.call("POST", f"/v1/senders/{sender['id']}/verify", {})
    assert again.status_code == 200
    names = {i["IdentityName"] for i in client("sesv2").list_email_identities()["EmailIdentities"]}
    assert names == {"fresh.example.com", "ops@fresh.example.com"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from_name", "Acme\r\nBcc: everyone@example.com"),
        ("from_name", "Acme\nX"),
        ("from_name", "Acme\x00"),
        ("from_email", "news@example.com\r\nBcc: x@y.z"),
        ("reply_to", ["help@example.com\nBcc: x@y.z"]),
        ("name", "La\r\nbel"),
    ],
)
def test_header_breaks_are_refused_naming_the_field(tenant: Tenant, field, value):
    body = {"channel": "email", "from_email": "news@example.com", field: value}
    response = tenant.call("POST", "/v1/senders", body)
    assert response.status_code == 422, response.body
    error = body_of(response)["error"]
    assert error["field"].split(".")[0] == field
    assert "CR, LF or NUL" in error["message"]
    assert body_of(tenant.call("GET", "/v1/senders"))["items"] == []


def test_patch_refuses_header_breaks_and_keeps_the_sender(tenant: Tenant):
    sender = create(tenant, {"channel": "email", "from_email": "news@example.com"})
    response = tenant.call("PATCH", f"/v1/senders/{sender['id']}", {"from_name": "A\r\nB: c"})
    assert response.status_code == 422 and body_of(response)["error"]["field"] == "from_name"
    assert body_of(tenant.call("GET", f"/v1/senders/{sender['id']}"))["from_name"] is None


def test_reply_to_accepts_one_address_or_a_list(tenant: Tenant):
    one = create(
        tenant,
        {"channel": "email", "from_email": "a@example.com", "reply_to": "Help@Example.com"},
    )
    assert one["reply_to"] == ["help@example.com"]
    many = create(
        tenant,
        {
            "channel": "email",
            "from_email": "b@example.com",
            "reply_to": ["x@a.example.com", "y@z.example.com"],
        },
    )
    assert many["reply_to"] == ["x@a.example.com", "y@z.example.com"]


def test_sms_senders(tenant: Tenant):
    sender = create(tenant, {"channel": "sms", "origination_number": "+4915112345678"})
    assert sender["usable"] is True and sender["verification"] is None
    alpha = create(tenant, {"channel": "sms", "sender_id": "ACME"})
    assert alpha["sender_id"] == "ACME"
    for body, field in (
        ({"channel": "sms"}, "origination_number"),
        ({"channel": "sms", "sender_id": "TOO-LONG-SENDER"}, "sender_id"),
        ({"channel": "sms", "sender_id": "12345"}, "sender_id"),
        ({"channel": "sms", "sender_id": "ACME", "from_email": "a@b.example.com"}, "from_email"),
        ({"channel": "email"}, "from_email"),
        ({"channel": "email", "from_email": "a@b.example.com", "sender_id": "ACME"}, "sender_id"),
    ):
        response = tenant.call("POST", "/v1/senders", body)
        assert response.status_code == 422, body
        assert body_of(response)["error"]["field"] == field, body


def test_senders_get_numbers_and_update_and_delete(tenant: Tenant):
    first = create(tenant, {"channel": "email", "from_email": "a@example.com"})
    second = create(tenant, {"channel": "email", "from_email": "b@example.com"})
    assert (first["number"], second["number"]) == (1, 2)
    assert resolve_number(tenant.id, "sender", 2) == second["id"]

    client("ses").verify_email_identity(EmailAddress="c@example.com")
    own(tenant.id, "c@example.com")
    changed = tenant.call(
        "PATCH", f"/v1/senders/{first['id']}", {"from_email": "c@example.com", "from_name": "C"}
    )
    assert changed.status_code == 200, changed.body
    assert body_of(changed)["verification"]["identity"] == "c@example.com"
    assert body_of(changed)["usable"] is True and body_of(changed)["from_name"] == "C"

    assert tenant.call("DELETE", f"/v1/senders/{second['id']}").status_code == 204
    assert tenant.call("GET", f"/v1/senders/{second['id']}").status_code == 404
    assert resolve_number(tenant.id, "sender", 2) is None


def test_another_tenants_sender_is_not_found(tenant: Tenant, other_tenant: Tenant):
    sender = create(tenant, {"channel": "email", "from_email": "a@example.com"})
    for method, path, body in (
        ("GET", f"/v1/senders/{sender['id']}", None),
        ("PATCH", f"/v1/senders/{sender['id']}", {"from_name": "x"}),
        ("POST", f"/v1/senders/{sender['id']}/verify", {}),
        ("DELETE", f"/v1/senders/{sender['id']}", None),
    ):
        assert other_tenant.call(method, path, body).status_code == 404, (method, path)
    assert (
        body_of(tenant.call("GET", f"/v1/senders/{sender['id']}"))["from_email"] == "a@example.com"
    )


def test_pipeline_check_asks_ses_at_most_once_a_minute(tenant: Tenant):
    identities.forget_cached_statuses()
    client("sesv2").create_email_identity(EmailIdentity="slow.example.com")
    own(tenant.id, "slow.example.com")
    ses_identity("slow.example.com").verification_status = "PENDING"
    created = create(tenant, {"channel": "email", "from_email": "hi@slow.example.com"})
    sender = get_sender(tenant.id, created["id"])
    verdict, status = identities.sender_usability(sender)
    assert not verdict.usable and status is not None and status.status == "PENDING"

    ses_identity("slow.example.com").verification_status = "SUCCESS"
    assert not identities.sender_usability(sender)[0].usable  # remembered answer
    identities.forget_cached_statuses()
    assert identities.sender_usability(sender)[0].usable
    sms = get_sender(tenant.id, create(tenant, {"channel": "sms", "sender_id": "ACME"})["id"])
    assert identities.sender_usability(sms) == (Usability(usable=True), None)
