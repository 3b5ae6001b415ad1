"""Address verification results, cached per tenant and address.

``VERIFIED`` / ``<address>``: status, reason, checked_at (TTL one year after; the
campaign's ``age_threshold`` decides whether a result is still used). Read with ONE
BatchGetItem per send batch, written with one BatchWriteItem per 25 new results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain.verification import Verdict, VerificationStatus
from chalicelib.store.table import tenant_table

_PARTITION = "VERIFIED"
RETENTION = timedelta(days=365)


@dataclass(frozen=True)
class CachedVerdict:
    status: VerificationStatus
    reason: str
    checked_at: datetime


def cached_verdicts(tenant_id: str, addresses: Sequence[str]) -> dict[str, CachedVerdict]:
    found = tenant_table(tenant_id).batch_get((_PARTITION, a.lower()) for a in addresses)
    return {
        sort: CachedVerdict(
            item["status"], item["reason"], datetime.fromisoformat(item["checked_at"])
        )
        for (_, sort), item in found.items()
    }


def remember_verdicts(tenant_id: str, verdicts: Mapping[str, Verdict], now: datetime) -> None:
    expires_at = int((now + RETENTION).timestamp())
    items: Iterable[tuple[str, str, dict[str, object]]] = (
        (
            _PARTITION,
            address.lower(),
            {
                "status": verdict.status,
                "reason": verdict.reason,
                "checked_at": now.isoformat(),
                "expires_at": expires_at,
            },
        )
        for address, verdict in verdicts.items()
    )
    tenant_table(tenant_id).batch_put(items)
