"""From an SQS batch to the function that handles each message, with partial failures.

Every message Herald puts on a queue is JSON with a ``kind`` (what to do) and usually a
``tenant_id`` (``chalicelib.pipeline.messages``). Each queue's Lambda handler hands its
batch to ``handle_batch`` with the queue's ``Consumer`` (app.py's table says which
function handles which kind), which runs each record's handler, catching what it raises,
and returns ``{"batchItemFailures": [...]}``: only the records that failed come back, and (with
``ReportBatchItemFailures`` on the event source mapping, set in infra/) only they are
retried and, after ``maxReceiveCount`` receives, dead-lettered. Chalice cannot set that
flag itself (aws/chalice#2029); the local poller honours the same response.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.feedback import is_s3_notification, is_ses_record
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import EVENTBRIDGE, S3, SES, SNS
from chalicelib.settings import QueueRole

MessageHandler = Callable[[dict[str, Any]], None]
BatchScope = Callable[[], AbstractContextManager[object]]
BatchReader = Callable[[Sequence[dict[str, Any]]], None]


class UnknownMessage(Exception):
    """A message no handler is listed for: it fails, and ends in the dead-letter queue."""


@dataclass(frozen=True)
class Consumer:
    """What one queue's Lambda runs: the handler of each message kind, and batch scopes.

    A scope is a context manager entered around every batch, for handlers that gather
    what their records did and write it once per batch instead of once per record (the
    feedback worker's counters and callback buffer). If a scope's exit raises, every
    record of the batch is reported failed and retried.

    ``ahead``, inside the scopes and before any record is handled, is given every message
    of the batch that decodes: to read what the batch's handlers need in one request
    instead of one per record (the flow worker's wakes). It only reads: if it fails, it
    is logged and each handler reads for itself.
    """

    handlers: Mapping[str, MessageHandler]
    scopes: Sequence[BatchScope] = ()
    ahead: BatchReader | None = None


def decode(role: QueueRole, consumer: Consumer, body: str) -> tuple[MessageHandler, dict[str, Any]]:
    """The handler for a message body and the message itself."""
    try:
        message = json.loads(body)
    except ValueError as error:
        raise UnknownMessage(f"{role} message is not JSON") from error
    if not isinstance(message, dict):
        raise UnknownMessage(f"{role} message is not a JSON object")
    kind = message.get("kind")
    if kind is None and "detail-type" in message and "detail" in message:
        kind = EVENTBRIDGE  # an EventBridge envelope, delivered by a bus rule as is
    if kind is None and message.get("Type") == "Notification" and "TopicArn" in message:
        kind = SNS
    if kind is None and is_s3_notification(message):
        kind = S3  # a new object of SES events (Firehose's), or S3's test event
    if kind is None and is_ses_record(message):
        kind = SES  # one of an object's SES records, queued again alone
    handler = consumer.handlers.get(str(kind))
    if handler is None:
        raise UnknownMessage(f"no handler for kind {kind!r} on {role}")
    return handler, message


def handle_batch(
    role: QueueRole, consumer: Consumer, event: dict[str, Any], context: Any = None
) -> dict[str, Any]:
    """Process one Lambda SQS event; returns the records to retry as ``batchItemFailures``.

    A plain loop rather than Powertools' ``BatchProcessor``, which wrapped every record in
    a data class and ran its own bookkeeping around each handler call (≈ 50 µs a record,
    a sixth of the feedback worker's own time per event, for what these lines do).
    ``context`` is the Lambda context, unused (the handlers take the message only).
    """
    records = event.get("Records", [])
    decoded = [_decoded(role, consumer, record["body"]) for record in records]
    failed: list[dict[str, str]] = []
    try:
        with ExitStack() as scopes:
            for scope in consumer.scopes:
                scopes.enter_context(scope())
            if consumer.ahead is not None:
                messages = [found[1] for found in decoded if not isinstance(found, Exception)]
                _read_ahead(role, consumer.ahead, messages)
            for record, found in zip(records, decoded, strict=True):
                try:
                    if isinstance(found, Exception):
                        raise found
                    _handle_record(*found)
                except Exception:
                    logger.exception("message failed", extra={"queue": role})
                    failed.append({"itemIdentifier": record["messageId"]})
    except Exception:  # a batch scope could not record the batch's effects: retry it all
        logger.exception("batch scope failed", extra={"queue": role})
        failed = [{"itemIdentifier": r["messageId"]} for r in records]
    metrics.add_metric(name=f"{role}_messages", unit="Count", value=len(records))
    if failed:
        metrics.add_metric(name=f"{role}_failures", unit="Count", value=len(failed))
        logger.warning("batch had failures", extra={"queue": role, "failures": len(failed)})
    return {"batchItemFailures": failed}


def _decoded(
    role: QueueRole, consumer: Consumer, body: str
) -> tuple[MessageHandler, dict[str, Any]] | UnknownMessage:
    """``decode`` once per record, for the read-ahead and the handler both; an unknown
    message is kept to fail its record when it is handled."""
    try:
        return decode(role, consumer, body)
    except UnknownMessage as unknown:
        return unknown


def _handle_record(handler: MessageHandler, message: dict[str, Any]) -> None:
    if message.get("tenant_id"):
        logger.append_keys(tenant_id=message["tenant_id"])
    if message.get("campaign_id"):
        logger.append_keys(campaign_id=message["campaign_id"])
    try:
        handler(message)
    finally:
        logger.remove_keys(["tenant_id", "campaign_id"])


def _read_ahead(role: QueueRole, ahead: BatchReader, messages: list[dict[str, Any]]) -> None:
    """``consumer.ahead`` with the batch's decoded messages (see ``Consumer``)."""
    try:
        ahead(messages)
    except Exception:
        logger.exception("batch read-ahead failed: each record reads for itself")
        metrics.add_metric(name=f"{role}_read_ahead_failures", unit="Count", value=1)
