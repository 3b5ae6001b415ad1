"""Signed JSON webhooks (the Standard Webhooks scheme) and how deliveries are retried.

A tenant registers endpoints for the event types it wants. Each delivery is a JSON body
``{"type", "timestamp", "data"}`` with three headers: ``webhook-id`` (stable across
retries, so receivers can deduplicate), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature`` = ``v1,`` + base64 HMAC-SHA256 of
``"{id}.{timestamp}.{body}"`` keyed with the endpoint's secret (``whsec_`` + base64 key
bytes). Any Standard Webhooks library verifies it.

Failed deliveries (no 2xx) are retried on ``RETRY_SCHEDULE_SECONDS``; 410 Gone stops them
and disables a webhook endpoint. The same schedule applies to the aggregated event
callbacks, which are delivered by the same worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import Field

from chalicelib.domain.model import Model

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"

# Seconds to wait before attempt n+1 after attempt n failed (Standard Webhooks' example
# schedule): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h → 8 attempts over ~27.6 h.
RETRY_SCHEDULE_SECONDS: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1

WebhookEventType = Literal[
    "message.submitted",
    "message.delivered",
    "message.delayed",
    "message.soft_bounced",
    "message.bounced",
    "message.complained",
    "message.failed",
    "message.opened",
    "message.clicked",
    "message.unsubscribed",
    "message.replied",
    "enrollment.entered",
    "enrollment.exited",
    "campaign.paused",
]
WEBHOOK_EVENT_TYPES: tuple[WebhookEventType, ...] = get_args(WebhookEventType)
ALL_EVENTS = "*"


def message_event_type(kind: str) -> WebhookEventType:
    """The webhook type of a message event kind (``delivered`` → ``message.delivered``)."""
    for event_type in WEBHOOK_EVENT_TYPES:
        if event_type == f"message.{kind}":
            return event_type
    raise ValueError(f"no webhook event type for {kind!r}")


def new_endpoint_id() -> str:
    return "whk_" + uuid.uuid4().hex


def new_delivery_id() -> str:
    """The ``webhook-id`` of one event delivery: the same on every retry of it."""
    return "msg_" + uuid.uuid4().hex


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for (the base64-decoded part)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise ValueError("not a webhook secret") from error


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, delivery_id, timestamp, body),
    }


def payload(
    event_type: WebhookEventType, occurred_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of a webhook: Standard Webhooks' ``type``/``timestamp``/``data``."""
    return {"type": event_type, "timestamp": occurred_at.isoformat(), "data": data}


def wants(event_types: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``event_types`` receives ``event_type``."""
    return ALL_EVENTS in event_types or event_type in event_types


# -- delivery outcomes --------------------------------------------------------------------
Verdict = Literal["delivered", "retry", "gone", "give_up"]


def verdict(status: int | None, attempt: int) -> Verdict:
    """What to do after attempt number ``attempt`` (1-based) got ``status`` (None: no answer).

    2xx is delivered; 410 Gone means the receiver wants no more (stop, disable the
    endpoint); anything else, redirects included (they are not followed), is retried
    until the schedule runs out.
    """
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry" if attempt < MAX_ATTEMPTS else "give_up"


def retry_delay(attempt: int) -> int:
    """Seconds between failed attempt ``attempt`` (1-based) and the next one."""
    return RETRY_SCHEDULE_SECONDS[attempt - 1]


class WebhookEndpoint(Model):
    """A tenant's registered receiver. The secret is stored to sign, shown only once."""

    id: str
    url: str
    description: str = ""
    event_types: list[str] = Field(default_factory=lambda: [ALL_EVENTS])
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: datetime
    updated_at: datetime
