"""Update expressions ScopedTable does not build: ``if_not_exists``, set ADD/DELETE, and
Update/Delete items for ``transact_write``.

They key items only through ``ScopedTable.partition_key``, so the tenant scope applies to
them exactly as to the table's own methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws import client
from chalicelib.store.table import (
    Condition,
    ConditionFailed,
    ScopedTable,
    from_dynamo,
    to_dynamo,
)


@dataclass
class ExpressionUpdate:
    """An UpdateExpression built clause by clause, every name and value a placeholder."""

    sets: list[str] = field(default_factory=list)
    adds: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def assign(self, attribute: str, value: Any) -> ExpressionUpdate:
        if value is None:
            self.removes.append(self.name(attribute))
        else:
            self.sets.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def set_if_absent(self, attribute: str, value: Any) -> ExpressionUpdate:
        placeholder = self.name(attribute)
        self.sets.append(f"{placeholder} = if_not_exists({placeholder}, {self.value(value)})")
        return self

    def add(self, attribute: str, amount: Any) -> ExpressionUpdate:
        self.adds.append(f"{self.name(attribute)} {self.value(amount)}")
        return self

    def delete_from_set(self, attribute: str, members: set[str]) -> ExpressionUpdate:
        self.deletes.append(f"{self.name(attribute)} {self.value(members)}")
        return self

    def request(
        self, table: ScopedTable, key: tuple[str, str], condition: Condition | None
    ) -> dict[str, Any]:
        clauses = [
            f"{verb} {', '.join(parts)}"
            for verb, parts in (
                ("SET", self.sets),
                ("ADD", self.adds),
                ("REMOVE", self.removes),
                ("DELETE", self.deletes),
            )
            if parts
        ]
        names, values = dict(self.names), dict(self.values)
        request: dict[str, Any] = {
            "TableName": table.name,
            "Key": _key(table, key),
            "UpdateExpression": " ".join(clauses),
            "ExpressionAttributeNames": names,
        }
        if condition is not None:
            request["ConditionExpression"] = condition.expression
            names.update(condition.names)
            values.update(condition.values)
        if values:
            request["ExpressionAttributeValues"] = {k: to_dynamo(v) for k, v in values.items()}
        return request

    def run(
        self, table: ScopedTable, key: tuple[str, str], condition: Condition | None
    ) -> dict[str, Any]:
        """Apply the update; returns the item as it now is, or raises ConditionFailed."""
        request = {**self.request(table, key, condition), "ReturnValues": "ALL_NEW"}
        db = client("dynamodb")
        try:
            response = db.update_item(**request)
        except db.exceptions.ConditionalCheckFailedException as error:
            raise ConditionFailed(str(error)) from error
        return from_dynamo(response.get("Attributes", {}))


def _key(table: ScopedTable, key: tuple[str, str]) -> dict[str, Any]:
    return {"pk": {"S": table.partition_key(key[0])}, "sk": {"S": key[1]}}


def delete_request(
    table: ScopedTable, key: tuple[str, str], condition: Condition
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table.name,
        "Key": _key(table, key),
        "ConditionExpression": condition.expression,
    }
    if condition.names:
        request["ExpressionAttributeNames"] = dict(condition.names)
    if condition.values:
        request["ExpressionAttributeValues"] = {
            k: to_dynamo(v) for k, v in condition.values.items()
        }
    return {"Delete": request}
