"""The suppression list: addresses Herald never sends to, and why.

An address is an email (lower-cased, as contacts store it) or a phone number (E.164).
Each suppressed address keeps one reason. Reasons are ranked by how strong a signal they
are — ``manual`` < ``unsubscribed`` < ``bounced`` < ``complained`` — and suppressing an
address again only ever raises its reason: a complaint is not overwritten by a later
manual entry, while a manual entry becomes ``unsubscribed`` when the person clicks the
link themself. Any reason blocks sending equally; the rank only decides what is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.domain.contacts import normalize_email, normalize_phone
from chalicelib.domain.errors import ValidationFailed

SuppressionReason = Literal["manual", "unsubscribed", "bounced", "complained"]
AddressKind = Literal["email", "phone"]
REASONS: tuple[SuppressionReason, ...] = ("manual", "unsubscribed", "bounced", "complained")


class Suppression(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    kind: AddressKind
    reason: SuppressionReason
    at: datetime


def weaker_reasons(reason: SuppressionReason) -> tuple[SuppressionReason, ...]:
    """The reasons ``reason`` replaces when the address is suppressed again."""
    return REASONS[: REASONS.index(reason)]


def normalize_address(value: str) -> tuple[AddressKind, str]:
    """An email (anything with an ``@``) or an E.164 phone, as contacts store them.

    ValidationFailed (field ``address``) for anything else.
    """
    try:
        if "@" in value:
            return "email", normalize_email(value)
        return "phone", normalize_phone(value)
    except ValidationFailed as error:
        raise ValidationFailed(error.message, field="address") from None
