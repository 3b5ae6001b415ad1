"""What Lambda's SQS event source mapping does, done by hand against moto.

``poll_once`` receives up to a handler's batch size from a queue, builds the event Lambda
would build (one record per message, real field names, unique ``messageId``s), invokes the
real handler from app.py, and deletes only the messages the handler did not report in
``batchItemFailures``. The rest stay on the queue and come back after their visibility
timeout, or at once when ``redeliver_failures`` is set, until SQS moves them to the
dead-letter queue. The local runner polls in a thread per queue; tests and benchmarks call
``drain`` to run everything queued until every queue is empty.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Any

from chalicelib.aws import client
from chalicelib.pipeline.queues import queue_url
from chalicelib.resources import herald_resources
from chalicelib.settings import QUEUE_ROLES, QueueRole, get_settings

SQS_RECEIVE_LIMIT = 10  # messages per ReceiveMessage and per DeleteMessageBatch


class LambdaContext:
    """The parts of Lambda's context object that Powertools and Chalice read."""

    def __init__(self, function_name: str, timeout_seconds: int) -> None:
        settings = get_settings()
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "local"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{settings.region}:{settings.account_id}:function:{function_name}"
        )
        self._timeout_ms = timeout_seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


def sqs_event(role: QueueRole, messages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The Lambda event for ``messages`` as returned by ReceiveMessage from ``role``'s queue."""
    settings = get_settings()
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody")
                or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": settings.queue_arn(role),
                "awsRegion": settings.region,
            }
            for message in messages
        ]
    }


# Lambda runs each concurrent invocation in its own execution environment; here every
# handler shares one process, and module state (Powertools' logger keys and metric set)
# would leak between threads. The local runner therefore runs one invocation at a time.
invocation_lock = threading.RLock()


def invoke_handler(name: str, event: dict[str, Any], timeout_seconds: int) -> Any:
    """Call app.py's function ``name`` with ``event`` exactly as Lambda would."""
    import app as herald  # the real handlers; imported late so settings are final first

    handler = getattr(herald, name)
    with invocation_lock:
        return handler(event, LambdaContext(name, timeout_seconds))


def invoke(role: QueueRole, event: dict[str, Any]) -> dict[str, Any]:
    """Call app.py's consumer for ``role`` exactly as Lambda would; returns its response."""
    spec = herald_resources(get_settings()).queue(role)
    response = invoke_handler(spec.handler, event, spec.consumer_timeout_seconds)
    return response if isinstance(response, dict) else {}


def poll_once(role: QueueRole, *, wait_seconds: int = 0, redeliver_failures: bool = False) -> int:
    """Receive one batch from ``role``'s queue and run it; returns how many messages came.

    As Lambda's event source mapping does, a batch larger than SQS's 10 messages per
    ReceiveMessage is gathered with several receives (until the batch is full or the queue
    has nothing more to give: the batching window, locally, is "what is there now"), and
    the handled messages are deleted 10 per DeleteMessageBatch.
    """
    spec = herald_resources(get_settings()).queue(role)
    sqs = client("sqs")
    url = queue_url(role)
    received: list[dict[str, Any]] = []
    while len(received) < spec.batch_size:
        more = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(spec.batch_size - len(received), SQS_RECEIVE_LIMIT),
            WaitTimeSeconds=0 if received else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        received.extend(more)
        if len(more) < SQS_RECEIVE_LIMIT:
            break
    if not received:
        return 0
    response = invoke(role, sqs_event(role, received))
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    done = [m for m in received if m["MessageId"] not in failed]
    for start in range(0, len(done), SQS_RECEIVE_LIMIT):
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + SQS_RECEIVE_LIMIT])
            ],
        )
    if redeliver_failures:
        for message in received:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
    return len(received)


def drain(roles: Iterable[QueueRole] = QUEUE_ROLES, *, max_batches: int = 100_000) -> int:
    """Run every queued message (and whatever it queues) until all ``roles`` are empty.

    Failed messages are redelivered at once, so a message that always fails reaches the
    dead-letter queue after ``maxReceiveCount`` tries instead of hiding for minutes.
    Returns how many messages were handled; raises if the queues never empty.
    """
    roles = tuple(roles)
    handled = 0
    for _ in range(max_batches):
        handled_this_round = sum(poll_once(r, redeliver_failures=True) for r in roles)
        if not handled_this_round:
            return handled
        handled += handled_this_round
    raise RuntimeError(f"queues {roles} still had work after {max_batches} batches")
