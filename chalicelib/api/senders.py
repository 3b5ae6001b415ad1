"""Senders: the From identities (email) and origination ids (SMS) messages go out as,
and the push applications, Telegram bots and on-site senders of the other channels.

Push credentials and bot tokens are write-only: accepted on POST and PATCH, never
returned (docs/channels.md).

An email sender is usable only while SES has verified its address or its domain:
``GET /v1/senders/{id}`` asks SES live (and remembers the answer, which the listing
shows), ``POST /v1/senders/{id}/verify`` claims the identity for the tenant and asks SES
to start verifying. Identities are owned by tenants (chalicelib/services/senders.py):
another tenant's is refused 409 ``identity_owned``. Names, addresses and reply-to
addresses with CR, LF or NUL are refused (422 naming the field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain.senders import (
    IdentityStatus,
    Sender,
    SenderChannel,
    SenderFields,
    usability,
)
from chalicelib.services import senders as service
from chalicelib.store import senders as store

blueprint = Blueprint(__name__)


class SenderInput(SenderFields, Input):
    """A sender's fields. On PATCH only the fields sent change; null clears a field."""


class CreateSender(SenderInput):
    channel: SenderChannel


class VerifyRequest(Input):
    scope: Literal["address", "domain"] = Field(
        default="address",
        description="address: SES mails the From address a link. domain: verify the whole "
        "domain through DNS (DKIM) records.",
    )


class SenderView(ApiModel):
    id: str
    number: int
    channel: SenderChannel
    name: str
    from_email: str | None = None
    from_name: str | None = None
    reply_to: list[str]
    origination_number: str | None = None
    sender_id: str | None = None
    platform: str | None = None
    platform_application_arn: str | None = None
    bot_id: str | None = None
    verification: IdentityStatus | None = None
    usable: bool
    unusable_reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sender: Sender) -> SenderView:
        verdict = usability(sender, sender.verification)
        return cls(**sender.model_dump(), usable=verdict.usable, unusable_reason=verdict.reason)


class TransferIdentity(Input):
    identity: str = Field(
        min_length=1,
        max_length=320,
        description="An address, a domain, an E.164 origination number or an SMS sender id.",
    )
    tenant_id: str = Field(min_length=1, max_length=64)


@endpoint(
    blueprint,
    "/v1/senders",
    "POST",
    auth="tenant",
    tag="senders",
    status=201,
    summary="Create a sender (its SES verification status is checked at once)",
    body=CreateSender,
    response=SenderView,
)
def create_sender(call: Call) -> SenderView:
    fields = SenderFields.model_validate(call.body.model_dump(exclude={"channel"}))
    return SenderView.of(service.create_sender(call.tenant_id, call.body.channel, fields))


@endpoint(
    blueprint,
    "/v1/senders",
    "GET",
    auth="tenant",
    tag="senders",
    summary="List senders (verification as last checked)",
    query=ListQuery,
    response=ListPage[SenderView],
)
def list_senders(call: Call) -> ListPage[SenderView]:
    senders, cursor = store.list_senders(
        call.tenant_id, cursor=call.query.cursor, limit=call.query.limit
    )
    return ListPage[SenderView](items=[SenderView.of(s) for s in senders], next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/senders/{sender_id}",
    "GET",
    auth="tenant",
    tag="senders",
    summary="Get a sender with its live SES verification status",
    response=SenderView,
)
def get_sender(call: Call) -> SenderView:
    sender = store.get_sender(call.tenant_id, call.params["sender_id"])
    return SenderView.of(service.checked(call.tenant_id, sender))


@endpoint(
    blueprint,
    "/v1/senders/{sender_id}",
    "PATCH",
    auth="tenant",
    tag="senders",
    summary="Change a sender (a new from_email is checked with SES at once)",
    body=SenderInput,
    response=SenderView,
)
def update_sender(call: Call) -> SenderView:
    return SenderView.of(service.update_sender(call.tenant_id, call.params["sender_id"], call.body))


@endpoint(
    blueprint,
    "/v1/senders/{sender_id}",
    "DELETE",
    auth="tenant",
    tag="senders",
    summary="Delete a sender",
)
def delete_sender(call: Call) -> None:
    service.delete_sender(call.tenant_id, call.params["sender_id"])


@endpoint(
    blueprint,
    "/v1/senders/{sender_id}/verify",
    "POST",
    auth="tenant",
    tag="senders",
    summary="Ask SES to verify the sender's address or domain (idempotent)",
    body=VerifyRequest,
    response=SenderView,
)
def verify_sender(call: Call) -> SenderView:
    sender = service.verify_sender(call.tenant_id, call.params["sender_id"], call.body.scope)
    return SenderView.of(sender)


@endpoint(
    blueprint,
    "/v1/admin/identities/transfer",
    "POST",
    auth="admin",
    tag="admin",
    summary="Give a sending identity (address, domain, number, sender id) to a tenant",
    body=TransferIdentity,
    response=service.IdentityTransfer,
)
def transfer_identity(call: Call) -> service.IdentityTransfer:
    return service.transfer_identity(call.body.identity, call.body.tenant_id)
