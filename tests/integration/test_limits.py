"""Per-tenant limits (issue 13, item 4): admin-set limits, 429 with Retry-After naming the
limit, the per-tenant request rate, test sends per hour and SMS destination countries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from chalicelib import cli
from chalicelib.domain import clock
from chalicelib.store import quotas
from tests.conftest import Tenant, body_of, call

NOW = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    quotas.forget_cached_limits()
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


def set_limits(tenant: Tenant, admin_key: str, **changes):
    path = f"/v1/admin/tenants/{tenant.id}/limits"
    return call(tenant.client, "PATCH", path, changes, key=admin_key)


def assert_limited(response, limit: str, *, within: int) -> None:
    assert response.status_code == 429, response.body
    error = body_of(response)["error"]
    assert error["code"] == "limit_exceeded" and error["field"] == limit
    assert 1 <= int(response.headers["Retry-After"]) <= within


def test_admin_sets_limits_and_null_returns_to_the_default(tenant: Tenant, admin_key: str):
    defaults = body_of(tenant.call("GET", "/v1/limits"))
    assert defaults["sms_countries"] == ["*"] and defaults["senders"] == 100
    assert set_limits(tenant, tenant.key, senders=1).status_code == 403
    changed = set_limits(tenant, admin_key, senders=1, sms_countries=["de", "AT"])
    assert changed.status_code == 200, changed.body
    assert body_of(changed)["senders"] == 1 and body_of(changed)["sms_countries"] == ["DE", "AT"]
    assert body_of(tenant.call("GET", "/v1/limits"))["senders"] == 1
    bad = set_limits(tenant, admin_key, sms_countries=["DE", "XX"])
    assert bad.status_code == 422 and body_of(bad)["error"]["field"] == "sms_countries.1"
    negative = set_limits(tenant, admin_key, sends_per_day=-1)
    assert negative.status_code == 422 and body_of(negative)["error"]["field"] == "sends_per_day"
    reset = set_limits(tenant, admin_key, senders=None)
    assert body_of(reset)["senders"] == 100 and body_of(reset)["sms_countries"] == ["DE", "AT"]
    unknown = call(tenant.client, "GET", "/v1/admin/tenants/nope/limits", key=admin_key)
    assert unknown.status_code == 404


def test_counts_of_senders_templates_webhooks_and_keys(
    tenant: Tenant, other_tenant: Tenant, admin_key: str
):
    set_limits(tenant, admin_key, senders=1, templates=1, webhooks=0, api_keys=1)
    first = {"channel": "sms", "sender_id": "Acme"}
    assert tenant.call("POST", "/v1/senders", first).status_code == 201
    second = tenant.call("POST", "/v1/senders", {"channel": "sms", "sender_id": "Acme2"})
    assert_limited(second, "senders", within=3600)
    template = {"name": "t", "channel": "sms", "body": "Hi"}
    assert tenant.call("POST", "/v1/templates", template).status_code == 201
    assert_limited(tenant.call("POST", "/v1/templates", template), "templates", within=3600)
    hook = {"url": "https://hooks.example.com/x"}
    assert_limited(tenant.call("POST", "/v1/webhooks", hook), "webhooks", within=3600)
    assert_limited(tenant.call("POST", "/v1/api-keys", {"name": "ci"}), "api_keys", within=3600)
    # Nothing was written, and the other tenant has its own (default) limits.
    assert len(body_of(tenant.call("GET", "/v1/senders"))["items"]) == 1
    assert (
        other_tenant.call("POST", "/v1/senders", {"channel": "sms", "sender_id": "Glx"}).status_code
        == 201
    )
    assert (
        other_tenant.call(
            "POST", "/v1/senders", {"channel": "sms", "sender_id": "Glx2"}
        ).status_code
        == 201
    )


def test_request_rate_is_limited_per_tenant_per_minute(
    tenant: Tenant, other_tenant: Tenant, admin_key: str, frozen
):
    set_limits(tenant, admin_key, requests_per_minute=3)
    quotas.forget_cached_limits()
    for _ in range(3):
        assert tenant.call("GET", "/v1/senders").status_code == 200
    refused = tenant.call("GET", "/v1/senders")
    assert_limited(refused, "requests_per_minute", within=60)
    assert int(refused.headers["Retry-After"]) == 30  # the minute ends at 12:01:00
    assert other_tenant.call("GET", "/v1/senders").status_code == 200
    frozen.advance(timedelta(seconds=30))
    assert tenant.call("GET", "/v1/senders").status_code == 200


def sms_campaign(tenant: Tenant) -> str:
    template = body_of(
        tenant.call("POST", "/v1/templates", {"name": "t", "channel": "sms", "body": "Hi"})
    )
    sender = body_of(
        tenant.call("POST", "/v1/senders", {"channel": "sms", "origination_number": "+12065550100"})
    )
    body = {
        "name": "Test",
        "channel": "sms",
        "audience": {"all_contacts": True},
        "template_ids": [template["id"]],
        "sender_ids": [sender["id"]],
    }
    response = tenant.call("POST", "/v1/campaigns", body)
    assert response.status_code == 201, response.body
    return str(body_of(response)["id"])


def sms_sent() -> int:
    return len(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages)


def test_test_sends_count_per_hour_and_sms_respects_countries(
    tenant: Tenant, admin_key: str, frozen
):
    set_limits(tenant, admin_key, test_sends_per_hour=3, sms_countries=["US"])
    campaign = sms_campaign(tenant)
    path = f"/v1/campaigns/{campaign}/test"
    german = tenant.call("POST", path, {"addresses": ["+12065550101", "+4915112345678"]})
    assert german.status_code == 422, german.body
    assert body_of(german)["error"]["field"] == "addresses.1"
    assert sms_sent() == 0
    ok = tenant.call("POST", path, {"addresses": ["+12065550101", "+12065550102"]})
    assert ok.status_code == 200, ok.body
    assert sms_sent() == 2
    over = tenant.call("POST", path, {"addresses": ["+12065550103", "+12065550104"]})
    assert_limited(over, "test_sends_per_hour", within=3600)
    assert int(over.headers["Retry-After"]) == 3600 - 30
    assert sms_sent() == 2
    frozen.advance(timedelta(hours=1))
    assert tenant.call("POST", path, {"addresses": ["+12065550103"]}).status_code == 200


def test_charge_is_all_or_nothing_within_a_window(tenant: Tenant, admin_key: str):
    # (The no-overspend guarantee under concurrency is DynamoDB's conditional UpdateItem;
    # moto's in-process backend does not serialise threads, so it is not tested here.)
    set_limits(tenant, admin_key, sends_per_day=10)
    quotas.forget_cached_limits()
    granted = [quotas.charge(tenant.id, "sends_per_day", 1, NOW).granted for _ in range(16)]
    assert sum(granted) == 10
    big = quotas.charge(tenant.id, "sends_per_day", 5, NOW + timedelta(days=1))
    assert big.allowed and big.used == 5  # the next UTC day is a new window
    too_big = quotas.charge(tenant.id, "sends_per_day", 6, NOW + timedelta(days=1))
    assert not too_big.allowed and too_big.granted == 0 and too_big.used == 5
    assert quotas.charge(tenant.id, "sends_per_day", 5, NOW + timedelta(days=1)).allowed


def test_cli_reads_and_sets_limits(tenant: Tenant, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["set-limits", tenant.id, "sms_per_day=10", 'sms_countries=["FR"]']) == 0
    assert json.loads(capsys.readouterr().out)["sms_countries"] == ["FR"]
    assert cli.main(["get-limits", tenant.id]) == 0
    assert json.loads(capsys.readouterr().out)["sms_per_day"] == 10
    assert cli.main(["set-limits", tenant.id, "sms_per_day=-3"]) == 1
