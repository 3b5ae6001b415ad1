"""A tenant's suppression list in DynamoDB.

Layout (scope prefix added by ScopedTable):
- ``T#<tenant>#SUPPRESSION / <address>``  one item per suppressed address
- gsi1 ``T#<tenant>#SUPPRESSION#<reason> / <address>``  the same item, listed by reason

The address is the sort key, so the sender checks a batch of recipients with one
BatchGetItem (``suppressed_among``) and an exact lookup is a GetItem. Raising a reason
is one conditional put (``attribute_not_exists OR reason IN weaker``), so concurrent
suppressions of one address (a bounce and a click at once) cannot lower it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chalicelib.domain.contacts import utc
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.suppression import (
    Suppression,
    SuppressionReason,
    normalize_address,
    weaker_reasons,
)
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_SUPPRESSION = "SUPPRESSION"
_BY_REASON = "SUPPRESSION#{reason}"


def _item(record: Suppression) -> dict[str, Any]:
    return {
        "address": record.address,
        "kind": record.kind,
        "reason": record.reason,
        "at": record.at.isoformat(),
    }


def _replaces_weaker(reason: SuppressionReason) -> Condition:
    weaker = weaker_reasons(reason)
    if not weaker:
        return Condition.absent()
    clause = Condition.one_of("reason", weaker)
    return Condition(
        f"attribute_not_exists(pk) OR {clause.expression}", clause.names, clause.values
    )


def suppress(
    tenant_id: str, address: str, reason: SuppressionReason, at: datetime
) -> tuple[Suppression, bool]:
    """Suppress ``address``; idempotent. Returns the record as it now is, and whether this
    call added the address or raised its reason (False: it was already as strong)."""
    kind, normalized = normalize_address(address)
    record = Suppression(address=normalized, kind=kind, reason=reason, at=utc(at))
    table = tenant_table(tenant_id)
    while True:
        try:
            table.put(
                _SUPPRESSION,
                normalized,
                _item(record),
                condition=_replaces_weaker(reason),
                index_keys={"gsi1": (_BY_REASON.format(reason=reason), normalized)},
            )
        except ConditionFailed:
            existing = table.get(_SUPPRESSION, normalized)
            if existing is None:  # removed between the put and the get: put again
                continue
            return Suppression.model_validate(existing), False
        return record, True


def unsuppress(tenant_id: str, address: str) -> Suppression:
    """Take ``address`` off the list; NotFound (field ``address``) if it was not on it."""
    _, normalized = normalize_address(address)
    removed = tenant_table(tenant_id).delete(_SUPPRESSION, normalized)
    if removed is None:
        raise NotFound(f"'{normalized}' is not suppressed", field="address")
    return Suppression.model_validate(removed)


def get_suppression(tenant_id: str, address: str) -> Suppression:
    _, normalized = normalize_address(address)
    item = tenant_table(tenant_id).get(_SUPPRESSION, normalized)
    if item is None:
        raise NotFound(f"'{normalized}' is not suppressed", field="address")
    return Suppression.model_validate(item)


def is_suppressed(tenant_id: str, address: str) -> bool:
    _, normalized = normalize_address(address)
    return tenant_table(tenant_id).get(_SUPPRESSION, normalized) is not None


def suppressed_among(tenant_id: str, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` (as given) that are suppressed: BatchGetItem, 100 keys a call.

    An address that is not a valid email or phone cannot be on the list and is left out.
    """
    keys = suppression_keys(addresses)
    return suppressed_in(keys, tenant_table(tenant_id).batch_get(keys))


def suppression_keys(addresses: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """The list's item keys for ``addresses``, each with the addresses as given that it
    stands for (a read that fetches them with other items: ``store.send_reads``)."""
    keys: dict[tuple[str, str], list[str]] = {}
    for address in addresses:
        try:
            _, normalized = normalize_address(address)
        except ValidationFailed:
            continue
        keys.setdefault((_SUPPRESSION, normalized), []).append(address)
    return keys


def suppressed_in(
    keys: dict[tuple[str, str], list[str]], found: Iterable[tuple[str, str]]
) -> set[str]:
    """The addresses (as given) whose suppression item is among the ``found`` keys."""
    return {given for key in found if key in keys for given in keys[key]}


def list_suppressions(
    tenant_id: str,
    *,
    reason: SuppressionReason | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Suppression], str | None]:
    """A page of the list in address order, optionally only one reason."""
    table = tenant_table(tenant_id)
    if reason is None:
        page = table.query(_SUPPRESSION, limit=limit, cursor=cursor)
    else:
        page = table.query(
            _BY_REASON.format(reason=reason), index="gsi1", limit=limit, cursor=cursor
        )
    return [Suppression.model_validate(i) for i in page.items], page.cursor
