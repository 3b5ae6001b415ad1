"""Push devices and the on-site inbox.

For the tenant's backend (API key):
- ``POST /v1/contacts/{contact_id}/devices`` ``{platform, token, sender_id?}`` registers a
  device for push (201; the same token again: 200 with the device registered first);
- ``POST /v1/contacts/{contact_id}/token`` issues a contact token: the backend hands it to
  the contact's page or app, which reads the inbox with it.

For the end user (``Authorization: Bearer <contact token>``, never a query parameter:
URLs land in access logs):
- ``GET /v1/inbox``: the contact's on-site messages, newest first;
- ``POST /v1/inbox/{inbox_message_id}/read``: marks one read, which is the message's open.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint, to_response
from chalicelib.channels import receipts
from chalicelib.domain import clock
from chalicelib.domain.contacts import Device, PushPlatformName
from chalicelib.domain.onsite import ContactClaim, InboxMessage
from chalicelib.services import devices
from chalicelib.settings import get_settings
from chalicelib.store import contacts as contact_store
from chalicelib.store import onsite_inbox
from chalicelib.store.secrets import contact_token

blueprint = Blueprint(__name__)


class RegisterDevice(Input):
    platform: PushPlatformName = Field(description="APNS, APNS_SANDBOX or GCM (FCM).")
    token: str = Field(
        min_length=1, max_length=4096, pattern=r"^\S+$", description="The device token."
    )
    sender_id: str | None = Field(
        default=None,
        max_length=100,
        description="The push sender (platform application); needed only when the tenant "
        "has more than one for the platform.",
    )


class DeviceView(ApiModel):
    platform: str
    token: str
    sender_id: str
    registered_at: datetime

    @classmethod
    def of(cls, device: Device) -> DeviceView:
        return cls(**device.model_dump(exclude={"endpoint_arn"}))


class ContactToken(ApiModel):
    token: str
    expires_at: datetime


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}/devices",
    "POST",
    auth="tenant",
    tag="contacts",
    status=201,
    summary="Register a contact's device for push (201 registered; 200 already was)",
    body=RegisterDevice,
    response=DeviceView,
)
def register_device(call: Call) -> object:
    device, created = devices.register_device(
        call.tenant_id,
        call.params["contact_id"],
        platform=call.body.platform,
        token=call.body.token,
        sender_id=call.body.sender_id,
        now=clock.now(),
    )
    return to_response(DeviceView.of(device), 201 if created else 200)


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}/token",
    "POST",
    auth="tenant",
    tag="contacts",
    status=201,
    summary="Issue a contact token: what the contact's page sends to read its on-site inbox",
    response=ContactToken,
)
def issue_contact_token(call: Call) -> ContactToken:
    contact = contact_store.get_contact(call.tenant_id, call.params["contact_id"])
    expires = clock.now() + timedelta(days=get_settings().contact_token_days)
    claim = ContactClaim(call.tenant_id, contact.id, int(expires.timestamp()))
    return ContactToken(token=contact_token(claim), expires_at=expires)


@endpoint(
    blueprint,
    "/v1/inbox",
    "GET",
    auth="contact",
    tag="inbox",
    summary="The contact's on-site messages, newest first (contact token)",
    query=ListQuery,
    response=ListPage[InboxMessage],
)
def list_inbox(call: Call) -> ListPage[InboxMessage]:
    messages, cursor = onsite_inbox.list_messages(
        call.tenant_id, call.contact_id, cursor=call.query.cursor, limit=call.query.limit
    )
    return ListPage[InboxMessage](items=messages, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/inbox/{inbox_message_id}/read",
    "POST",
    auth="contact",
    tag="inbox",
    summary="Mark an on-site message read: its open (contact token; idempotent)",
    response=InboxMessage,
)
def read_message(call: Call) -> InboxMessage:
    now = clock.now()
    message, first = onsite_inbox.mark_read(
        call.tenant_id, call.contact_id, call.params["inbox_message_id"], now
    )
    if first:
        campaign_id, herald_message_id = onsite_inbox.campaign_of(
            call.tenant_id, call.contact_id, message.id
        )
        if campaign_id and herald_message_id:
            receipts.report(
                "opened",
                "onsite",
                receipts.message_tags(call.tenant_id, campaign_id, herald_message_id),
                recipient=call.contact_id,
                provider_message_id=message.id,
                at=now,
            )
    return message
