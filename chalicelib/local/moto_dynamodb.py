"""moto's DynamoDB at a table's size, for the embedded stack's moto child.

moto keeps a table as a dict of partitions, yet three of its habits cost the whole table
per call, which a single-table design (every tenant's contacts, ledgers, flows and
counters in one table) pays on every request once a demo holds a few thousand items:

* a Query on the table's own key sorts every item of the table, then keeps the
  partition's (``Table.all_items``): ~0.15 s per Query at 2,500 items on 2 cores;
* TransactWriteItems backs up every table it names with ``copy.deepcopy`` of the whole
  table, to roll back on a failed condition: ~0.4 s per transaction at 2,500 items, and
  a flow step is one transaction;
* every model instance ever made is kept for ``/moto-api/data.json``, including each
  item of those backups: memory grows without end and that page took 20 s and more.

``install`` changes the three in the child only (Herald's code and in-process ``mock_aws``
tests are untouched): a Query on the table's key reads its partition; a transaction backs
up only the items it names (the only ones it can change); items are no longer tracked
for ``data.json`` (tables, queues, sent mail and the rest still are). Each patch keeps
moto's semantics, which ``tests/integration/test_moto_dynamodb.py`` checks against a
moto server with and without it.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_scope = threading.local()  # moto's server is threaded: each request has its own scope


class _Untracked(list[Any]):
    """An ``instances_tracked`` that keeps nothing."""

    def append(self, item: Any) -> None:
        return None


@contextmanager
def _scoped(name: str, value: Any) -> Iterator[None]:
    setattr(_scope, name, value)
    try:
        yield
    finally:
        setattr(_scope, name, None)


_ORIGINAL: dict[str, Any] = {}  # moto's own functions, which the patches call


def install() -> None:
    """Patch moto's DynamoDB models (idempotent)."""
    from moto.dynamodb import models
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models import table as tables

    if _ORIGINAL:
        return
    # Any: these are patched, which their types (rightly) do not allow.
    table_class: Any = tables.Table
    backend_class: Any = models.DynamoDBBackend
    _ORIGINAL.update(
        all_items=table_class.all_items,
        query=table_class.query,
        transact_write_items=backend_class.transact_write_items,
        dynamo_type=dynamo_type.DynamoType,
    )
    dynamo_type.Item.instances_tracked = _Untracked()  # type: ignore[attr-defined]
    table_class.all_items = _partition_items
    table_class.query = _table_query
    table_class.__deepcopy__ = _backup
    backend_class.transact_write_items = _transact_write_items


def _partition_items(table: Any) -> list[Any]:
    """``Table.all_items``, but only the partition a Query on the table's key asks for."""
    wanted = getattr(_scope, "partition", None)
    if wanted is None or wanted[0] is not table:
        return list(_ORIGINAL["all_items"](table))
    partition = table.items.get(wanted[1])  # .get: the defaultdict grows no key
    return sorted(partition.values(), key=lambda item: item.range_key) if partition else []


def _table_query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    query = _ORIGINAL["query"]
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or not table.range_key_attr:
        return query(table, hash_key, *args, **kwargs)
    with _scoped("partition", (table, hash_key)):
        return query(table, hash_key, *args, **kwargs)


def _backup(table: Any, memo: dict[int, Any]) -> Any:
    """``deepcopy(table)`` in a transaction: the table with partitions of its own, sharing
    every item but those the transaction names (deep-copied: an Update changes its item
    in place)."""
    named = (getattr(_scope, "backup_keys", None) or {}).get(table.name)
    copied = object.__new__(type(table))  # not BaseModel.__new__: untracked
    memo[id(table)] = copied
    if named is None:  # a deepcopy outside a transaction: moto's own
        copied.__dict__.update(copy.deepcopy(table.__dict__, memo))
        return copied
    copied.__dict__.update(table.__dict__)
    if table.range_key_attr:
        copied.items = defaultdict(dict, {h: dict(p) for h, p in table.items.items()})
        for hash_key, range_key in named:
            partition = copied.items.get(hash_key)
            if partition is not None and range_key in partition:
                partition[range_key] = copy.deepcopy(partition[range_key])
    else:
        copied.items = copy.copy(table.items)
        for hash_key, _ in named:
            if hash_key in copied.items:
                copied.items[hash_key] = copy.deepcopy(copied.items[hash_key])
    return copied


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> Any:
    """moto's TransactWriteItems, with the keys it names known to ``_backup``."""
    dynamo = _ORIGINAL["dynamo_type"]
    named: dict[str, set[tuple[Any, Any]]] = {}
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = (op.get("Item") if op_type == "Put" else op.get("Key")) or {}
            hash_value = key.get(table.hash_key_attr)
            range_value = key.get(table.range_key_attr) if table.range_key_attr else None
            named.setdefault(table.name, set()).add(
                (
                    dynamo(hash_value) if hash_value else None,
                    dynamo(range_value) if range_value else None,
                )
            )
    with _scoped("backup_keys", named):
        return _ORIGINAL["transact_write_items"](backend, transact_items)
