"""Senders: the identities a tenant's messages go out as, and when one may be used.

An email sender is a From address (and name, and Reply-To addresses); SES sends only
from a verified identity, which is either the address itself or its whole domain. An
SMS sender is an origination number (E.164) and/or an alphanumeric sender id. Every
field that ends up in a header refuses CR, LF and NUL (``HeaderText``/``PersonName``).

A push sender is an SNS platform application (``platform`` APNS, APNS_SANDBOX or GCM for
FCM) that Herald creates for the tenant from the ``credential`` (and ``principal``) given:
SNS keeps them, Herald never stores nor returns them. A Telegram sender is a bot: its
``bot_token`` is stored apart from the sender (chalicelib/store/sender_secrets.py) and
never returned; the bot's id (the token's prefix) is an identity one tenant owns. An
on-site sender has nothing but a name.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import formataddr
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, SecretStr

from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import EmailAddress, PersonName, PhoneNumber
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.headers import HEADER_SAFE
from chalicelib.domain.identities import (
    Identity,
    email_identities,
    sms_identities,
    telegram_identities,
)
from chalicelib.domain.model import Model

SenderChannel = ChannelName
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
PushPlatform = Literal["APNS", "APNS_SANDBOX", "GCM"]
_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")


def _bot_token(value: SecretStr) -> SecretStr:
    if not _BOT_TOKEN.match(value.get_secret_value()):
        raise ValueError("a bot token is '<bot id>:<secret>' as BotFather gives it")
    return value


def bot_id_of(token: SecretStr) -> str:
    """The bot's public id: the part of its token before the colon."""
    return token.get_secret_value().split(":", 1)[0]


SenderId = Annotated[str, AfterValidator(_sender_id)]


class IdentityStatus(Model):
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


class Sender(Model):
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
    platform: PushPlatform | None = None
    platform_application_arn: str | None = Field(
        default=None, description="Push: the SNS platform application Herald made for it."
    )
    bot_id: str | None = Field(default=None, description="Telegram: the bot's public id.")
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
        if self.channel == "telegram":
            return telegram_identities(self.bot_id)
        return sms_identities(self.origination_number, self.sender_id)

    @property
    def from_header(self) -> str:
        """The From header value, quoted and encoded as RFC 5322 needs."""
        assert self.from_email is not None
        return formataddr((self.from_name or "", self.from_email))

    @property
    def domain(self) -> str | None:
        return self.from_email.rsplit("@", 1)[1] if self.from_email else None


class SenderFields(Model):
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
    platform: PushPlatform | None = Field(
        default=None, description="Push: APNS, APNS_SANDBOX or GCM (FCM). Set at creation."
    )
    credential: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=16_000,
        description="Push, write-only: the FCM key, the APNs private key or signing key.",
    )
    principal: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=16_000,
        description="Push (APNs), write-only: the certificate, or the signing key id.",
    )
    bot_token: Annotated[SecretStr, AfterValidator(_bot_token)] | None = Field(
        default=None, description="Telegram, write-only: the bot's token from BotFather."
    )


# The fields of each kind of sender; any other channel's field is refused on it.
CHANNEL_FIELDS: dict[SenderChannel, tuple[str, ...]] = {
    "email": ("from_email", "from_name", "reply_to"),
    "sms": ("origination_number", "sender_id"),
    "push": ("platform", "credential", "principal"),
    "telegram": ("bot_token",),
    "onsite": (),
}
# Write-only fields: handed to the provider or the secrets store, never kept on the sender.
SECRET_FIELDS = ("credential", "principal", "bot_token")


def check_sender(channel: SenderChannel, values: dict[str, object], *, creating: bool) -> None:
    """ValidationFailed (naming the field) unless ``values`` make a complete ``channel``
    sender (its secrets are needed only when ``creating``: a change keeps them)."""
    own = CHANNEL_FIELDS[channel]
    for name in (n for fields in CHANNEL_FIELDS.values() for n in fields):
        if name not in own and values.get(name):
            raise ValidationFailed(f"{name} is not a field of an {channel} sender", field=name)
    if channel == "email" and not values.get("from_email"):
        raise ValidationFailed("an email sender needs from_email", field="from_email")
    if channel == "sms" and not (values.get("origination_number") or values.get("sender_id")):
        raise ValidationFailed(
            "an SMS sender needs an origination_number or a sender_id", field="origination_number"
        )
    if channel == "push" and not values.get("platform"):
        raise ValidationFailed("a push sender needs its platform", field="platform")
    if channel == "push" and creating and not values.get("credential"):
        raise ValidationFailed("a push sender needs the platform's credential", field="credential")
    if channel == "telegram" and creating and not values.get("bot_token"):
        raise ValidationFailed("a Telegram sender needs its bot_token", field="bot_token")


def changed(current: Sender, fields: SenderFields, now: datetime) -> Sender:
    """``current`` with the fields present in ``fields`` applied (an explicit null clears one).

    A changed ``from_email`` drops the stored verification: it was about another address.
    """
    values = current.model_dump()
    for name in fields.model_fields_set - set(SECRET_FIELDS):
        given = getattr(fields, name)
        values[name] = [] if name == "reply_to" and given is None else given
    check_sender(current.channel, values | _secrets_given(fields), creating=False)
    if values["platform"] != current.platform:
        raise ValidationFailed("a push sender's platform cannot change", field="platform")
    if fields.bot_token is not None:
        values["bot_id"] = bot_id_of(fields.bot_token)
    if values["from_email"] != current.from_email:
        values["verification"] = None
    values["updated_at"] = now
    return Sender.model_validate(values)


def _secrets_given(fields: SenderFields) -> dict[str, object]:
    return {name: getattr(fields, name) for name in SECRET_FIELDS if getattr(fields, name)}


class Usability(Model):
    usable: bool
    reason: str | None = None


def usability(sender: Sender, status: IdentityStatus | None) -> Usability:
    """Whether messages may go out as ``sender`` given its identity's status, and why not.

    Verified is not enough: the identity must be one its tenant owns (an identity verified
    by, or transferred to, another tenant is never usable; see domain/identities.py).
    """
    if sender.channel == "onsite":
        return Usability(usable=True)
    if sender.channel == "push":
        if sender.platform_application_arn is None:
            return Usability(usable=False, reason="the SNS platform application was not made")
        return Usability(usable=True)
    if sender.channel in ("sms", "telegram"):
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
