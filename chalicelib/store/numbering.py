"""Tenant-scoped integer ids, allocated atomically.

Seed 003's API names campaigns, lists, segments and domains by small integers. Every such
resource gets one beside its native id: an atomic ADD on a per-tenant, per-kind counter
item gives each caller a distinct number even under concurrent creates, and a lookup item
``NUMBER#<kind>#<n>`` maps the number back to the native id.
"""

from __future__ import annotations

from chalicelib.store.table import Condition, tenant_table

_COUNTERS = "COUNTERS"


def allocate_number(tenant_id: str, kind: str, native_id: str) -> int:
    """The next integer for ``kind`` in this tenant, bound to ``native_id``."""
    table = tenant_table(tenant_id)
    counter = table.update(_COUNTERS, kind, add_values={"last": 1})
    number = int(counter["last"])
    table.put(
        f"NUMBER#{kind}",
        str(number),
        {"native_id": native_id},
        condition=Condition.absent(),
    )
    return number


def resolve_number(tenant_id: str, kind: str, number: int) -> str | None:
    """The native id bound to ``number``, or None when there is none (or it was released)."""
    item = tenant_table(tenant_id).get(f"NUMBER#{kind}", str(number))
    return str(item["native_id"]) if item else None


def release_number(tenant_id: str, kind: str, number: int) -> None:
    """Forget a deleted resource's number; numbers are never reused."""
    tenant_table(tenant_id).delete(f"NUMBER#{kind}", str(number))
