"""Webhook endpoints and the log of their failed deliveries, in DynamoDB.

Layout (tenant scope prefix added by ScopedTable):
- ``WEBHOOK / <endpoint id>``                    the endpoint, with its signing secret
- ``DELIVERYLOG#<target id> / <at>#<id>#<attempt>`` one item per failed attempt (and the
  final outcome of a delivery that failed at least once), expiring after
  ``LOG_RETENTION``; the target is a webhook endpoint or a campaign (its event callback).
- ``CALLBACKSECRET / current`` the tenant's key for signing seed-003 event callbacks
  (Standard Webhooks headers, as webhooks are), made on first use.
- ``DELIVERYDONE#<delivery id> / <attempt>`` one small item per attempt that ran, written
  right after its POST, expiring after ``ATTEMPT_RETENTION``: a redelivered queue message
  (a batch retried, a worker that timed out) finds it and does not POST again.

Only failures are logged: a first-try success writes just its attempt item.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.model import Model
from chalicelib.domain.webhooks import WebhookEndpoint, new_endpoint_id, new_secret
from chalicelib.resources import TableSpec
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_ENDPOINTS = "WEBHOOK"
_LOG = "DELIVERYLOG"
MAX_ENDPOINTS = 20
LOG_RETENTION = timedelta(days=14)
_DONE = "DELIVERYDONE"
_CALLBACK_SECRET = "CALLBACKSECRET"  # noqa: S105  (a partition name)
# Longer than a queue message can come back: a callbacks message lives at most 4 days in
# SQS, but is received for the last time within minutes of its first receive.
ATTEMPT_RETENTION = timedelta(days=4)
_SECRET = "secret"  # noqa: S105  (the attribute name)


class DeliveryAttempt(Model):
    """One failed attempt, or how a delivery that had failed finally ended."""

    delivery_id: str
    event_type: str
    attempt: int
    at: datetime
    outcome: str  # "retrying", "delivered", "gone", "dead_lettered", "refused"
    status: int | None = None
    error: str | None = None


def _endpoint(item: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate({k: v for k, v in item.items() if k != _SECRET})


def create_endpoint(
    tenant_id: str, url: str, event_types: list[str], description: str, now: datetime
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (which no later read returns)."""
    table = tenant_table(tenant_id)
    if len(list(table.query_all(_ENDPOINTS, limit=MAX_ENDPOINTS + 1))) >= MAX_ENDPOINTS:
        raise ValidationFailed(f"at most {MAX_ENDPOINTS} webhook endpoints", field="url")
    endpoint = WebhookEndpoint(
        id=new_endpoint_id(),
        url=url,
        event_types=event_types,
        description=description,
        created_at=now,
        updated_at=now,
    )
    secret = new_secret()
    table.put(
        _ENDPOINTS,
        endpoint.id,
        {**endpoint.model_dump(mode="json"), _SECRET: secret},
        condition=Condition.absent(),
    )
    return endpoint, secret


def list_endpoints(tenant_id: str) -> list[WebhookEndpoint]:
    return [_endpoint(i) for i in tenant_table(tenant_id).query_all(_ENDPOINTS)]


def signing_endpoints(tenant_id: str) -> list[tuple[WebhookEndpoint, str]]:
    """Every endpoint with its secret (one Query): what the delivery side needs."""
    return [(_endpoint(i), i[_SECRET]) for i in tenant_table(tenant_id).query_all(_ENDPOINTS)]


