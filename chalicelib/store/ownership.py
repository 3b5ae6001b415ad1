"""Who owns each sending identity, in the system scope of the table.

Layout: ``SYS#IDENTITY / <kind>#<name>`` (``Identity.key``) with ``owner`` (tenant id),
``claimed_at`` and, after an admin transfer, ``transferred_at``. One item per identity,
in the system scope because an identity is unique across tenants: a tenant's claim is a
conditional put that only succeeds while no item exists, so of two tenants verifying
the same domain at once exactly one owns it. Only ``transfer`` (admin) overwrites.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.identities import Identity, Owners
from chalicelib.store.table import Condition, ConditionFailed, system_table

_IDENTITY = "IDENTITY"


def owners(identities: list[Identity]) -> Owners:
    """The current owner of each of ``identities`` that has one (one consistent BatchGetItem)."""
    by_key = {i.key: i for i in identities}
    found = system_table().batch_get(((_IDENTITY, key) for key in by_key), consistent=True)
    return {by_key[sort]: str(item["owner"]) for (_, sort), item in found.items()}


def claim(identity: Identity, tenant_id: str, now: datetime) -> str:
    """Make ``tenant_id`` the owner unless someone already is; returns the owner after."""
    item: dict[str, Any] = {
        "owner": tenant_id,
        "kind": identity.kind,
        "name": identity.name,
        "claimed_at": now.isoformat(),
    }
    try:
        system_table().put(_IDENTITY, identity.key, item, condition=Condition.absent())
    except ConditionFailed:
        current = system_table().get(_IDENTITY, identity.key)
        # Deleted in between is impossible (nothing deletes claims); be exact anyway.
        return str(current["owner"]) if current else claim(identity, tenant_id, now)
    return tenant_id


def transfer(identity: Identity, tenant_id: str, now: datetime) -> str | None:
    """Give ``identity`` to ``tenant_id`` whoever held it (admin); returns the previous owner."""
    previous = system_table().get(_IDENTITY, identity.key)
    item: dict[str, Any] = {
        "owner": tenant_id,
        "kind": identity.kind,
        "name": identity.name,
        "claimed_at": (previous or {}).get("claimed_at", now.isoformat()),
        "transferred_at": now.isoformat(),
    }
    system_table().put(_IDENTITY, identity.key, item)
    return str(previous["owner"]) if previous else None
