"""Webhook endpoints (``/v1/webhooks``): signed JSON deliveries of message events.

The signing secret is returned once, by the create; every delivery is signed with it per
Standard Webhooks (docs/feedback.md). URLs pass the SSRF check here (422 when they point
at a private, loopback, link-local or metadata address) and again at every delivery.
"""

from __future__ import annotations

from chalice import Blueprint
from pydantic import Field, field_validator

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.channels.http import check_url
from chalicelib.domain import clock
from chalicelib.domain.net import URL_MAX_LENGTH
from chalicelib.domain.webhooks import ALL_EVENTS, WEBHOOK_EVENT_TYPES, WebhookEndpoint
from chalicelib.services import limits
from chalicelib.store import webhooks as store
from chalicelib.store.webhooks import DeliveryAttempt

blueprint = Blueprint(__name__)
_EVENT_CHOICES = (ALL_EVENTS, *WEBHOOK_EVENT_TYPES)


def _event_types(values: list[str]) -> list[str]:
    unknown = [v for v in values if v not in _EVENT_CHOICES]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; choose from {list(_EVENT_CHOICES)}")
    return list(dict.fromkeys(values))


class CreateWebhook(Input):
    url: str = Field(min_length=1, max_length=URL_MAX_LENGTH)
    event_types: list[str] = Field(
        default_factory=lambda: [ALL_EVENTS],
        min_length=1,
        description=f"Event types to receive, or '{ALL_EVENTS}' for all.",
    )
    description: str = Field(default="", max_length=500)

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, values: list[str]) -> list[str]:
        return _event_types(values)


class UpdateWebhook(Input):
    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX_LENGTH)
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _event_types(values)


class WebhookCreated(WebhookEndpoint, ApiModel):
    secret: str = Field(description="The signing secret (whsec_…). Shown only in this response.")


class CallbackSecret(ApiModel):
    secret: str = Field(
        description="whsec_… key of the webhook-signature header on seed-003 event callbacks."
    )


class WebhookList(ApiModel):
    items: list[WebhookEndpoint]


def _checked(url: str) -> str:
    return check_url(url, field="url").url


@endpoint(
    blueprint,
    "/v1/webhooks",
    "POST",
    auth="tenant",
    tag="webhooks",
    status=201,
    summary="Register a webhook endpoint (its signing secret is shown once)",
    body=CreateWebhook,
    response=WebhookCreated,
)
def create_webhook(call: Call) -> WebhookCreated:
    body: CreateWebhook = call.body
    limits.check_room_for(call.tenant_id, "webhooks")
    created, secret = store.create_endpoint(
        call.tenant_id, _checked(body.url), body.event_types, body.description, clock.now()
    )
    return WebhookCreated(**created.model_dump(), secret=secret)


@endpoint(
    blueprint,
    "/v1/webhooks",
    "GET",
    auth="tenant",
    tag="webhooks",
    summary="List webhook endpoints",
    response=WebhookList,
)
def list_webhooks(call: Call) -> WebhookList:
    return WebhookList(items=store.list_endpoints(call.tenant_id))


@endpoint(
    blueprint,
    "/v1/webhooks/{webhook_id}",
    "GET",
    auth="tenant",
    tag="webhooks",
    summary="Get a webhook endpoint",
    response=WebhookEndpoint,
)
def get_webhook(call: Call) -> WebhookEndpoint:
    return store.get_endpoint(call.tenant_id, call.params["webhook_id"])


@endpoint(
    blueprint,
    "/v1/webhooks/{webhook_id}",
    "PATCH",
    auth="tenant",
    tag="webhooks",
    summary="Change a webhook endpoint; enabled=true re-enables one disabled by a 410",
    body=UpdateWebhook,
    response=WebhookEndpoint,
)
def update_webhook(call: Call) -> WebhookEndpoint:
    body: UpdateWebhook = call.body
    changes = body.model_dump(exclude_none=True)
    if body.url is not None:
        changes["url"] = _checked(body.url)
    webhook_id = call.params["webhook_id"]
    if not changes:
        return store.get_endpoint(call.tenant_id, webhook_id)
    return store.update_endpoint(call.tenant_id, webhook_id, changes, clock.now())


@endpoint(
    blueprint,
    "/v1/webhooks/{webhook_id}",
    "DELETE",
    auth="tenant",
    tag="webhooks",
    summary="Delete a webhook endpoint; queued deliveries to it are dropped",
)
def delete_webhook(call: Call) -> None:
    store.delete_endpoint(call.tenant_id, call.params["webhook_id"])


@endpoint(
    blueprint,
    "/v1/webhooks/{webhook_id}/deliveries",
    "GET",
    auth="tenant",
    tag="webhooks",
    summary="Recent failed delivery attempts to an endpoint, newest first",
    query=ListQuery,
    response=ListPage[DeliveryAttempt],
)
def list_deliveries(call: Call) -> ListPage[DeliveryAttempt]:
    webhook_id = call.params["webhook_id"]
    store.get_endpoint(call.tenant_id, webhook_id)  # NotFound for another tenant's id
    attempts, cursor = store.recent_attempts(
        call.tenant_id, webhook_id, call.query.limit, call.query.cursor
    )
    return ListPage[DeliveryAttempt](items=attempts, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/callbacks/signing-secret",
    "GET",
    auth="tenant",
    tag="webhooks",
    summary="The key that signs this tenant's event callbacks (Standard Webhooks headers)",
    response=CallbackSecret,
)
def callback_secret(call: Call) -> CallbackSecret:
    return CallbackSecret(secret=store.callback_signing_secret(call.tenant_id))
