"""The admin CLI against moto: the same store functions the admin routes use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import cli
from chalicelib.domain.tenants import ADMIN_SCOPE, parse_key
from chalicelib.local.poller import drain
from chalicelib.pipeline.queues import enqueue
from chalicelib.store import tenants


def granted(key: str) -> str | None:
    """The scope the gate would grant ``key`` now, or None."""
    parsed = parse_key(key)
    grant = tenants.authenticate(parsed, datetime.now(UTC)) if parsed else None
    return grant.scope if grant else None


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_manages_tenants_and_keys(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    created = _run(capsys, "create-tenant", "Initech")
    assert isinstance(created, dict)
    tenant_id = created["tenant"]["id"]
    first_key = created["api_key"]["key"]
    assert granted(first_key) == tenant_id

    second = _run(capsys, "create-api-key", tenant_id, "--name", "ci")
    listed = _run(capsys, "list-api-keys", tenant_id)
    assert isinstance(second, dict) and isinstance(listed, list)
    assert {k["name"] for k in listed} == {created["api_key"]["name"], "ci"}
    assert all("key" not in k for k in listed)

    _run(capsys, "revoke-api-key", tenant_id, second["id"])
    assert granted(second["key"]) is None
    assert [t["id"] for t in _run(capsys, "list-tenants")] == [tenant_id]  # type: ignore[union-attr]


def test_cli_admin_key_authenticates_as_admin(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = _run(capsys, "create-admin-key", "--name", "ops")
    assert isinstance(admin, dict)
    assert granted(admin["admin_key"]) == ADMIN_SCOPE


def test_cli_lists_and_revokes_admin_keys(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    ops = _run(capsys, "create-admin-key", "--name", "ops")
    spare = _run(capsys, "create-admin-key", "--name", "spare")
    assert isinstance(ops, dict) and isinstance(spare, dict)
    listed = _run(capsys, "list-admin-keys")
    assert isinstance(listed, list)
    assert sorted(k["name"] for k in listed) == ["ops", "spare"]
    assert all("digest" not in k and "key" not in k for k in listed)
    spare_id = next(k["id"] for k in listed if k["name"] == "spare")

    revoked = _run(capsys, "revoke-admin-key", spare_id)

    assert isinstance(revoked, dict) and revoked["revoked_at"] is not None
    assert granted(spare["admin_key"]) is None
    assert granted(ops["admin_key"]) == ADMIN_SCOPE


def test_cli_makes_read_only_and_expiring_tenant_keys(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    created = _run(capsys, "create-tenant", "Initech")
    assert isinstance(created, dict)
    tenant_id = created["tenant"]["id"]
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()

    made = _run(capsys, "create-api-key", tenant_id, "--read-only", "--expires-at", soon)

    assert isinstance(made, dict)
    assert made["read_only"] is True and made["expires_at"] is not None
    parsed = parse_key(made["key"])
    assert parsed is not None
    grant = tenants.authenticate(parsed, datetime.now(UTC))
    assert grant is not None and grant.read_only
    assert tenants.authenticate(parsed, datetime.now(UTC) + timedelta(days=31)) is None


def test_cli_refuses_an_expiry_without_an_offset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["create-api-key", "0" * 32, "--expires-at", "2027-01-01T00:00:00"])
    assert "offset" in capsys.readouterr().err


def test_cli_reports_dead_letter_depths(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "dlq-depths") == {
        "control": 0,
        "send": 0,
        "feedback": 0,
        "triggers": 0,
        "callbacks": 0,
        "flows": 0,
        "replies": 0,
    }
    enqueue("control", [{"kind": "no.such.kind"}])
    drain(["control"])  # fails five times, then SQS moves it to the dead-letter queue
    capsys.readouterr()  # the handler's log lines
    assert _run(capsys, "dlq-depths")["control"] == 1  # type: ignore[index]


def test_cli_refuses_a_malformed_tenant_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["list-api-keys", "not-a-tenant"])
    assert exited.value.code == 2
    assert "not a tenant id" in capsys.readouterr().err
