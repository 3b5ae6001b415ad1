"""Senders: the identities a tenant's messages go out as, and when one may be used.

An email sender is a From address (and name, and Reply-To addresses); SES sends only
from a verified identity, which is either the address itself or its whole domain. An
SMS sender is an origination number (E.164) and/or an alphanumeric sender id. Every
field that ends up in a header refuses CR, LF and NUL (``HeaderText``/``PersonName``).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import formataddr
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from chalicelib.domain.contacts import EmailAddress, PersonName, PhoneNumber
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.headers import HEADER_SAFE
from chalicelib.domain.identities import Identity, email_identities, sms_identities

SenderChannel = Literal["email", "sms"]
IdentityKind = Literal["address", "domain"]
REPLY_TO_MAX = 5
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")


def _sender_id(value: str) -> str:
    if not _SENDER_ID.match(value):
        raise ValueError("a sender id is 1-11 letters and digits, at least one a letter")
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


HeaderEmail = Annotated[EmailAddress, HEADER_SAFE]
SenderId = Annotated[str, AfterValidator(_sender_id)]


class IdentityStatus(BaseModel):
    """What SES says about the identity an address sends through."""

    model_config = ConfigDict(frozen=True)

    identity: str = Field(description="The address, or its domain, that SES knows.")
    kind: IdentityKind
    verified: bool
    status: str = Field(
        description="SES's VerificationStatus (SUCCESS, PENDING, FAILED, TEMPORARY_FAILURE, "
        "NOT_STARTED), or NOT_FOUND when SES knows neither the address nor its domain."
    )
    checked_at: datetime


class Sender(BaseModel):
    """A stored sender. ``verification`` is the last status seen (live on a single GET)."""

    model_config = ConfigDict(frozen=True)

    id: str
    number: int = Field(description="Small per-tenant integer id (seed 003's domain ids).")
    channel: SenderChannel
    name: str = ""
    from_email: str | None = None
    from_name: str | None = None
    reply_to: list[str] = Field(default_factory=list)
    origination_number: str | None = None
    sender_id: str | None = None
    verification: IdentityStatus | None = None
    owned_identities: list[str] = Field(
        default_factory=list,
        description="Keys of the identities this sender names that its tenant owns "
        "(chalicelib.domain.identities); kept current by claims and admin transfers.",
    )
    created_at: datetime
    updated_at: datetime

    @property
    def identities(self) -> list[Identity]:
        """The owned-or-not identities this sender sends as (address and domain, or SMS ids)."""
        if self.from_email is not None:
            return list(email_identities(self.from_email))
        return sms_identities(self.origination_number, self.sender_id)

    @property
    def from_header(self) -> str:
        """The From header value, quoted and encoded as RFC 5322 needs."""
        assert self.from_email is not None
        return formataddr((self.from_name or "", self.from_email))

    @property
    def domain(self) -> str | None:
        return self.from_email.rsplit("@", 1)[1] if self.from_email else None


class SenderFields(BaseModel):
    """What a caller sets on a sender (create body, or the fields present in a patch)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: PersonName | None = None
    from_email: HeaderEmail | None = None
    from_name: PersonName | None = None
    reply_to: Annotated[list[HeaderEmail], BeforeValidator(_as_list)] | None = Field(
        default=None, max_length=REPLY_TO_MAX, description="One address or a list of them."
    )
    origination_number: PhoneNumber | None = None
    sender_id: SenderId | None = None


_EMAIL_ONLY = ("from_email", "from_name", "reply_to")
_SMS_ONLY = ("origination_number", "sender_id")


def check_sender(channel: SenderChannel, values: dict[str, object]) -> None:
    """ValidationFailed (naming the field) unless ``values`` make a complete ``channel`` sender."""
    foreign = _SMS_ONLY if channel == "email" else _EMAIL_ONLY
    for name in foreign:
        if values.get(name):
            raise ValidationFailed(f"{name} is not a field of an {channel} sender", field=name)
    if channel == "email" and not values.get("from_email"):
        raise ValidationFailed("an email sender needs from_email", field="from_email")
    if channel == "sms" and not (values.get("origination_number") or values.get("sender_id")):
        raise ValidationFailed(
            "an SMS sender needs an origination_number or a sender_id", field="origination_number"
        )


def changed(current: Sender, fields: SenderFields, now: datetime) -> Sender:
    """``current`` with the fields present in ``fields`` applied (an explicit null clears one).

    A changed ``from_email`` drops the stored verification: it was about another address.
    """
    values = current.model_dump()
    for name in fields.model_fields_set:
        given = getattr(fields, name)
        values[name] = [] if name == "reply_to" and given is None else given
    check_sender(current.channel, values)
    if values["from_email"] != current.from_email:
        values["verification"] = None
    values["updated_at"] = now
    return Sender.model_validate(values)


class Usability(BaseModel):
    usable: bool
    reason: str | None = None


def usability(sender: Sender, status: IdentityStatus | None) -> Usability:
    """Whether messages may go out as ``sender`` given its identity's status, and why not.

    Verified is not enough: the identity must be one its tenant owns (an identity verified
    by, or transferred to, another tenant is never usable; see domain/identities.py).
    """
    if sender.channel == "sms":
        foreign = [i for i in sender.identities if i.key not in sender.owned_identities]
        if foreign:
            return Usability(usable=False, reason=_not_owned(foreign[0].name))
        return Usability(usable=True)
    if status is None:
        return Usability(usable=False, reason="the SES identity has not been checked yet")
    if not status.verified:
        return Usability(
            usable=False,
            reason=f"SES identity '{status.identity}' is not verified (status {status.status})",
        )
    if f"{status.kind}#{status.identity}" not in sender.owned_identities:
        return Usability(usable=False, reason=_not_owned(status.identity))
    return Usability(usable=True)


def _not_owned(name: str) -> str:
    return (
        f"identity '{name}' is not owned by this tenant "
        "(verifying it through Herald claims it; an admin can transfer it)"
    )
