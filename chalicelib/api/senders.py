"""Senders: the From identities (email) and origination ids (SMS) messages go out as.

An email sender is usable only while SES has verified its address or its domain:
``GET /v1/senders/{id}`` asks SES live (and remembers the answer, which the listing
shows), ``POST /v1/senders/{id}/verify`` asks SES to start verifying. Names, addresses
and reply-to addresses with CR, LF or NUL are refused (422 naming the field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.channels import identities
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.senders import (
    IdentityStatus,
    Sender,
    SenderChannel,
    SenderFields,
    check_sender,
    usability,
)
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
    verification: IdentityStatus | None = None
    usable: bool
    unusable_reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sender: Sender) -> SenderView:
        verdict = usability(sender, sender.verification)
        return cls(**sender.model_dump(), usable=verdict.usable, unusable_reason=verdict.reason)


def _checked(tenant_id: str, sender: Sender) -> Sender:
    """``sender`` with its live SES status, remembered when it changed."""
    if sender.from_email is None:
        return sender
    return store.record_verification(
        tenant_id, sender, identities.identity_status(sender.from_email)
    )


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
    channel = call.body.channel
    fields = SenderFields.model_validate(call.body.model_dump(exclude={"channel"}))
    check_sender(channel, fields.model_dump(exclude_none=True))
    status = identities.identity_status(fields.from_email) if fields.from_email else None
    return SenderView.of(store.create_sender(call.tenant_id, channel, fields, status))


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
    return SenderView.of(_checked(call.tenant_id, sender))


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
    sender = store.update_sender(call.tenant_id, call.params["sender_id"], call.body)
    if sender.verification is None:
        sender = _checked(call.tenant_id, sender)
    return SenderView.of(sender)


@endpoint(
    blueprint,
    "/v1/senders/{sender_id}",
    "DELETE",
    auth="tenant",
    tag="senders",
    summary="Delete a sender",
)
def delete_sender(call: Call) -> None:
    store.delete_sender(call.tenant_id, call.params["sender_id"])


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
    sender = store.get_sender(call.tenant_id, call.params["sender_id"])
    if sender.from_email is None or sender.domain is None:
        raise ValidationFailed("only email senders are verified with SES", field="channel")
    identity = sender.from_email if call.body.scope == "address" else sender.domain
    identities.request_verification(identity)
    return SenderView.of(_checked(call.tenant_id, sender))
