"""Tenants, API keys and the gate, through HTTP against moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import clock
from chalicelib.domain.tenants import parse_key
from chalicelib.store import tenants
from tests.conftest import Tenant, body_of, call

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_admin_creates_tenant_and_the_key_works(client, admin_key):
    response = call(client, "POST", "/v1/admin/tenants", {"name": "Acme"}, key=admin_key)
    assert response.status_code == 201
    created = body_of(response)
    assert created["tenant"]["name"] == "Acme"
    key = created["api_key"]["key"]
    assert key.startswith(f"hk_{created['tenant']['id']}_")
    listed = call(client, "GET", "/v1/api-keys", key=key)
    assert listed.status_code == 200
    assert [k["id"] for k in body_of(listed)["items"]] == [created["api_key"]["id"]]
    assert "key" not in body_of(listed)["items"][0]


def test_request_without_key_is_refused_with_the_error_shape(client):
    response = call(client, "GET", "/v1/api-keys")
    assert response.status_code == 401
    assert body_of(response) == {
        "error": {
            "code": "unauthorized",
            "message": "missing bearer API key",
            "field": "Authorization",
        }
    }
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_malformed_and_forged_keys_are_refused(client, tenant: Tenant):
    forged = tenant.key[:-4] + ("AAAA" if not tenant.key.endswith("AAAA") else "BBBB")
    for bad in ("nonsense", "hk_admin_000000000000_" + "x" * 43, forged):
        response = call(client, "GET", "/v1/api-keys", key=bad)
        assert response.status_code == 401, bad
        assert body_of(response)["error"]["code"] == "unauthorized"


def test_revoked_key_fails_at_once(tenant: Tenant):
    second = body_of(tenant.call("POST", "/v1/api-keys", {"name": "ci"}))
    assert tenant.call("GET", "/v1/api-keys", key=second["key"]).status_code == 200
    revoked = tenant.call("DELETE", f"/v1/api-keys/{second['id']}")
    assert revoked.status_code == 200
    assert body_of(revoked)["revoked_at"] is not None
    assert tenant.call("GET", "/v1/api-keys", key=second["key"]).status_code == 401
    # The first key is untouched.
    assert tenant.call("GET", "/v1/api-keys").status_code == 200


def test_tenant_cannot_revoke_another_tenants_key(tenant: Tenant, other_tenant: Tenant):
    theirs = body_of(other_tenant.call("GET", "/v1/api-keys"))["items"][0]["id"]
    response = tenant.call("DELETE", f"/v1/api-keys/{theirs}")
    assert response.status_code == 404
    assert other_tenant.call("GET", "/v1/api-keys").status_code == 200


def test_admin_routes_refuse_tenant_keys_and_tenant_routes_refuse_admin_keys(
    client, admin_key, tenant: Tenant
):
    response = tenant.call("POST", "/v1/admin/tenants", {"name": "Evil"})
    assert response.status_code == 403
    assert body_of(response)["error"]["code"] == "forbidden"
    assert call(client, "GET", "/v1/api-keys", key=admin_key).status_code == 403


def test_unknown_fields_are_refused_naming_the_field(client, admin_key):
    response = call(
        client, "POST", "/v1/admin/tenants", {"name": "A", "plan": "gold"}, key=admin_key
    )
    assert response.status_code == 422
    error = body_of(response)["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == "plan"


def test_missing_field_and_bad_json_get_clear_errors(client, admin_key):
    missing = call(client, "POST", "/v1/admin/tenants", {}, key=admin_key)
    assert missing.status_code == 422
    assert body_of(missing)["error"]["field"] == "name"
    broken = call(client, "POST", "/v1/admin/tenants", "{not json", key=admin_key)
    assert broken.status_code == 400
    assert body_of(broken)["error"]["code"] == "bad_request"


def test_unknown_tenant_is_404(client, admin_key):
    for tenant_id in ("0" * 32, "not-an-id"):
        response = call(client, "GET", f"/v1/admin/tenants/{tenant_id}", key=admin_key)
        assert response.status_code == 404
        assert body_of(response)["error"]["code"] == "not_found"


def test_admin_lists_tenants_with_cursor(client, admin_key):
    for name in ("A", "B", "C"):
        call(client, "POST", "/v1/admin/tenants", {"name": name}, key=admin_key)
    first = body_of(call(client, "GET", "/v1/admin/tenants?limit=2", key=admin_key))
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = body_of(
        call(
            client, "GET", f"/v1/admin/tenants?limit=2&cursor={first['next_cursor']}", key=admin_key
        )
    )
    names = {t["name"] for t in first["items"] + second["items"]}
    assert names == {"A", "B", "C"}


def test_openapi_document_describes_the_routes(client):
    response = call(client, "GET", "/v1/openapi.json")
    assert response.status_code == 200
    document = body_of(response)
    assert document["openapi"] == "3.1.0"
    assert "post" in document["paths"]["/v1/api-keys"]
    assert "ErrorBody" in document["components"]["schemas"]
    page = call(client, "GET", "/docs")
    assert page.status_code == 200 and "v1/openapi.json" in page.body.decode()


# -- admin keys ---------------------------------------------------------------------------
def test_admin_lists_admin_keys_without_the_keys(client, admin_key):
    response = call(client, "GET", "/v1/admin/keys", key=admin_key)

    assert response.status_code == 200
    items = body_of(response)["items"]
    assert [k["prefix"] for k in items] == [admin_key[: len("hk_") + 12]]
    assert all("key" not in k and "digest" not in k for k in items)


def test_an_admin_key_revoked_over_http_fails_from_the_next_request(client, admin_key):
    spare = tenants.create_admin_key("spare")
    spare_id = parse_key(spare).key_id  # type: ignore[union-attr]

    revoked = call(client, "DELETE", f"/v1/admin/keys/{spare_id}", key=admin_key)

    assert revoked.status_code == 200
    assert body_of(revoked)["revoked_at"] is not None
    assert call(client, "GET", "/v1/admin/tenants", key=spare).status_code == 401
    assert call(client, "GET", "/v1/admin/tenants", key=admin_key).status_code == 200
    listed = body_of(call(client, "GET", "/v1/admin/keys", key=admin_key))["items"]
    assert {k["id"]: k["revoked_at"] is not None for k in listed}[spare_id] is True


def test_revoking_an_unknown_admin_key_is_404_and_tenants_may_not_try(client, admin_key, tenant):
    unknown = call(client, "DELETE", "/v1/admin/keys/000000000000", key=admin_key)
    as_tenant = tenant.call("GET", "/v1/admin/keys")

    assert unknown.status_code == 404
    assert body_of(unknown)["error"] == {
        "code": "not_found",
        "message": "API key '000000000000' not found",
        "field": "key_id",
    }
    assert as_tenant.status_code == 403


# -- read-only and expiring tenant keys ---------------------------------------------------
def test_a_read_only_key_reads_and_gets_403_on_any_write(tenant: Tenant):
    made = tenant.call("POST", "/v1/api-keys", {"name": "dashboard", "read_only": True})
    reader = body_of(made)["key"]
    contact = body_of(tenant.call("POST", "/v1/contacts", {"email": "ann@example.com"}))

    reads = [
        tenant.call("GET", "/v1/contacts", key=reader),
        tenant.call("GET", f"/v1/contacts/{contact['id']}", key=reader),
    ]
    writes = [
        tenant.call("POST", "/v1/contacts", {"email": "bob@example.com"}, key=reader),
        tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"first_name": "X"}, key=reader),
        tenant.call("DELETE", f"/v1/contacts/{contact['id']}", key=reader),
        tenant.call("POST", "/v1/api-keys", {"name": "escalate"}, key=reader),
    ]

    assert made.status_code == 201 and body_of(made)["read_only"] is True
    assert [r.status_code for r in reads] == [200, 200]
    for refused in writes:
        assert refused.status_code == 403
        assert body_of(refused) == {
            "error": {
                "code": "forbidden",
                "message": "this API key is read-only",
                "field": "Authorization",
            }
        }
    after = body_of(tenant.call("GET", "/v1/contacts"))["items"]
    assert [(c["email"], c.get("first_name")) for c in after] == [("ann@example.com", None)]
    assert len(body_of(tenant.call("GET", "/v1/api-keys"))["items"]) == 2


def test_a_key_with_an_expiry_works_until_then_and_is_refused_after(tenant: Tenant):
    with clock.frozen(NOW) as frozen:
        made = tenant.call(
            "POST", "/v1/api-keys", {"name": "trial", "expires_at": "2026-11-22T13:00:00+00:00"}
        )
        key = body_of(made)["key"]
        before = tenant.call("GET", "/v1/api-keys", key=key)
        frozen.advance(timedelta(hours=1))
        after = tenant.call("GET", "/v1/api-keys", key=key)
        still = tenant.call("GET", "/v1/api-keys")

    assert made.status_code == 201
    assert body_of(made)["expires_at"] == "2026-11-22T13:00:00Z"
    assert before.status_code == 200
    assert after.status_code == 401
    assert body_of(after)["error"]["message"] == "invalid, revoked or expired API key"
    assert still.status_code == 200  # the tenant's other key is untouched
    listed = body_of(still)["items"]
    assert [k["expires_at"] for k in listed if k["name"] == "trial"] == ["2026-11-22T13:00:00Z"]


@pytest.mark.parametrize(
    "expires_at", ["2026-11-22T11:00:00+00:00", "2026-11-22T12:00:00+00:00", "2026-12-01T00:00:00"]
)
def test_an_expiry_in_the_past_or_without_offset_is_422_naming_it(tenant: Tenant, expires_at):
    with clock.frozen(NOW):
        response = tenant.call("POST", "/v1/api-keys", {"name": "x", "expires_at": expires_at})

    assert response.status_code == 422
    assert body_of(response)["error"]["field"] == "expires_at"
    assert len(body_of(tenant.call("GET", "/v1/api-keys"))["items"]) == 1
