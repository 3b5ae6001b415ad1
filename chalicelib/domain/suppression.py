"""The suppression list: addresses Herald never sends to, and why.

An address is an email (lower-cased, as contacts store it), a phone number (E.164) or a
Telegram chat (``telegram:<chat id>``: a chat whose user blocked the tenant's bot).
Each suppressed address keeps one reason. Reasons are ranked by how strong a signal they
are — ``manual`` < ``unsubscribed`` < ``bounced`` < ``complained`` — and suppressing an
address again only ever raises its reason: a complaint is not overwritten by a later
manual entry, while a manual entry becomes ``unsubscribed`` when the person clicks the
link themself. Any reason blocks sending equally; the rank only decides what is kept.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict

from chalicelib.domain.contacts import (
    TELEGRAM_ADDRESS_PREFIX,
    is_telegram_chat_id,
    normalize_email,
    normalize_phone,
)
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.model import Model

SuppressionReason = Literal["manual", "unsubscribed", "bounced", "complained"]
AddressKind = Literal["email", "phone", "telegram"]
REASONS: tuple[SuppressionReason, ...] = ("manual", "unsubscribed", "bounced", "complained")


class Suppression(Model):
    model_config = ConfigDict(frozen=True)

    address: str
    kind: AddressKind
    reason: SuppressionReason
    at: datetime


def weaker_reasons(reason: SuppressionReason) -> tuple[SuppressionReason, ...]:
    """The reasons ``reason`` replaces when the address is suppressed again."""
    return REASONS[: REASONS.index(reason)]


def normalize_address(value: str) -> tuple[AddressKind, str]:
    """An email (anything with an ``@``), an E.164 phone, as contacts store them, or a
    Telegram chat (``telegram:<chat id>``).

    ValidationFailed (field ``address``) for anything else.
    """
    if is_normalized_email(value):
        return "email", value
    if value.startswith(TELEGRAM_ADDRESS_PREFIX):
        if not is_telegram_chat_id(value[len(TELEGRAM_ADDRESS_PREFIX) :]):
            raise ValidationFailed("a Telegram chat is telegram:<chat id>", field="address")
        return "telegram", value
    try:
        if "@" in value:
            return "email", normalize_email(value)
        return "phone", normalize_phone(value)
    except ValidationFailed as error:
        raise ValidationFailed(error.message, field="address") from None


# An address already in the form contacts store it needs no second look from
# email_validator (≈ 30 µs an address, for every recipient in the planner and again in
# the sender): lower-case ASCII dot-atom, then lower-case host labels without a double
# hyphen (so no Punycode) ending in a letters-only top-level domain.
_NORMALIZED_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?!.*--)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_EMAIL_MAX_LENGTH = 254  # RFC 5321 4.5.3.1.3 (with errata), as email_validator checks it


def is_normalized_email(value: str) -> bool:
    """True when ``normalize_email(value)`` is certain to return ``value`` unchanged.

    Conservative: anything unusual (upper case, blanks, quotes, international or Punycode
    domains, special-use names such as ``.test``) answers False and takes the full check.
    """
    if len(value) > _EMAIL_MAX_LENGTH or not _NORMALIZED_EMAIL.fullmatch(value):
        return False
    domain = value.rpartition("@")[2]
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    return not any(
        domain == special or domain.endswith(f".{special}") for special in SPECIAL_USE_DOMAIN_NAMES
    )
