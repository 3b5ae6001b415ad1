"""Outgoing notifications: aggregated event callbacks and signed webhooks, with retries.

Callbacks (seed 003). The feedback worker (and the sender, for ``submitted``) hands each
batch's first-time events to ``buffer_callbacks``: one chunk item per (campaign, event)
per batch joins the window open at that moment. The first batch of a window also queues
a ``callback.flush`` delayed until the window ends; the one-minute tick re-queues any
window whose flush went missing. The flush turns the window into POSTs (500 addresses
each) queued as ``http.deliver`` messages, so a flush never waits on a receiver. Delivery
is at most window + a few seconds after the event, well inside the seed's five minutes.

Webhooks. ``notify_webhooks`` (chalicelib.services.notices, so that services emit them
too) queues one ``http.deliver`` per (event, endpoint that wants it); the body is fixed
when queued, and each attempt is signed afresh (new timestamp, same ``webhook-id``).

Delivery. ``deliver`` POSTs through the SSRF-safe client, under one deadline per attempt
(``Settings.callback_deadline_seconds``), so a batch of 10 ends inside the worker's timeout
whatever the receivers do. Each record of a batch is its own delivery: one that raises
fails only itself (partial batch failure, ``pipeline.dispatch``), and every attempt that
POSTed is recorded (``store.webhooks.record_attempt_ran``) before anything follows from
it, so a message that comes back (a retried record, a batch whose worker died) never
POSTs the same attempt twice to a receiver that already had it. A failure is retried on
``RETRY_SCHEDULE_SECONDS`` by re-queueing the message with its next attempt time: SQS
delays at most 15 minutes, so a longer wait is a chain of delayed hops (each hop is one
receive and one send, about a millionth of a dollar). 410 Gone stops a delivery and
disables a webhook endpoint; a refused address stops it at once. After the last attempt
the message is moved to the callbacks dead-letter queue explicitly (letting SQS redrive
it would re-POST on every receive). Failures are logged per target for the API.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.aws import client
from chalicelib.channels.http import HttpOutcome, RefusedTarget, post
from chalicelib.domain import clock
from chalicelib.domain.callbacks import (
    FORM_CONTENT_TYPE,
    callback_form,
    in_posts,
    window_start,
)
from chalicelib.domain.errors import NotFound
from chalicelib.domain.feedback import CallbackEvent, Channel
from chalicelib.domain.webhooks import retry_delay, signed_headers, verdict
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import CallbackFlush, HttpDelivery
from chalicelib.pipeline.queues import enqueue
from chalicelib.services.notices import new_delivery
from chalicelib.settings import get_settings
from chalicelib.store import callbacks as buffer
from chalicelib.store import webhooks as endpoints
from chalicelib.store.webhooks import DeliveryAttempt

SQS_MAX_DELAY_SECONDS = 900
FLUSH_GRACE_SECONDS = 2  # lets a batch that read the clock just before the end land first
FLOW_WEBHOOK = "flow.webhook"  # the ``type`` of a flow webhook node's body


# -- aggregated callbacks -----------------------------------------------------------------
@dataclass(frozen=True)
class CallbackHit:
    """One address that had ``event``, for a campaign whose callback URL is ``url``."""

    tenant_id: str
    campaign_id: str
    channel: Channel
    url: str
    event: CallbackEvent
    address: str
    message_id: str
    occurred_at: datetime


class _OpenedWindows:
    """Windows this process has already registered, so a batch skips the pointer write.

    Forgets windows once they are over: the set stays as small as the open windows.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, int], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(window: buffer.Window) -> tuple[str, str, str, int]:
        return (window.tenant_id, window.campaign_id, window.event, window.start)

    def known(self, window: buffer.Window, now: datetime) -> bool:
        moment = int(now.timestamp())
        with self._lock:
            for stale in [k for k, due in self._seen.items() if due < moment]:
                del self._seen[stale]
            return self._key(window) in self._seen

    def remember(self, window: buffer.Window) -> None:
        with self._lock:
            self._seen[self._key(window)] = window.due


_opened = _OpenedWindows()


