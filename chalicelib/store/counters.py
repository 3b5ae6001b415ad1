"""Sharded campaign counters: sent, failed, skipped.<reason>, batches_done, later delivered…

A campaign's counts are spread over ``SHARDS`` items (``COUNTERS#<campaign_id>``, sort
keys ``00``..``15``) so that no single item takes a write per batch of a ten-million
recipient campaign: each batch adds all of its counts with ONE UpdateItem ADD on the shard
its batch id hashes to, and a reader sums the shards with ONE BatchGetItem (by key, so its
cost does not depend on anything else stored). Senders update counts once per batch, never
per recipient (the hot-item rule in docs/engine.md).

A unit of work (a batch, a planner page, a batch's quiet-hours children) adds its counts
with ``add_counts_once``: the ADD and a marker named after the unit go to the same shard
item in one conditional UpdateItem, so a retried unit can never count twice; the marker
is removed (``forget_marker``) once the unit is marked done, so a shard holds markers
only for the units in flight. Exact counts are what lets the completion check decide
from three numbers (planned, spawned and done batches) without reading the batches.
The watchdog (chalicelib.pipeline.watchdog) may still write one ``correction`` item when
it reconciles a stuck campaign with the outcomes kept on its units; readers add it like
a shard.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

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


def count_request(
    tenant_id: str, campaign_id: str, counts: Mapping[str, int], shard_key: str
) -> dict[str, Any] | None:
    """``add_counts`` as an Update for ``transact_write`` (None when nothing changes): a
    flow step's counts join its claim, so they count exactly when the step happens."""
    deltas = {name: amount for name, amount in counts.items() if amount}
    if not deltas:
        return None
    table = tenant_table(tenant_id)
    return table.update_request(_partition(campaign_id), shard_of(shard_key), add_values=deltas)


def _marker(unit: str) -> str:
    return f"once#{unit}"


def add_counts_once(
    tenant_id: str, campaign_id: str, counts: Mapping[str, int], shard_key: str, unit: str
) -> bool:
    """Add ``counts`` for ``unit`` unless that unit added them already (one conditional write).

    False means an earlier attempt of the unit (or a second holder) counted first. The
    marker is a string, so readers summing the integers never see it.
    """
    deltas = {name: amount for name, amount in counts.items() if amount}
    marker = _marker(unit)
    try:
        tenant_table(tenant_id).update(
            _partition(campaign_id),
            shard_of(shard_key),
            set_values={marker: "counted"},
            add_values=deltas,
            condition=Condition("attribute_not_exists(#c_m)", {"#c_m": marker}),
        )
    except ConditionFailed:
        return False
    return True


def forget_markers(tenant_id: str, campaign_id: str, shard_key: str, units: Iterable[str]) -> None:
    """Drop the markers of units that are done (they cannot be counted again: a retry of a
    done unit stops at its done marker), keeping the shard item small."""
    names = [_marker(unit) for unit in units]
    if names:
        tenant_table(tenant_id).update(_partition(campaign_id), shard_of(shard_key), remove=names)


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
