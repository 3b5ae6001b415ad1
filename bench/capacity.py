"""DynamoDB request units of one call, by DynamoDB's own sizing rules.

moto reports a fixed ConsumedCapacity (1 or 0.5 whatever the item), so the bench sizes
items itself (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
CapacityUnitCalculations.html and .../read-write-operations.html):

- a write costs one write request unit per started KB of the LARGER of the item before
  and after it (a delete: the item deleted; a failed condition: the item as it is);
  inside TransactWriteItems, twice that;
- each global secondary index the item is in (before or after) costs one more write per
  started KB of its projection, two when the write moves the item's index key (a delete
  plus a put in the index); a KEYS_ONLY index costs nothing for a write that leaves its
  keys as they were;
- a read costs one read request unit per started 4 KB (BatchGetItem: per item; Query:
  the items read together), half of it when eventually consistent, twice in a
  transaction; a key that is not found still costs the minimum.

Item sizes come from moto's table right before and right after the write, so a growing
item (a planner page, a message record gaining feedback) is charged what it weighed then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from chalicelib.resources import TableSpec

_WRITE_UNIT = 1024
_READ_UNIT = 4096
_INDEXES = TableSpec(name="").indexes
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

Wire = dict[str, Any]  # an item in DynamoDB's JSON: {"name": {"S": "value"}, ...}


@dataclass
class Units:
    write: float = 0.0
    index_write: float = 0.0
    read: float = 0.0
    items_written: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PendingWrite:
    """An item a write is about to touch, and what it weighed before."""

    table: str
    key: Wire
    before: Snapshot | None
    transactional: bool


def before_write(region: str, operation: str, params: dict[str, Any]) -> list[PendingWrite]:
    """Look up every item ``operation`` will write (call it before the request is made)."""
    if operation not in _WRITES:
        return []
    targets: list[tuple[str, Wire, bool]] = []
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        key = params.get("Key") or _key_of(params["Item"])
        targets.append((params["TableName"], key, False))
    elif operation == "BatchWriteItem":
        for table, requests in params["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    targets.append((table, _key_of(request["PutRequest"]["Item"]), False))
                else:
                    targets.append((table, request["DeleteRequest"]["Key"], False))
    else:
        for entry in params["TransactItems"]:
            (kind, body), *_ = entry.items()
            if kind != "ConditionCheck":
                key = body.get("Key") or _key_of(body["Item"])
                targets.append((body["TableName"], key, True))
    return [PendingWrite(t, k, _stored(region, t, k), tx) for t, k, tx in targets]


def of_call(
    region: str,
    operation: str,
    params: dict[str, Any],
    parsed: dict[str, Any] | None,
    pending: list[PendingWrite],
) -> Units:
    """The units one finished call consumed (``pending`` from ``before_write``)."""
    units = Units()
    failed = parsed is None or "Error" in parsed
    for write in pending:
        after = write.before if failed else _stored(region, write.table, write.key)
        size = max(write.before.size if write.before else 0, after.size if after else 0)
        factor = 2 if write.transactional else 1
        units.write += factor * _blocks(size, _WRITE_UNIT)
        if not failed:
            units.index_write += factor * _index_writes(write.before, after)
            units.items_written.append((write.table, _key_text(write.key)))
    if not failed:
        assert parsed is not None
        units.read += _read_units(operation, params, parsed)
    return units


def _read_units(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
    if operation == "GetItem":
        size = _size(parsed.get("Item"))
        return _blocks(size, _READ_UNIT) * _consistency(params)
    if operation == "BatchGetItem":
        total = 0.0
        for table, request in params["RequestItems"].items():
            found = parsed.get("Responses", {}).get(table, [])
            missing = len(request["Keys"]) - len(found)
            total += (sum(_blocks(_size(i), _READ_UNIT) for i in found) + missing) * (
                _consistency(request)
            )
        return total
    if operation in ("Query", "Scan"):
        items = parsed.get("Items", [])
        scanned = max(parsed.get("ScannedCount", len(items)), len(items))
        size = sum(_size(i) for i in items)
        if items and scanned > len(items):  # filtered out: read and billed all the same
            size = size * scanned / len(items)
        consistent = params.get("ConsistentRead") and "IndexName" not in params
        return _blocks(size, _READ_UNIT) * (1.0 if consistent else 0.5)
    if operation == "TransactGetItems":
        return 2.0 * sum(
            _blocks(_size(r.get("Item")), _READ_UNIT) for r in parsed.get("Responses", [])
        )
    return 0.0


def _consistency(request: dict[str, Any]) -> float:
    return 1.0 if request.get("ConsistentRead") else 0.5


def _blocks(size: float, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def _index_writes(before: Snapshot | None, after: Snapshot | None) -> int:
    writes = 0
    for position, index in enumerate(_INDEXES):
        old = before.index_keys[position] if before else None
        new = after.index_keys[position] if after else None
        if old is None and new is None:
            continue
        if index.projection == "KEYS_ONLY":
            # the entry is the keys alone (< 1 KB); a write that keeps them skips the index
            writes += 0 if old == new else (2 if old and new else 1)
            continue
        size = max(before.size if before and old else 0, after.size if after and new else 0)
        moved = old is not None and new is not None and old != new
        writes += _blocks(size, _WRITE_UNIT) * (2 if moved else 1)
    return writes


def _key_of(item: Wire) -> Wire:
    return {"pk": item["pk"], "sk": item["sk"]}


def _key_text(key: Wire) -> str:
    return f"{key['pk']['S']}|{key['sk']['S']}"


@dataclass(frozen=True)
class Snapshot:
    """What an item weighs and where it sits in each index, at one moment."""

    size: int
    index_keys: tuple[tuple[Any, Any] | None, ...]


def _stored(region: str, table: str, key: Wire) -> Snapshot | None:
    """The item as moto stores it now (None if absent).

    The size is moto's (attribute names plus values in UTF-8, numbers as their decimal
    text: a few bytes more than DynamoDB counts for a number, never less).
    """
    item = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_item(table, key)
    if item is None:
        return None
    attrs = item.attrs
    index_keys = tuple(
        (attrs[i.partition_key].value, attrs[i.sort_key].value)
        if i.partition_key in attrs and i.sort_key in attrs
        else None
        for i in _INDEXES
    )
    return Snapshot(item.size(), index_keys)


def _size(item: Wire | None) -> int:
    """A read item's size as DynamoDB counts it (names + values, UTF-8)."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind in ("S", "B"):
        return len(inner.encode() if isinstance(inner, str) else inner)
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "BS"):
        return sum(len(v.encode() if isinstance(v, str) else v) for v in inner)
    if kind == "NS":
        return sum(_value_size({"N": v}) for v in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    return 0
