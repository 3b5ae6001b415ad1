"""Who owns a sending identity, and what that allows a tenant to send as.

SES identities (an address or a whole domain), SMS origination numbers and alphanumeric
sender ids belong to the one AWS account Herald runs in, not to a tenant. Herald makes
them tenants' own: the first tenant to verify an email identity through Herald (or to
name a number or sender id on a sender) owns it, and only an admin moves it to another.

The rules, all decided here from the current owners (identity → tenant id):

- An address is governed by its own owner if it has one, else by its domain's owner.
- A tenant may claim an identity nobody else governs: a domain no one owns, an address
  that no one owns at a domain no one else owns.
- A tenant's sender may name an identity that is unowned (it cannot send until claimed)
  or governed by that tenant; another tenant's identity is a conflict that names the
  identity and never the owner.
- An email sender sends through the identities its tenant owns among its address and
  the address's domain (a domain counts unless another tenant owns the address itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chalicelib.domain.errors import Conflict, ValidationFailed

Kind = Literal["address", "domain", "number", "sender_id", "telegram_bot"]
TELEGRAM_PREFIX = "telegram:"  # how a Telegram bot is named to ``Identity.parse``
_NUMBER_CHARS = frozenset("+0123456789")


@dataclass(frozen=True)
class Identity:
    """A sending identity in its canonical spelling (emails lower-case, sender ids upper)."""

    kind: Kind
    name: str

    @property
    def key(self) -> str:
        """The one spelling ownership is stored under."""
        return f"{self.kind}#{self.name}"

    @staticmethod
    def parse(value: str) -> Identity:
        """``acme.com``, ``ceo@acme.com``, ``+4915112345678`` or ``ACME``, by its shape."""
        text = value.strip()
        if not text or len(text) > 320:
            raise ValidationFailed(
                "an identity is an address, domain, number or sender id", field="identity"
            )
        if text.lower().startswith(TELEGRAM_PREFIX) and text[len(TELEGRAM_PREFIX) :].isdigit():
            return Identity("telegram_bot", text[len(TELEGRAM_PREFIX) :])
        if "@" in text:
            return Identity("address", text.lower())
        if text.startswith("+") and set(text) <= _NUMBER_CHARS and len(text) > 2:
            return Identity("number", text)
        if "." in text:
            return Identity("domain", text.lower().rstrip("."))
        if text.isalnum() and len(text) <= 11:
            return Identity("sender_id", text.upper())
        raise ValidationFailed(
            f"'{value}' is not an address, domain, number or sender id", field="identity"
        )

    @property
    def domain(self) -> Identity | None:
        """The domain an address is at (None for every other kind)."""
        if self.kind != "address":
            return None
        return Identity("domain", self.name.rsplit("@", 1)[1])


Owners = Mapping[Identity, str]


def email_identities(address: str) -> tuple[Identity, Identity]:
    """The address and its domain: the two identities SES may send ``address`` through."""
    identity = Identity.parse(address)
    assert identity.domain is not None
    return identity, identity.domain


def telegram_identities(bot_id: str | None) -> list[Identity]:
    """A Telegram bot is an identity: one tenant sends as it (its id is its token's prefix)."""
    return [Identity("telegram_bot", bot_id)] if bot_id else []


def sms_identities(origination_number: str | None, sender_id: str | None) -> list[Identity]:
    return [Identity.parse(v) for v in (origination_number, sender_id) if v]


def governing(identity: Identity, owners: Owners) -> Identity | None:
    """The owned identity that decides about ``identity``: itself, else its domain."""
    if identity in owners:
        return identity
    domain = identity.domain
    return domain if domain is not None and domain in owners else None


class IdentityOwned(Conflict):
    """The identity is another tenant's. The message names the identity, never the owner."""

    code = "identity_owned"

    def __init__(self, identity: Identity, *, field: str) -> None:
        super().__init__(
            f"'{identity.name}' belongs to another tenant; an admin can transfer it", field=field
        )


def check_usable_by(
    tenant_id: str, identities: list[Identity], owners: Owners, *, field: str
) -> None:
    """IdentityOwned unless each identity is unowned or governed by ``tenant_id``."""
    for identity in identities:
        decider = governing(identity, owners)
        if decider is not None and owners[decider] != tenant_id:
            raise IdentityOwned(decider, field=field)


def check_claimable_by(tenant_id: str, identity: Identity, owners: Owners, *, field: str) -> None:
    """IdentityOwned when another tenant owns ``identity`` or (for an address) its domain."""
    check_usable_by(tenant_id, [identity], owners, field=field)
    domain = identity.domain
    if domain is not None:
        check_usable_by(tenant_id, [domain], owners, field=field)


def owned_by(tenant_id: str, identities: list[Identity], owners: Owners) -> list[str]:
    """The names among ``identities`` that ``tenant_id`` may send through now (see module)."""
    address = next((i for i in identities if i.kind == "address"), None)
    if address is not None and owners.get(address) not in (None, tenant_id):
        return []  # another tenant owns the address itself: our domain does not cover it
    return [i.key for i in identities if owners.get(i) == tenant_id]
