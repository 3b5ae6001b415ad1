"""Sending identities belong to tenants (issue 13, item 1): the first tenant to verify an
address or domain through Herald owns it, another tenant is refused without learning who
owns it, and only an admin moves it."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.aws import client
from chalicelib.channels import identities
from chalicelib.channels.base import OutboundMessage
from chalicelib.channels.email import EMAIL
from chalicelib.store.senders import get_sender
from tests.conftest import Tenant, body_of, call


def create(tenant: Tenant, body: dict) -> dict:
    response = tenant.call("POST", "/v1/senders", body)
    assert response.status_code == 201, response.body
    return body_of(response)


def ses_names() -> set[str]:
    return {i["IdentityName"] for i in client("sesv2").list_email_identities()["EmailIdentities"]}


def transfer(tenant: Tenant, admin_key: str, identity: str, tenant_id: str):
    body = {"identity": identity, "tenant_id": tenant_id}
    return call(tenant.client, "POST", "/v1/admin/identities/transfer", body, key=admin_key)


def assert_refused(response, identity: str, *secrets: str, field: str = "from_email") -> None:
    assert response.status_code == 409, response.body
    error = body_of(response)["error"]
    assert error["code"] == "identity_owned" and error["field"] == field
    assert f"'{identity}'" in error["message"]
    for secret in secrets:
        assert secret not in response.body.decode()


@pytest.fixture
def acme_verified_by_a(tenant: Tenant) -> dict:
    """Tenant A verifies acme.com through Herald (moto verifies at once)."""
    sender = create(tenant, {"channel": "email", "from_email": "news@acme.com"})
    response = tenant.call("POST", f"/v1/senders/{sender['id']}/verify", {"scope": "domain"})
    assert response.status_code == 200, response.body
    assert body_of(response)["usable"] is True
    return body_of(response)


def test_another_tenant_cannot_take_a_verified_domain(
    tenant: Tenant, other_tenant: Tenant, acme_verified_by_a: dict
):
    # B named ceo@acme.com before A claimed acme.com: that sender cannot send.
    response = other_tenant.call(
        "POST", "/v1/senders", {"channel": "email", "from_email": "ceo@acme.com"}
    )
    assert_refused(response, "acme.com", tenant.id, "Acme")

    early = create(other_tenant, {"channel": "email", "from_email": "ceo@globex.com"})
    moved = other_tenant.call("PATCH", f"/v1/senders/{early['id']}", {"from_email": "cfo@acme.com"})
    assert_refused(moved, "acme.com", tenant.id)


def test_verify_of_another_tenants_identity_is_refused_without_asking_ses(
    tenant: Tenant, other_tenant: Tenant
):
    # B's sender was created while acme.com was nobody's; then A verified the domain.
    b_sender = create(other_tenant, {"channel": "email", "from_email": "ceo@acme.com"})
    a_sender = create(tenant, {"channel": "email", "from_email": "news@acme.com"})
    assert (
        tenant.call("POST", f"/v1/senders/{a_sender['id']}/verify", {"scope": "domain"}).status_code
        == 200
    )
    assert ses_names() == {"acme.com"}

    for scope in ("domain", "address"):
        response = other_tenant.call(
            "POST", f"/v1/senders/{b_sender['id']}/verify", {"scope": scope}
        )
        assert_refused(response, "acme.com", tenant.id, "Acme")
    assert ses_names() == {"acme.com"}  # no SES identity made, no mail to ceo@acme.com
    live = body_of(other_tenant.call("GET", f"/v1/senders/{b_sender['id']}"))
    assert live["verification"]["verified"] is True  # SES would send it...
    assert live["usable"] is False and "not owned" in live["unusable_reason"]  # ...Herald won't


def test_b_test_send_as_a_domain_does_not_go_out(
    tenant: Tenant, other_tenant: Tenant, acme_verified_by_a: dict
):
    b_sender = create(other_tenant, {"channel": "email", "from_email": "b@globex.com"})
    # Even a sender row that names A's domain (written before the claim) is unusable.
    stored = get_sender(other_tenant.id, b_sender["id"])
    from chalicelib.channels.identities import sender_usability

    forged = stored.model_copy(update={"from_email": "ceo@acme.com", "verification": None})
    verdict, status = sender_usability(forged)
    assert status is not None and status.verified and status.identity == "acme.com"
    assert not verdict.usable and "not owned" in (verdict.reason or "")


def test_admin_transfer_moves_the_domain_and_both_tenants_senders_follow(
    tenant: Tenant, other_tenant: Tenant, admin_key: str, acme_verified_by_a: dict
):
    a_other = create(tenant, {"channel": "email", "from_email": "hello@a-only.com"})
    assert (
        tenant.call("POST", f"/v1/senders/{a_other['id']}/verify", {"scope": "domain"}).status_code
        == 200
    )

    assert transfer(other_tenant, other_tenant.key, "acme.com", other_tenant.id).status_code == 403
    response = transfer(tenant, admin_key, "ACME.com", other_tenant.id)
    assert response.status_code == 200, response.body
    assert body_of(response) == {
        "identity": "acme.com",
        "kind": "domain",
        "owner": other_tenant.id,
        "previous_owner": tenant.id,
    }

    b_sender = create(other_tenant, {"channel": "email", "from_email": "ceo@acme.com"})
    assert b_sender["usable"] is True
    verify = other_tenant.call("POST", f"/v1/senders/{b_sender['id']}/verify", {"scope": "domain"})
    assert verify.status_code == 200 and body_of(verify)["usable"] is True

    a_news = body_of(tenant.call("GET", f"/v1/senders/{acme_verified_by_a['id']}"))
    assert a_news["usable"] is False  # A no longer owns acme.com
    a_kept = body_of(tenant.call("GET", f"/v1/senders/{a_other['id']}"))
    assert a_kept["usable"] is True  # A's other identities are untouched
    a_refused = tenant.call("POST", "/v1/senders", {"channel": "email", "from_email": "x@acme.com"})
    assert_refused(a_refused, "acme.com", other_tenant.id, "Globex")


def test_transfer_refuses_unknown_tenants_and_bad_identities(tenant: Tenant, admin_key: str):
    unknown = transfer(tenant, admin_key, "acme.com", "t_" + "0" * 26)
    assert unknown.status_code == 404 and body_of(unknown)["error"]["field"] == "tenant_id"
    bad = transfer(tenant, admin_key, "not an identity!", tenant.id)
    assert bad.status_code == 422 and body_of(bad)["error"]["field"] == "identity"


def test_an_address_at_another_tenants_domain_cannot_be_claimed(
    tenant: Tenant, other_tenant: Tenant
):
    b_sender = create(other_tenant, {"channel": "email", "from_email": "ceo@acme.com"})
    a_sender = create(tenant, {"channel": "email", "from_email": "news@acme.com"})
    assert (
        tenant.call("POST", f"/v1/senders/{a_sender['id']}/verify", {"scope": "domain"}).status_code
        == 200
    )
    response = other_tenant.call(
        "POST", f"/v1/senders/{b_sender['id']}/verify", {"scope": "address"}
    )
    assert_refused(response, "acme.com")
    assert "ceo@acme.com" not in ses_names()


def test_an_identity_made_outside_herald_needs_an_admin(tenant: Tenant, admin_key: str):
    client("sesv2").create_email_identity(EmailIdentity="legacy.com")
    sender = create(tenant, {"channel": "email", "from_email": "hi@legacy.com"})
    assert sender["usable"] is False  # verified in SES, owned by nobody
    response = tenant.call("POST", f"/v1/senders/{sender['id']}/verify", {"scope": "domain"})
    assert response.status_code == 409 and body_of(response)["error"]["code"] == "conflict"
    assert "admin" in body_of(response)["error"]["message"]
    assert transfer(tenant, admin_key, "legacy.com", tenant.id).status_code == 200
    assert body_of(tenant.call("GET", f"/v1/senders/{sender['id']}"))["usable"] is True


def test_sms_numbers_and_sender_ids_are_owned_by_the_first_tenant(
    tenant: Tenant, other_tenant: Tenant, admin_key: str
):
    create(tenant, {"channel": "sms", "origination_number": "+4915112345678"})
    create(tenant, {"channel": "sms", "sender_id": "Acme"})
    number = other_tenant.call(
        "POST", "/v1/senders", {"channel": "sms", "origination_number": "+4915112345678"}
    )
    assert_refused(number, "+4915112345678", tenant.id, field="origination_number")
    alpha = other_tenant.call("POST", "/v1/senders", {"channel": "sms", "sender_id": "ACME"})
    assert_refused(alpha, "ACME", tenant.id, field="sender_id")

    own_sender = create(other_tenant, {"channel": "sms", "sender_id": "Globex"})
    assert own_sender["usable"] is True
    assert transfer(tenant, admin_key, "ACME", other_tenant.id).status_code == 200
    assert create(other_tenant, {"channel": "sms", "sender_id": "ACME"})["usable"] is True
    a_alpha = [
        s for s in body_of(tenant.call("GET", "/v1/senders"))["items"] if s["sender_id"] == "Acme"
    ]
    assert a_alpha[0]["usable"] is False


def test_sends_name_the_owned_identity_arn(tenant: Tenant, acme_verified_by_a: dict):
    seen: list[dict] = []
    ses = client("sesv2")

    def record(params, **_):
        seen.append(params)

    ses.meta.events.register("provide-client-params.sesv2.SendEmail", record)
    try:
        EMAIL.send(
            OutboundMessage(
                tenant_id=tenant.id,
                message_id="m1",
                to="x@example.org",
                text="hi",
                sender="news@acme.com",
                subject="s",
            )
        )
    finally:
        ses.meta.events.unregister("provide-client-params.sesv2.SendEmail", record)
    arn = f"arn:aws:ses:us-east-1:{DEFAULT_ACCOUNT_ID}:identity/acme.com"
    assert seen[0]["FromEmailAddressIdentityArn"] == arn
    assert len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages) == 1


def _throttle(params, **_):
    raise ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"}},
        "GetEmailIdentity",
    )


def test_ses_throttling_on_reads_answers_stale_or_503_and_never_fails_sending(
    tenant: Tenant, acme_verified_by_a: dict
):
    ses = client("sesv2")
    identities.forget_cached_statuses()
    warm = tenant.call("GET", f"/v1/senders/{acme_verified_by_a['id']}")
    assert warm.status_code == 200
    ses.meta.events.register("before-call.sesv2.GetEmailIdentity", _throttle)
    try:
        stale = tenant.call("GET", f"/v1/senders/{acme_verified_by_a['id']}")
        assert stale.status_code == 200 and body_of(stale)["usable"] is True  # remembered
        identities.forget_cached_statuses()
        cold = tenant.call("GET", f"/v1/senders/{acme_verified_by_a['id']}")
        assert cold.status_code == 503, cold.body
        assert body_of(cold)["error"]["code"] == "unavailable"
        assert int(cold.headers["Retry-After"]) >= 1
        # The send path falls back to the status stored on the sender.
        sender = get_sender(tenant.id, acme_verified_by_a["id"])
        assert identities.sender_usability(sender)[0].usable is True
    finally:
        ses.meta.events.unregister("before-call.sesv2.GetEmailIdentity", _throttle)


def test_cli_adopts_legacy_sms_identities_oldest_tenant_first_and_transfers(
    tenant: Tenant, other_tenant: Tenant, capsys: pytest.CaptureFixture[str]
):
    from chalicelib import cli
    from chalicelib.domain.senders import SenderFields, usability
    from chalicelib.store.senders import create_sender

    # Stored before identities were owned: both tenants named sender id ACME.
    legacy = {
        t.id: create_sender(t.id, "sms", SenderFields(sender_id="ACME"))
        for t in (tenant, other_tenant)
    }
    assert not usability(legacy[tenant.id], None).usable

    assert cli.main(["adopt-sms-identities"]) == 0
    assert json.loads(capsys.readouterr().out) == {tenant.id: ["ACME"], other_tenant.id: []}
    first, second = (get_sender(t, s.id) for t, s in legacy.items())
    assert usability(first, None).usable and not usability(second, None).usable

    assert cli.main(["transfer-identity", "acme", other_tenant.id]) == 0
    assert json.loads(capsys.readouterr().out)["previous_owner"] == tenant.id
    first, second = (get_sender(t, s.id) for t, s in legacy.items())
    assert not usability(first, None).usable and usability(second, None).usable