def buffer_callbacks(hits: Iterable[CallbackHit]) -> int:
    """Add a batch's callback events to their windows; returns how many chunks it wrote."""
    groups: dict[tuple[str, str, CallbackEvent, str, Channel], list[CallbackHit]] = {}
    for hit in hits:
        key = (hit.tenant_id, hit.campaign_id, hit.event, hit.url, hit.channel)
        groups.setdefault(key, []).append(hit)
    seconds = get_settings().callback_window_seconds
    for (tenant_id, campaign_id, event, url, channel), group in groups.items():
        now = clock.now()  # read per group, right before its write: see FLUSH_GRACE_SECONDS
        start = window_start(now, seconds)
        window = buffer.Window(tenant_id, campaign_id, event, start, start + seconds)
        chunk = buffer.Chunk(
            url=url,
            channel=channel,
            addresses=list(dict.fromkeys(h.address for h in group)),
            first_at=int(min(h.occurred_at for h in group).timestamp()),
        )
        buffer.buffer_chunk(window, _chunk_key(url, group), chunk, now)
        if not _opened.known(window, now):
            if buffer.register_window(window, now):  # the window's first batch anywhere
                delay = window.due - int(now.timestamp()) + FLUSH_GRACE_SECONDS
                enqueue("callbacks", [_flush_message(window)], delay_seconds=_sqs_delay(delay))
            _opened.remember(window)
    return len(groups)


def _chunk_key(url: str, group: Sequence[CallbackHit]) -> str:
    """The same messages give the same key: a retried batch rewrites its own chunk."""
    digest = hashlib.sha256(url.encode())
    for message_id in sorted(h.message_id for h in group):
        digest.update(b"\x00" + message_id.encode())
    return digest.hexdigest()[:32]


def _flush_message(window: buffer.Window) -> dict[str, Any]:
    return CallbackFlush(
        tenant_id=window.tenant_id,
        campaign_id=window.campaign_id,
        event=window.event,
        start=window.start,
        due=window.due,
    ).as_message()


def _sqs_delay(seconds: float) -> int:
    return max(0, min(SQS_MAX_DELAY_SECONDS, int(seconds)))


def queue_due_flushes(now: datetime) -> None:
    """Re-queue the flush of every window that is due (normally none: the delayed flush
    message got there first and removed the window)."""
    due = buffer.due_windows(now - timedelta(seconds=FLUSH_GRACE_SECONDS))
    if due:
        enqueue("callbacks", [_flush_message(w) for w in due])
        metrics.add_metric(name="callback_windows_swept", unit="Count", value=len(due))


def flush_window(message: dict[str, Any]) -> None:
    """Turn one window into queued POSTs, once (a claim keeps a second flush out)."""
    flush = CallbackFlush.model_validate(message)
    window = buffer.Window(flush.tenant_id, flush.campaign_id, flush.event, flush.start, flush.due)
    now = clock.now()
    if not buffer.claim_window(window, now):
        return
    chunks = buffer.read_window(window)
    posts: dict[tuple[str, Channel], tuple[list[str], int]] = {}
    for _, chunk in chunks:
        addresses, first_at = posts.get((chunk.url, chunk.channel), ([], chunk.first_at))
        addresses.extend(chunk.addresses)
        posts[(chunk.url, chunk.channel)] = (addresses, min(first_at, chunk.first_at))
    deliveries = [
        new_delivery(
            tenant_id=window.tenant_id,
            target="callback",
            target_id=window.campaign_id,
            event_type=window.event,
            url=url,
            body=callback_form(window.event, when, channel, part).decode(),
        )
        for (url, channel), (addresses, when) in posts.items()
        for part in in_posts(list(dict.fromkeys(addresses)))
    ]
    enqueue("callbacks", [d.as_message() for d in deliveries])
    buffer.clear_window(window, [key for key, _ in chunks])


def call_flow_webhook(
    tenant_id: str, campaign_id: str, url: str, step_key: str, data: Mapping[str, Any]
) -> None:
    """Queue a flow's webhook node: one signed POST of ``data`` to ``url``, retried like
    every delivery, its ``webhook-id`` the step key (the same on every retry of the step,
    so receivers dedupe a step queued twice by a worker that died before its claim)."""
    envelope = {"type": FLOW_WEBHOOK, "timestamp": clock.now().isoformat(), "data": dict(data)}
    body = json.dumps(envelope, separators=(",", ":"), default=str)
    delivery = HttpDelivery(
        tenant_id=tenant_id,
        target="flow",
        target_id=campaign_id,
        event_type=FLOW_WEBHOOK,
        delivery_id=step_key,
        body=body,
        url=url,
    )
    enqueue("callbacks", [delivery.as_message()])


