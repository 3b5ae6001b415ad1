"""Tenants, their API keys, and admin keys in DynamoDB.

Layout (scope prefix added by ScopedTable):
- ``SYS#TENANTS / <tenant id>``            the tenant registry, for the admin listing
- ``T#<tenant> / TENANT``                   the tenant itself
- ``T#<tenant>#APIKEY / <key id>``          one item per key: its digest, never the key,
                                            ``read_only`` and ``valid_until`` when set
- ``SYS#ADMINKEY / <key id>``               admin keys, likewise hashed

A key's expiry is ``valid_until``, not the table's TTL attribute: an expired key stays
listed (and refused) until it is revoked, as a revoked one does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.domain.tenants import (
    ADMIN_SCOPE,
    ApiKey,
    IssuedKey,
    KeyGrant,
    ParsedKey,
    Tenant,
    digests_match,
    issue_key,
    new_tenant_id,
)
from chalicelib.store.table import (
    Condition,
    ConditionFailed,
    ScopedTable,
    system_table,
    tenant_table,
    transact_write,
)

_TENANTS = "TENANTS"
_TENANT = "TENANT"
_API_KEYS = "APIKEY"
_ADMIN_KEYS = "ADMINKEY"


def _now() -> datetime:
    return datetime.now(UTC)


def _key_record(
    issued: IssuedKey,
    name: str,
    created_at: datetime,
    *,
    read_only: bool = False,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": issued.key_id,
        "name": name,
        "digest": issued.digest,
        "prefix": issued.secret[: len("hk_") + 12],
        "created_at": created_at.isoformat(),
        "read_only": read_only or None,
        "valid_until": expires_at.isoformat() if expires_at else None,
    }


def _api_key(tenant_id: str, record: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=record["id"],
        tenant_id=tenant_id,
        name=record.get("name", ""),
        prefix=record["prefix"],
        created_at=record["created_at"],
        revoked_at=record.get("revoked_at"),
        read_only=bool(record.get("read_only")),
        expires_at=record.get("valid_until"),
    )


def create_tenant(name: str, key_name: str = "first key") -> tuple[Tenant, ApiKey, str]:
    """Create a tenant and its first API key in one transaction; the key is returned once."""
    tenant = Tenant(id=new_tenant_id(), name=name, created_at=_now())
    issued = issue_key(tenant.id)
    scoped = tenant_table(tenant.id)
    record = _key_record(issued, key_name, tenant.created_at)
    tenant_item = {"id": tenant.id, "name": name, "created_at": tenant.created_at.isoformat()}
    transact_write(
        [
            system_table().put_request(
                _TENANTS, tenant.id, tenant_item, condition=Condition.absent()
            ),
            scoped.put_request("", _TENANT, tenant_item, condition=Condition.absent()),
            scoped.put_request(_API_KEYS, issued.key_id, record, condition=Condition.absent()),
        ]
    )
    return tenant, _api_key(tenant.id, record), issued.secret


def get_tenant(tenant_id: str) -> Tenant:
    item = tenant_table(tenant_id).get("", _TENANT)
    if item is None:
        raise NotFound(f"tenant '{tenant_id}' not found", field="tenant_id")
    return Tenant.model_validate(item)


def list_tenants(limit: int = 100, cursor: str | None = None) -> tuple[list[Tenant], str | None]:
    page = system_table().query(_TENANTS, limit=limit, cursor=cursor)
    return [Tenant.model_validate(i) for i in page.items], page.cursor


def create_api_key(
    tenant_id: str, name: str, *, read_only: bool = False, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Mint a tenant key (shown once); ``read_only`` and ``expires_at`` are fixed for life."""
    issued = issue_key(tenant_id)
    record = _key_record(issued, name, _now(), read_only=read_only, expires_at=expires_at)
    tenant_table(tenant_id).put(_API_KEYS, issued.key_id, record, condition=Condition.absent())
    return _api_key(tenant_id, record), issued.secret


def list_api_keys(tenant_id: str) -> list[ApiKey]:
    items = tenant_table(tenant_id).query_all(_API_KEYS)
    return [_api_key(tenant_id, i) for i in items]


def revoke_api_key(tenant_id: str, key_id: str) -> ApiKey:
    """Mark a key revoked (kept for audit); the gate refuses it from the next request on."""
    return _api_key(tenant_id, _revoke(tenant_table(tenant_id), _API_KEYS, key_id))


def list_admin_keys() -> list[ApiKey]:
    """Every admin key, revoked ones too (never the keys themselves)."""
    return [_api_key(ADMIN_SCOPE, i) for i in system_table().query_all(_ADMIN_KEYS)]


def revoke_admin_key(key_id: str) -> ApiKey:
    """Revoke an admin key; it fails from the next request on (the CLI can always mint one)."""
    return _api_key(ADMIN_SCOPE, _revoke(system_table(), _ADMIN_KEYS, key_id))


def _revoke(table: ScopedTable, partition: str, key_id: str) -> dict[str, Any]:
    """Stamp ``revoked_at`` once; revoking a revoked key changes nothing and is no error."""
    try:
        return table.update(
            partition,
            key_id,
            set_values={"revoked_at": _now().isoformat()},
            condition=Condition("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
        )
    except ConditionFailed:
        existing = table.get(partition, key_id)
        if existing is None:
            raise NotFound(f"API key '{key_id}' not found", field="key_id") from None
        return existing


def authenticate(parsed: ParsedKey, now: datetime) -> KeyGrant | None:
    """What a presented key grants at ``now``, or None (unknown, revoked, expired, forged)."""
    if parsed.scope == ADMIN_SCOPE:
        record = system_table().get(_ADMIN_KEYS, parsed.key_id)
    else:
        record = tenant_table(parsed.scope).get(_API_KEYS, parsed.key_id)
    if record is None or not digests_match(record["digest"], parsed.digest):
        return None
    if not _api_key(parsed.scope, record).usable_at(now):
        return None
    return KeyGrant(scope=parsed.scope, read_only=bool(record.get("read_only")))


def create_admin_key(name: str) -> str:
    """Mint an admin key (CLI and local bootstrap only; there is no HTTP route for it)."""
    issued = issue_key(ADMIN_SCOPE)
    system_table().put(
        _ADMIN_KEYS, issued.key_id, _key_record(issued, name, _now()), condition=Condition.absent()
    )
    return issued.secret
