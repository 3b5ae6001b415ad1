"""Putting work on Herald's queues: always batched, ten messages per SendMessageBatch."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.aws import client
from chalicelib.settings import QueueRole, get_settings

SQS_BATCH_LIMIT = 10
_urls: dict[str, str] = {}
_lock = threading.Lock()


def queue_url(role: QueueRole) -> str:
    """The queue's URL, looked up once per process."""
    name = get_settings().queue_name(role)
    if name not in _urls:
        with _lock:
            _urls[name] = client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    return _urls[name]


def forget_queue_urls() -> None:
    """Tests and the local runner switch endpoints; cached URLs must go with them."""
    _urls.clear()


def enqueue(role: QueueRole, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
    """Send ``messages`` (JSON objects with a ``kind``) to a queue; returns how many were sent.

    Raises if SQS refuses any entry after a retry, so a caller never believes work was
    queued when it was not.
    """
    return enqueue_delayed(role, ((message, delay_seconds) for message in messages))


def enqueue_delayed(role: QueueRole, messages: Iterable[tuple[Mapping[str, Any], int]]) -> int:
    """``enqueue`` with a ``DelaySeconds`` of each message's own (the timer sweep's: each
    due contact waits the rest of its minute), still ten to a SendMessageBatch."""
    url = queue_url(role)
    sqs = client("sqs")
    sent = 0
    batch: list[dict[str, Any]] = []
    for message, delay_seconds in messages:
        batch.append(
            {
                "Id": str(len(batch)),
                "MessageBody": json.dumps(message, separators=(",", ":"), default=str),
                "DelaySeconds": delay_seconds,
            }
        )
        if len(batch) == SQS_BATCH_LIMIT:
            sent += _send_batch(sqs, url, batch)
            batch = []
    if batch:
        sent += _send_batch(sqs, url, batch)
    return sent


def _send_batch(sqs: Any, url: str, entries: list[dict[str, Any]]) -> int:
    pending = entries
    for _ in range(3):
        response = sqs.send_message_batch(QueueUrl=url, Entries=pending)
        failed_ids = {f["Id"] for f in response.get("Failed", [])}
        if not failed_ids:
            return len(entries)
        pending = [e for e in pending if e["Id"] in failed_ids]
    raise RuntimeError(f"SQS refused {len(pending)} of {len(entries)} messages")