# -- delivery -----------------------------------------------------------------------------
def deliver(body: dict[str, Any]) -> None:
    """One attempt of one delivery; schedules the next attempt or ends the delivery."""
    message = HttpDelivery.model_validate(body)
    now = clock.now()
    wait = message.not_before - int(now.timestamp())
    if wait > 0:  # a hop of a long retry delay: not yet
        enqueue("callbacks", [message.as_message()], delay_seconds=_sqs_delay(wait))
        return
    tenant_id, delivery_id, attempt = message.tenant_id, message.delivery_id, message.attempt
    if endpoints.attempt_ran(tenant_id, delivery_id, attempt):
        return  # this message came back after its attempt ran: the receiver already has it
    request = _request(message, now)
    if request is None:
        return
    url, headers = request
    try:
        outcome = post(url, message.body.encode(), headers)
    except RefusedTarget as refused:
        endpoints.record_attempt_ran(tenant_id, delivery_id, attempt, "refused", now)
        _end(message, now, "refused", HttpOutcome(status=None, error=str(refused)))
        _dead_letter(message, str(refused))
        return
    decision = verdict(outcome.status, attempt)
    endpoints.record_attempt_ran(tenant_id, delivery_id, attempt, decision, now)
    if decision == "delivered":
        if attempt > 1:
            _end(message, now, "delivered", outcome)
    elif decision == "gone":
        _end(message, now, "gone", outcome)
        if message.target == "webhook":
            endpoints.disable_endpoint(
                message.tenant_id, message.target_id, "the endpoint answered 410 Gone", now
            )
    elif decision == "retry":
        _end(message, now, "retrying", outcome)
        delay = retry_delay(attempt)
        following = message.model_copy(
            update={"attempt": attempt + 1, "not_before": int(now.timestamp()) + delay}
        )
        enqueue("callbacks", [following.as_message()], delay_seconds=_sqs_delay(delay))
    else:
        _end(message, now, "dead_lettered", outcome)
        _dead_letter(message, outcome.error or f"HTTP {outcome.status}")


def _request(message: HttpDelivery, now: datetime) -> tuple[str, dict[str, str]] | None:
    """The URL and headers of this attempt; None when the webhook endpoint is gone or off.

    Every kind is signed the Standard Webhooks way: a webhook with its endpoint's secret,
    an event callback (seed 003, whose clients ignore the extra headers) and a flow's
    webhook node (JSON, its ``webhook-id`` the step key) with the tenant's callback secret
    (``GET /v1/callbacks/signing-secret``)."""
    body = message.body.encode()
    moment = int(now.timestamp())
    if message.target in ("callback", "flow"):
        assert message.url is not None  # both are queued with their URL
        secret = endpoints.callback_signing_secret(message.tenant_id)
        headers = signed_headers(secret, message.delivery_id, moment, body)
        if message.target == "flow":
            return message.url, headers
        return message.url, {**headers, "Content-Type": FORM_CONTENT_TYPE}
    try:
        endpoint, secret = endpoints.get_signing_endpoint(message.tenant_id, message.target_id)
    except NotFound:
        return None
    if not endpoint.enabled:
        return None
    return endpoint.url, signed_headers(secret, message.delivery_id, moment, body)


def _end(message: HttpDelivery, now: datetime, outcome: str, result: HttpOutcome) -> None:
    """Log an attempt that did not simply succeed (the API shows these)."""
    endpoints.log_attempt(
        message.tenant_id,
        message.target_id,
        DeliveryAttempt(
            delivery_id=message.delivery_id,
            event_type=message.event_type,
            attempt=message.attempt,
            at=now,
            outcome=outcome,
            status=result.status,
            error=result.error,
        ),
    )
    if outcome != "delivered":
        metrics.add_metric(name=f"{message.target}_delivery_{outcome}", unit="Count", value=1)


def _dead_letter(message: HttpDelivery, reason: str) -> None:
    """Move a delivery that will never succeed to the callbacks DLQ, where it is kept.

    The DLQ's URL is looked up each time: this is the rare path, and no cache can then
    outlive an endpoint switch."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().dead_letter_queue_name("callbacks"))
    sqs.send_message(
        QueueUrl=url["QueueUrl"],
        MessageBody=json.dumps({**message.as_message(), "failure": reason}, separators=(",", ":")),
    )
    logger.warning(
        "delivery dead-lettered",
        extra={"target": message.target, "target_id": message.target_id, "reason": reason},
    )
