"""Sharded campaign counters: sent, failed, skipped.<reason>, batches_done, later delivered…

A campaign's counts are spread over ``SHARDS`` items (``COUNTERS#<campaign_id>``, sort
keys ``00``..``15``) so that no single item takes a write per batch of a ten-million
recipient campaign: each batch adds all of its counts with ONE UpdateItem ADD on the shard
its batch id hashes to, and a reader sums the shards with ONE BatchGetItem (by key, so its
cost does not depend on anything else stored). Senders update counts once per batch, never
per recipient (the hot-item rule in docs/engine.md).

The ADDs are not transactional with the batch's done marker (docs/engine.md says why), so
a crash between the two can count one batch twice. When a campaign completes, its counts
are reconciled with the outcomes kept on its batches, and any difference is written once
as a ``correction`` item that readers add like a shard.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from chalicelib.store.table import Condition, ConditionFailed, tenant_table

SHARDS = 16
_CORRECTION = "correction"
_KEYS = (*(f"{shard:02d}" for shard in range(SHARDS)), _CORRECTION)


def _partition(campaign_id: str) -> str:
    return f"COUNTERS#{campaign_id}"


def shard_of(shard_key: str) -> str:
    """The shard a key writes to; stable across processes (crc32, not Python's hash)."""
    return f"{zlib.crc32(shard_key.encode()) % SHARDS:02d}"


def add_counts(tenant_id: str, campaign_id: str, counts: Mapping[str, int], shard_key: str) -> None:
    """Add ``counts`` (name → delta) to a campaign's counters in one write; zeros are dropped."""
    deltas = {name: amount for name, amount in counts.items() if amount}
    if not deltas:
        return
    tenant_table(tenant_id).update(_partition(campaign_id), shard_of(shard_key), add_values=deltas)


def read_counts(tenant_id: str, campaign_id: str) -> dict[str, int]:
    """Every counter of a campaign summed over its shards (one consistent BatchGetItem)."""
    partition = _partition(campaign_id)
    found = tenant_table(tenant_id).batch_get(((partition, key) for key in _KEYS), consistent=True)
    totals: dict[str, int] = {}
    for shard in found.values():
        for name, value in shard.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return totals


def correct_counts(tenant_id: str, campaign_id: str, deltas: Mapping[str, int]) -> bool:
    """Write the one correction a campaign's counters may get; False if it has one already."""
    values = {name: amount for name, amount in deltas.items() if amount}
    if not values:
        return False
    try:
        tenant_table(tenant_id).put(
            _partition(campaign_id), _CORRECTION, values, condition=Condition.absent()
        )
    except ConditionFailed:
        return False
    return True


def skipped_by_reason(counts: Mapping[str, int]) -> dict[str, int]:
    """The ``skipped.<reason>`` counters as ``{reason: count}`` (what GET campaign shows)."""
    prefix = "skipped."
    return {name[len(prefix) :]: n for name, n in counts.items() if name.startswith(prefix)}
