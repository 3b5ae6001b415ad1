"""Scoped access to Herald's single DynamoDB table.

Nothing outside this module builds a partition key. A ``ScopedTable`` is bound to one
scope (a tenant, or the system scope for the tenant registry and admin keys) and prefixes
every partition key, index key and cursor with it; there is no method that takes a raw
key. That is how no route can reach another tenant's items, whatever ids it is handed.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.tenants import is_tenant_id
from chalicelib.settings import get_settings

BATCH_WRITE_LIMIT = 25  # AWS's limit; moto accepts more, so we enforce it here.
BATCH_GET_LIMIT = 100
_KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"})
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class ConditionFailed(Exception):
    """A conditional write found the item in a state other than the one it required."""


@dataclass(frozen=True)
class Condition:
    """A named condition clause for a write, e.g. ``Condition.absent()``."""

    expression: str
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def absent() -> Condition:
        """The item must not exist yet (create, claim)."""
        return Condition("attribute_not_exists(pk)")

    @staticmethod
    def present() -> Condition:
        """The item must already exist (update of a known record)."""
        return Condition("attribute_exists(pk)")

    @staticmethod
    def equals(attribute: str, value: Any) -> Condition:
        return Condition("#c_a = :c_v", {"#c_a": attribute}, {":c_v": value})

    @staticmethod
    def one_of(attribute: str, values: Iterable[Any]) -> Condition:
        placeholders = {f":c_v{i}": v for i, v in enumerate(values)}
        return Condition(f"#c_a IN ({', '.join(placeholders)})", {"#c_a": attribute}, placeholders)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None


@dataclass(frozen=True)
class SortRange:
    """Sort keys from ``first`` (inclusive) up to ``end`` (exclusive); None: unbounded.

    DynamoDB's key conditions are ``>=``, ``<`` and the inclusive ``BETWEEN``: a range with
    both ends queries BETWEEN and leaves out an item whose key is exactly ``end``, so that
    consecutive ranges sharing a bound cover every key exactly once."""

    first: str | None = None
    end: str | None = None


def to_dynamo(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_storable(value))  # type: ignore[no-any-return]


def _to_storable(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_storable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {_to_storable(v) for v in value}
    return value


def _from_storable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_storable(v) for v in value]
    if isinstance(value, set):
        return {_from_storable(v) for v in value}
    return value


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _from_storable(_deserializer.deserialize(v))
        for k, v in item.items()
        if k not in _KEY_ATTRIBUTES
    }


class ScopedTable:
    """The table as seen from one scope: every key it writes or reads starts with ``scope``."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.name = get_settings().table_name
        self._db = client("dynamodb")

    # -- keys -------------------------------------------------------------------------
    def partition_key(self, partition: str) -> str:
        return f"{self.scope}#{partition}" if partition else self.scope

    def _key(self, partition: str, sort: str) -> dict[str, Any]:
        return {"pk": {"S": self.partition_key(partition)}, "sk": {"S": sort}}

    def _item(
        self,
        partition: str,
        sort: str,
        attributes: Mapping[str, Any],
        index_keys: Mapping[str, tuple[str, str]] | None,
    ) -> dict[str, Any]:
        clash = _KEY_ATTRIBUTES.intersection(attributes)
        if clash:
            raise ValueError(f"key attributes are set by the store, not callers: {clash}")
        item = {k: to_dynamo(v) for k, v in attributes.items() if v is not None}
        item.update(self._key(partition, sort))
        for index, (index_partition, index_sort) in (index_keys or {}).items():
            item[f"{index}pk"] = {"S": self.partition_key(index_partition)}
            item[f"{index}sk"] = {"S": index_sort}
        return item

    # -- single items -----------------------------------------------------------------
    def put(
        self,
        partition: str,
        sort: str,
        attributes: Mapping[str, Any],
        *,
        condition: Condition | None = None,
        index_keys: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self.name,
            "Item": self._item(partition, sort, attributes, index_keys),
        }
        _apply_condition(request, condition)
        self._write(self._db.put_item, request)

    def put_request(
        self,
        partition: str,
        sort: str,
        attributes: Mapping[str, Any],
        *,
        condition: Condition | None = None,
        index_keys: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """A Put for ``transact_write``: several items, possibly of two scopes, all or none."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Item": self._item(partition, sort, attributes, index_keys),
        }
        _apply_condition(request, condition)
        return {"Put": request}

    def get(self, partition: str, sort: str, *, consistent: bool = True) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self.name, Key=self._key(partition, sort), ConsistentRead=consistent
        )
        item = response.get("Item")
        return from_dynamo(item) if item else None

    def update(
        self,
        partition: str,
        sort: str,
        *,
        set_values: Mapping[str, Any] | None = None,
        add_values: Mapping[str, int | float] | None = None,
        remove: Iterable[str] = (),
        condition: Condition | None = None,
    ) -> dict[str, Any]:
        """Set, add to and remove attributes in one write; returns the item as it now is."""
        request = self._update(
            partition,
            sort,
            set_values=set_values,
            add_values=add_values,
            remove=remove,
            condition=condition,
        )
        request["ReturnValues"] = "ALL_NEW"
        response = self._write(self._db.update_item, request)
        return from_dynamo(response.get("Attributes", {}))

    def update_request(
        self,
        partition: str,
        sort: str,
        *,
        set_values: Mapping[str, Any] | None = None,
        add_values: Mapping[str, int | float] | None = None,
        remove: Iterable[str] = (),
        condition: Condition | None = None,
    ) -> dict[str, Any]:
        """An Update for ``transact_write`` (a flow step's contact change and counts join
        the step's claim this way): the same expression ``update`` runs."""
        return {
            "Update": self._update(
                partition,
                sort,
                set_values=set_values,
                add_values=add_values,
                remove=remove,
                condition=condition,
            )
        }

    def _update(
        self,
        partition: str,
        sort: str,
        *,
        set_values: Mapping[str, Any] | None,
        add_values: Mapping[str, int | float] | None,
        remove: Iterable[str],
        condition: Condition | None,
    ) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses: list[str] = []
        sets = []
        for i, (name, value) in enumerate((set_values or {}).items()):
            if value is None:
                continue
            names[f"#s{i}"] = name
            values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
        if sets:
            clauses.append("SET " + ", ".join(sets))
        adds = []
        for i, (name, amount) in enumerate((add_values or {}).items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = amount
            adds.append(f"#a{i} :a{i}")
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        removes = []
        for i, name in enumerate(remove):
            names[f"#r{i}"] = name
            removes.append(f"#r{i}")
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        if not clauses:
            raise ValueError("an update needs at least one attribute to change")
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": self._key(partition, sort),
            "UpdateExpression": " ".join(clauses),
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = {k: to_dynamo(v) for k, v in values.items()}
        _apply_condition(request, condition)
        return request

    def delete(
        self, partition: str, sort: str, *, condition: Condition | None = None
    ) -> dict[str, Any] | None:
        """Delete an item; returns what it held, or None when there was nothing."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": self._key(partition, sort),
            "ReturnValues": "ALL_OLD",
        }
        _apply_condition(request, condition)
        response = self._write(self._db.delete_item, request)
        old = response.get("Attributes")
        return from_dynamo(old) if old else None

    def _write(self, operation: Any, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return operation(**request)  # type: ignore[no-any-return]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailed(str(error)) from error
            raise

    # -- many items -------------------------------------------------------------------
    def query(
        self,
        partition: str,
        *,
        sort_prefix: str | None = None,
        index: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
        consistent: bool = False,
        sort_range: SortRange | None = None,
    ) -> Page:
        """One page of a partition (or an index partition), in sort-key order."""
        request = self._query_request(
            partition,
            sort_prefix=sort_prefix,
            index=index,
            limit=limit,
            cursor=cursor,
            newest_first=newest_first,
            consistent=consistent,
        )
        if sort_range is not None:
            _add_sort_range(request, sort_range, f"{index}sk" if index else "sk")
        response = self._db.query(**request)
        last = response.get("LastEvaluatedKey")
        raw = response.get("Items", [])
        if sort_range is not None and sort_range.end is not None:
            sort_name = f"{index}sk" if index else "sk"
            raw = [i for i in raw if i[sort_name]["S"] != sort_range.end]
        return Page(
            items=[from_dynamo(i) for i in raw],
            cursor=self._encode_cursor(last) if last else None,
        )

    def _query_request(
        self,
        partition: str,
        *,
        sort_prefix: str | None,
        index: str | None,
        limit: int,
        cursor: str | None,
        newest_first: bool,
        consistent: bool,
    ) -> dict[str, Any]:
        pk_name, sk_name = (f"{index}pk", f"{index}sk") if index else ("pk", "sk")
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": pk_name},
            "ExpressionAttributeValues": {":pk": {"S": self.partition_key(partition)}},
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if sort_prefix:
            request["KeyConditionExpression"] += " AND begins_with(#sk, :sk)"
            request["ExpressionAttributeNames"]["#sk"] = sk_name
            request["ExpressionAttributeValues"][":sk"] = {"S": sort_prefix}
        if index:
            request["IndexName"] = index
        elif consistent:
            request["ConsistentRead"] = True
        if cursor:
            request["ExclusiveStartKey"] = self._decode_cursor(cursor, pk_name, partition)
        return request

    def count(self, partition: str, *, at_most: int) -> int:
        """How many items a partition holds, counting no further than ``at_most`` (a limit
        check needs no more; Select COUNT still reads the items it counts)."""
        counted, start = 0, None
        while counted < at_most:
            request = self._query_request(
                partition,
                sort_prefix=None,
                index=None,
                limit=at_most - counted,
                cursor=None,
                newest_first=False,
                consistent=True,
            )
            request["Select"] = "COUNT"
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self._db.query(**request)
            counted += int(response.get("Count", 0))
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
        return counted

    def query_all(self, partition: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a partition, fetched page by page (never all held at once)."""
        cursor = None
        while True:
            page = self.query(partition, cursor=cursor, **kwargs)
            yield from page.items
            if page.cursor is None:
                return
            cursor = page.cursor

    def keyed_all(
        self, partition: str, *, limit: int, consistent: bool = False
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every item of a partition with its sort key, page by page: for items whose key
        says most of what they hold, such as the flow timers' due entries. (Not a
        projected Query: on items this small, projecting saves a reader little.)"""
        request = self._query_request(
            partition,
            sort_prefix=None,
            index=None,
            limit=limit,
            cursor=None,
            newest_first=False,
            consistent=consistent,
        )
        while True:
            response = self._db.query(**request)
            for item in response.get("Items", []):
                yield item["sk"]["S"], from_dynamo(item)
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_put(self, items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
        """Write items 25 at a time, retrying what DynamoDB leaves unprocessed."""
        requests = ({"PutRequest": {"Item": self._item(p, s, a, None)}} for p, s, a in items)
        return self._batch_write(requests)

    def batch_get(
        self, keys: Iterable[tuple[str, str]], *, consistent: bool = False
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (partition, sort), 100 per BatchGetItem; missing keys are left out."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            pending: dict[str, Any] = {
                self.name: {
                    "Keys": [self._key(p, s) for p, s in unique[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(8):
                response = self._db.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self.name, []):
                    partition = item["pk"]["S"].removeprefix(self.scope).removeprefix("#")
                    found[(partition, item["sk"]["S"])] = from_dynamo(item)
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 2.0))
            else:
                raise RuntimeError("DynamoDB left keys unprocessed in BatchGetItem")
        return found

    def batch_delete(self, keys: Iterable[tuple[str, str]]) -> int:
        requests = ({"DeleteRequest": {"Key": self._key(p, s)}} for p, s in keys)
        return self._batch_write(requests)

    def _batch_write(self, requests: Iterable[dict[str, Any]]) -> int:
        written = 0
        chunk: list[dict[str, Any]] = []
        for request in requests:
            chunk.append(request)
            if len(chunk) == BATCH_WRITE_LIMIT:
                written += self._write_chunk(chunk)
                chunk = []
        if chunk:
            written += self._write_chunk(chunk)
        return written

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> int:
        pending = {self.name: chunk}
        for attempt in range(8):
            response = self._db.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return len(chunk)
            time.sleep(min(0.05 * 2**attempt, 2.0))
        raise RuntimeError(f"DynamoDB left {len(pending[self.name])} writes unprocessed")

    # -- cursors ----------------------------------------------------------------------
    def _encode_cursor(self, last_key: Mapping[str, Any]) -> str:
        plain = {k: v["S"] for k, v in last_key.items()}
        return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str, pk_name: str, partition: str) -> dict[str, Any]:
        """A cursor is only honoured for the partition it came from: no cross-tenant paging."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()):
                raise ValueError("cursor is not a key")
        except (ValueError, binascii.Error) as error:
            raise ValidationFailed("cursor is not valid", field="cursor") from error
        if plain.get(pk_name) != self.partition_key(partition):
            raise ValidationFailed("cursor does not belong to this listing", field="cursor")
        return {k: {"S": v} for k, v in plain.items()}


SYSTEM_SCOPE = "SYS"


def tenant_table(tenant_id: str) -> ScopedTable:
    """The table as one tenant may see it."""
    if not is_tenant_id(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    return ScopedTable(f"T#{tenant_id}")


def system_table() -> ScopedTable:
    """The system scope: the tenant registry and admin keys, never tenant data."""
    return ScopedTable(SYSTEM_SCOPE)


def transact_write(requests: list[dict[str, Any]]) -> None:
    """Write all of ``requests`` or none; a failed condition raises ConditionFailed."""
    try:
        client("dynamodb").transact_write_items(TransactItems=requests)
    except ClientError as error:
        if error.response["Error"]["Code"] == "TransactionCanceledException":
            raise ConditionFailed(str(error)) from error
        raise


def _add_sort_range(request: dict[str, Any], sort_range: SortRange, sort_name: str) -> None:
    first, end = sort_range.first, sort_range.end
    values = {k: v for k, v in ((":sk_first", first), (":sk_end", end)) if v is not None}
    if first is not None and end is not None:
        clause = "#sk BETWEEN :sk_first AND :sk_end"
    elif first is not None:
        clause = "#sk >= :sk_first"
    elif end is not None:
        clause = "#sk < :sk_end"
    else:
        return
    request["KeyConditionExpression"] += f" AND {clause}"
    request["ExpressionAttributeNames"]["#sk"] = sort_name
    request["ExpressionAttributeValues"].update({k: {"S": v} for k, v in values.items()})


def _apply_condition(request: dict[str, Any], condition: Condition | None) -> None:
    if condition is None:
        return
    request["ConditionExpression"] = condition.expression
    if condition.names:
        request.setdefault("ExpressionAttributeNames", {}).update(condition.names)
    if condition.values:
        request.setdefault("ExpressionAttributeValues", {}).update(
            {k: to_dynamo(v) for k, v in condition.values.items()}
        )
