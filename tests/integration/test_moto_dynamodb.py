"""The embedded stack's moto child answers DynamoDB as moto itself does
(chalicelib/local/moto_dynamodb.py): the same walk of Queries (the table's key with
ranges, order, pages; an index), transactions (applied, and rolled back whole when a
condition fails) and reads, against in-process moto and against the patched child."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
import requests
from botocore.exceptions import ClientError

from chalicelib.local.moto_server import MotoServer

KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    server = MotoServer()
    server.start()
    try:
        yield server.ready()
    finally:
        server.stop()


def dynamodb(endpoint: str | None = None) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def s(value: str) -> dict[str, str]:
    return {"S": value}


def walk(db: Any) -> list[Any]:
    """Everything a single-table store asks of DynamoDB, and what it answered."""
    db.create_table(
        TableName="t",
        KeySchema=KEYS,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(40):
        item = {"pk": s(f"p{n % 4}"), "sk": s(f"s{n:03d}"), "n": {"N": str(n)}}
        if n % 3 == 0:
            item["g"] = s(f"g{n % 2}")
        db.put_item(TableName="t", Item=item)
    seen: list[Any] = []

    def query(**kwargs: Any) -> None:
        pages, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            answer = db.query(TableName="t", **kwargs, **extra)
            pages.append([(i["pk"]["S"], i["sk"]["S"]) for i in answer["Items"]])
            start = answer.get("LastEvaluatedKey")
            if not start:
                seen.append(pages)
                return

    query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": s("p1")})
    query(
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": s("p2")},
        Limit=3,
        ScanIndexForward=False,
    )
    query(
        KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":p": s("p3"), ":a": s("s010"), ":b": s("s030")},
    )
    query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
        ExpressionAttributeValues={":p": s("p0"), ":a": s("s02")},
    )
    query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": s("nobody")})
    query(
        IndexName="by-g",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": s("g0")},
    )

    refused = [
        {"Put": {"TableName": "t", "Item": {"pk": s("p9"), "sk": s("new"), "n": {"N": "1"}}}},
        {
            "Update": {
                "TableName": "t",
                "Key": {"pk": s("p1"), "sk": s("s001")},
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "99"}, ":was": {"N": "-1"}},
                "ConditionExpression": "n = :was",
            }
        },
        {"Delete": {"TableName": "t", "Key": {"pk": s("p2"), "sk": s("s002")}}},
    ]
    with pytest.raises(ClientError) as cancelled:
        db.transact_write_items(TransactItems=[refused[0], refused[2], refused[1]])
    seen.append(cancelled.value.response["Error"]["Code"])
    accepted = [
        refused[0],
        {"Update": {**refused[1]["Update"], "ConditionExpression": "n = :one"}},
        refused[2],
    ]
    accepted[1]["Update"]["ExpressionAttributeValues"] = {":n": {"N": "99"}, ":one": {"N": "1"}}
    for key in [("p9", "new"), ("p1", "s001"), ("p2", "s002")]:
        seen.append(db.get_item(TableName="t", Key={"pk": s(key[0]), "sk": s(key[1])}).get("Item"))
    db.transact_write_items(TransactItems=accepted)
    for key in [("p9", "new"), ("p1", "s001"), ("p2", "s002")]:
        seen.append(db.get_item(TableName="t", Key={"pk": s(key[0]), "sk": s(key[1])}).get("Item"))
    query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": s("p1")})
    return seen


def test_the_patched_child_answers_as_moto_does(served: str) -> None:
    with moto.mock_aws():
        expected = walk(dynamodb())
    assert walk(dynamodb(served)) == expected
    assert expected[6] == "TransactionCanceledException"
    assert expected[7] is None and expected[8]["n"] == {"N": "1"}  # rolled back whole
    assert expected[10]["n"] == {"N": "1"} and expected[11]["n"] == {"N": "99"}  # then applied
    assert expected[12] is None


def test_its_items_are_not_kept_for_the_state_page(served: str) -> None:
    db = dynamodb(served)
    db.create_table(
        TableName="kept",
        KeySchema=KEYS,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    db.put_item(TableName="kept", Item={"pk": s("a"), "sk": s("b")})
    state = requests.get(f"{served}/moto-api/data.json", timeout=30).json()
    assert "kept" in [table["name"] for table in state["dynamodb"]["Table"]]
    assert state["dynamodb"]["Item"] == []
    assert db.get_item(TableName="kept", Key={"pk": s("a"), "sk": s("b")})["Item"]
