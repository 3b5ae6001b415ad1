"""Telling a tenant's webhook endpoints what happened: one queued delivery per (event,
endpoint that wants it).

Here, below the handlers, because use cases emit webhooks too (``enrollment.entered``
from the enrolment service, ``campaign.paused``), and the queue workers (the feedback
worker's ``message.*``) call the same function. The deliveries themselves (signing,
retries, 410 Gone) are the callbacks worker's (chalicelib.pipeline.callbacks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from chalicelib.domain.campaigns import PAUSE_MANUAL, Campaign
from chalicelib.domain.webhooks import (
    WebhookEndpoint,
    WebhookEventType,
    new_delivery_id,
    payload,
    wants,
)
from chalicelib.pipeline.messages import HttpDelivery
from chalicelib.pipeline.queues import enqueue
from chalicelib.store import webhooks as endpoints


@dataclass(frozen=True)
class WebhookNotice:
    """One event a tenant's webhook endpoints may want."""

    tenant_id: str
    event_type: WebhookEventType
    occurred_at: datetime
    data: Mapping[str, Any]


_looked_up: ContextVar[dict[str, list[WebhookEndpoint]] | None] = ContextVar(
    "webhook_endpoints", default=None
)


@contextmanager
def endpoints_looked_up_once() -> Iterator[None]:
    """Inside, each tenant's endpoints are read once, however often notices go out.

    A batch scope for queues whose messages each notify (a flow send's
    ``message.submitted``: one Query per send without it). An endpoint added, changed or
    disabled during the batch takes effect from the next batch, seconds later.
    """
    token = _looked_up.set({})
    try:
        yield
    finally:
        _looked_up.reset(token)


def _enabled_endpoints(tenant_id: str) -> list[WebhookEndpoint]:
    looked_up = _looked_up.get()
    if looked_up is not None and tenant_id in looked_up:
        return looked_up[tenant_id]
    enabled = [e for e, _ in endpoints.signing_endpoints(tenant_id) if e.enabled]
    if looked_up is not None:
        looked_up[tenant_id] = enabled
    return enabled


def notify_webhooks(notices: Iterable[WebhookNotice]) -> int:
    """Queue a delivery per (notice, enabled endpoint wanting it): one Query per tenant
    (per batch inside ``endpoints_looked_up_once``)."""
    by_tenant: dict[str, list[WebhookNotice]] = {}
    for notice in notices:
        by_tenant.setdefault(notice.tenant_id, []).append(notice)
    deliveries: list[HttpDelivery] = []
    for tenant_id, tenant_notices in by_tenant.items():
        registered = _enabled_endpoints(tenant_id)
        for notice in tenant_notices:
            wanting = [e for e in registered if wants(e.event_types, notice.event_type)]
            if not wanting:  # most events of most tenants: no body to write
                continue
            body = json.dumps(
                payload(notice.event_type, notice.occurred_at, dict(notice.data)),
                separators=(",", ":"),
                default=str,
            )
            deliveries.extend(
                new_delivery(
                    tenant_id=tenant_id,
                    target="webhook",
                    target_id=endpoint.id,
                    event_type=notice.event_type,
                    url=None,
                    body=body,
                )
                for endpoint in wanting
            )
    if deliveries:
        enqueue("callbacks", [d.as_message() for d in deliveries])
    return len(deliveries)


def new_delivery(
    *,
    tenant_id: str,
    target: Literal["callback", "webhook"],
    target_id: str,
    event_type: str,
    url: str | None,
    body: str,
) -> HttpDelivery:
    """The first attempt of a delivery, under a new ``webhook-id`` its retries keep."""
    return HttpDelivery(
        tenant_id=tenant_id,
        target=target,
        target_id=target_id,
        event_type=event_type,
        delivery_id=new_delivery_id(),
        body=body,
        url=url,
    )


def campaign_paused(tenant_id: str, campaign: Campaign, now: datetime) -> WebhookNotice:
    """``campaign.paused`` for a broadcast or a flow just paused: ``reason`` is the code of
    a pause the campaign gave itself (``pause_reason``), else ``manual``."""
    return WebhookNotice(
        tenant_id,
        "campaign.paused",
        now,
        {
            "campaign_id": campaign.id,
            "number": campaign.number,
            "name": campaign.name,
            "type": campaign.type,
            "reason": campaign.pause_reason or PAUSE_MANUAL,
            "message": campaign.error_message,
        },
    )