def get_endpoint(tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    return get_signing_endpoint(tenant_id, endpoint_id)[0]


def get_signing_endpoint(tenant_id: str, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    item = tenant_table(tenant_id).get(_ENDPOINTS, endpoint_id)
    if item is None:
        raise NotFound(f"webhook '{endpoint_id}' not found", field="webhook_id")
    return _endpoint(item), item[_SECRET]


def update_endpoint(
    tenant_id: str, endpoint_id: str, changes: dict[str, Any], now: datetime
) -> WebhookEndpoint:
    """Change url/description/event_types/enabled; enabling clears the disabled reason."""
    remove = ["disabled_reason"] if changes.get("enabled") is True else []
    try:
        item = tenant_table(tenant_id).update(
            _ENDPOINTS,
            endpoint_id,
            set_values={**changes, "updated_at": now.isoformat()},
            remove=remove,
            condition=Condition.present(),
        )
    except ConditionFailed:
        raise NotFound(f"webhook '{endpoint_id}' not found", field="webhook_id") from None
    return _endpoint(item)


def disable_endpoint(tenant_id: str, endpoint_id: str, reason: str, now: datetime) -> None:
    """Stop deliveries to an endpoint (410 Gone); a vanished endpoint is left vanished."""
    with contextlib.suppress(ConditionFailed):
        tenant_table(tenant_id).update(
            _ENDPOINTS,
            endpoint_id,
            set_values={"enabled": False, "disabled_reason": reason, "updated_at": now.isoformat()},
            condition=Condition.present(),
        )


def delete_endpoint(tenant_id: str, endpoint_id: str) -> None:
    if tenant_table(tenant_id).delete(_ENDPOINTS, endpoint_id) is None:
        raise NotFound(f"webhook '{endpoint_id}' not found", field="webhook_id")


def log_attempt(tenant_id: str, target_id: str, attempt: DeliveryAttempt) -> None:
    """Keep a failed attempt (or a final outcome) for ``GET …/deliveries``; expires by TTL."""
    moment = attempt.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    tenant_table(tenant_id).put(
        f"{_LOG}#{target_id}",
        f"{moment}#{attempt.delivery_id}#{attempt.attempt:02d}",
        {
            **attempt.model_dump(mode="json"),
            TableSpec.ttl_attribute: int((attempt.at + LOG_RETENTION).timestamp()),
        },
    )


def recent_attempts(
    tenant_id: str, target_id: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[DeliveryAttempt], str | None]:
    """A page of the target's logged attempts, newest first."""
    page = tenant_table(tenant_id).query(
        f"{_LOG}#{target_id}", limit=limit, cursor=cursor, newest_first=True
    )
    return [DeliveryAttempt.model_validate(i) for i in page.items], page.cursor


def attempt_ran(tenant_id: str, delivery_id: str, attempt: int) -> bool:
    """Whether this attempt of this delivery already POSTed (its message came back)."""
    return tenant_table(tenant_id).get(f"{_DONE}#{delivery_id}", f"{attempt:02d}") is not None


def record_attempt_ran(
    tenant_id: str, delivery_id: str, attempt: int, outcome: str, now: datetime
) -> None:
    """Mark an attempt as run (before its follow-ups are queued), so it never runs twice."""
    tenant_table(tenant_id).put(
        f"{_DONE}#{delivery_id}",
        f"{attempt:02d}",
        {
            "outcome": outcome,
            "at": now.isoformat(),
            TableSpec.ttl_attribute: int((now + ATTEMPT_RETENTION).timestamp()),
        },
    )


def callback_signing_secret(tenant_id: str) -> str:
    """The tenant's secret for signing event callbacks, created on first use (a racing
    second creator loses the conditional put and reads the winner's)."""
    table = tenant_table(tenant_id)
    item = table.get(_CALLBACK_SECRET, "current")
    if item is not None:
        return str(item[_SECRET])
    secret = new_secret()
    try:
        table.put(_CALLBACK_SECRET, "current", {_SECRET: secret}, condition=Condition.absent())
    except ConditionFailed:
        return callback_signing_secret(tenant_id)
    return secret


def count_webhooks(tenant_id: str, *, at_most: int) -> int:
    """How many webhook endpoints the tenant has, counted up to ``at_most`` (for its limit)."""
    return tenant_table(tenant_id).count(_ENDPOINTS, at_most=at_most)
