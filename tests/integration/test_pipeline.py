"""Partial batch failure, end to end through the real app.py queue handler and moto SQS.

Chalice cannot turn on ReportBatchItemFailures (aws/chalice#2029), so Herald's handlers
return ``batchItemFailures`` and the event source mapping (infra/, or the local poller)
honours it. Here: only the failing records come back, the rest are deleted, failures are
retried until ``maxReceiveCount`` and then dead-lettered, and so is a message nobody handles.

The two message kinds are added to app.py's feedback consumer for these tests only (a kind
in that table is what every worker is; nothing of Herald's is replaced).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.local.poller import drain, invoke, poll_once, sqs_event
from chalicelib.pipeline.queues import enqueue, queue_url
from chalicelib.resources import MAX_RECEIVE_COUNT, herald_resources
from chalicelib.settings import get_settings

OK, FAIL = "test.ok", "test.fail"
handled: list[dict[str, Any]] = []
failed_attempts: list[dict[str, Any]] = []


def _succeed(message: dict[str, Any]) -> None:
    handled.append(message)


def _refuse(message: dict[str, Any]) -> None:
    failed_attempts.append(message)
    raise RuntimeError("refused on purpose")


@pytest.fixture(autouse=True)
def calls(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    handlers = dict(herald.QUEUE_CONSUMERS["feedback"].handlers, **{OK: _succeed, FAIL: _refuse})
    consumer = replace(herald.QUEUE_CONSUMERS["feedback"], handlers=handlers)
    monkeypatch.setitem(herald.QUEUE_CONSUMERS, "feedback", consumer)
    handled.clear()
    failed_attempts.clear()
    yield


def mixed_batch() -> list[dict[str, Any]]:
    """Ten messages; numbers 0, 3, 6 and 9 fail."""
    return [{"kind": FAIL if n % 3 == 0 else OK, "n": n} for n in range(10)]


FAILING = [0, 3, 6, 9]
SUCCEEDING = [1, 2, 4, 5, 7, 8]


def numbers(messages: list[dict[str, Any]]) -> list[int]:
    return sorted(m["n"] for m in messages)


def depth(role: str) -> int:
    """Messages on the queue, visible or in flight."""
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=queue_url(role),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def dead_letter_bodies(role: str) -> list[str]:
    """The raw bodies waiting in a queue's dead-letter queue."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().dead_letter_queue_name(role))["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [m["Body"] for m in received.get("Messages", [])]


def test_handler_reports_exactly_the_failing_records():
    enqueue("feedback", mixed_batch())
    received = client("sqs").receive_message(
        QueueUrl=queue_url("feedback"), MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert len({m["MessageId"] for m in received}) == 10  # unique ids, or the test proves nothing

    response = invoke("feedback", sqs_event("feedback", received))

    failing_ids = {m["MessageId"] for m in received if json.loads(m["Body"])["kind"] == FAIL}
    reported = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert sorted(reported) == sorted(failing_ids)
    assert len(reported) == len(FAILING)
    assert numbers(handled) == SUCCEEDING


def test_successes_are_deleted_and_failures_retried_until_the_dead_letter_queue():
    enqueue("feedback", mixed_batch())

    assert poll_once("feedback", redeliver_failures=True) == 10
    assert numbers(handled) == SUCCEEDING
    assert depth("feedback") == len(FAILING)  # the successes are gone for good

    drain(["feedback"])

    assert numbers(handled) == SUCCEEDING  # never redelivered
    assert len(failed_attempts) == len(FAILING) * MAX_RECEIVE_COUNT
    assert numbers(failed_attempts[: len(FAILING)]) == FAILING
    assert depth("feedback") == 0
    assert numbers([json.loads(b) for b in dead_letter_bodies("feedback")]) == FAILING


def test_a_batch_larger_than_one_receive_is_gathered_and_deleted_ten_at_a_time():
    """Lambda fills a batch of up to ``batch_size`` (100 for feedback) with several
    receives; the local poller must too, or the benchmark and the embedded stack would run
    a batch shape AWS never produces."""
    batch_size = herald_resources(get_settings()).queue("feedback").batch_size
    assert batch_size > 10
    enqueue("feedback", [{"kind": OK, "n": n} for n in range(batch_size + 5)])

    assert poll_once("feedback") == batch_size  # one invocation, one batch
    assert len(handled) == batch_size
    assert depth("feedback") == 5  # every handled message deleted, the rest still queued
    assert poll_once("feedback") == 5
    assert numbers(handled) == list(range(batch_size + 5))


def test_messages_nobody_handles_go_to_the_dead_letter_queue():
    enqueue("feedback", [{"kind": "test.unheard-of", "n": 1}, {"kind": OK, "n": 2}])
    client("sqs").send_message(QueueUrl=queue_url("feedback"), MessageBody="not json")

    drain(["feedback"])

    assert handled == [{"kind": OK, "n": 2}]
    assert depth("feedback") == 0
    assert sorted(dead_letter_bodies("feedback")) == sorted(
        ['{"kind":"test.unheard-of","n":1}', "not json"]
    )
