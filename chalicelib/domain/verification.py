"""Address verification: what an address's status is, and which statuses a campaign sends to.

A campaign with ``verification.active`` sends only to addresses whose status is in its
``acceptable_statuses`` (docs/engine.md, "Address verification"). The status is decided
here from the address itself (syntax, role accounts, disposable domains) and from what a
resolver found for its domain (``DomainRecords``: the channels side asks DNS, or a stub
on the embedded stack). Nothing here does I/O.

* ``invalid``: not an address (syntax), or its domain has neither MX nor A records;
* ``risky``: a role account (``info@``, ``support@``…) or a disposable-mail domain: it
  exists, but nobody in particular reads it, or not for long;
* ``unknown``: the domain could not be looked up (timeout, server failure), or the
  verification budget was spent before this address;
* ``valid``: everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ConfigDict, Field

from chalicelib.domain.model import Model

VerificationStatus = Literal["valid", "invalid", "risky", "unknown"]

# Local parts that name a function, not a person (RFC 2142 and common practice).
ROLE_ACCOUNTS = frozenset(
    {
        "abuse",
        "admin",
        "administrator",
        "billing",
        "contact",
        "help",
        "hostmaster",
        "info",
        "mail",
        "marketing",
        "no-reply",
        "noreply",
        "office",
        "postmaster",
        "sales",
        "security",
        "support",
        "team",
        "webmaster",
    }
)
# Widely used throw-away mail services (a short list: a tenant's own list can come later).
DISPOSABLE_DOMAINS = frozenset(
    {
        "10minutemail.com",
        "discard.email",
        "dispostable.com",
        "getnada.com",
        "guerrillamail.com",
        "mailinator.com",
        "maildrop.cc",
        "mintemail.com",
        "sharklasers.com",
        "temp-mail.org",
        "tempmail.com",
        "throwawaymail.com",
        "trashmail.com",
        "yopmail.com",
    }
)
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
VERIFICATIONS_PER_BUDGET_UNIT = 1000


class VerificationSettings(Model):
    """A campaign's verification rule (seed 000's ``verification_data``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: bool = False
    acceptable_statuses: list[VerificationStatus] = Field(default=["valid"], min_length=1)
    max_budget: int = Field(
        default=1,
        ge=0,
        le=10_000,
        description=f"Fresh verifications per campaign, in thousands "
        f"({VERIFICATIONS_PER_BUDGET_UNIT} per unit); cached results cost nothing.",
    )
    age_threshold: int = Field(
        default=2, ge=0, le=365, description="Days a verification result is re-used."
    )

    @property
    def max_verifications(self) -> int:
        return self.max_budget * VERIFICATIONS_PER_BUDGET_UNIT


@dataclass(frozen=True)
class DomainRecords:
    """What a resolver found for a domain; None in its place means it could not look."""

    mx: bool
    a: bool


@dataclass(frozen=True)
class Verdict:
    status: VerificationStatus
    reason: str


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def needs_lookup(address: str) -> bool:
    """Whether the status depends on the domain's records (syntax decides the rest)."""
    return bool(_ADDRESS.match(address))


def classify(address: str, records: DomainRecords | None) -> Verdict:
    """The status of ``address`` given its domain's ``records`` (None: lookup failed)."""
    if not _ADDRESS.match(address):
        return Verdict("invalid", "syntax")
    local, _, domain = address.lower().rpartition("@")
    if records is None:
        return Verdict("unknown", "dns_lookup_failed")
    if not (records.mx or records.a):
        return Verdict("invalid", "no_mx_or_a_record")
    if domain in DISPOSABLE_DOMAINS:
        return Verdict("risky", "disposable_domain")
    if local.split("+", 1)[0] in ROLE_ACCOUNTS:
        return Verdict("risky", "role_account")
    return Verdict("valid", "ok")


def is_fresh(checked_at: datetime, now: datetime, age_threshold_days: int) -> bool:
    """A cached result younger than ``age_threshold`` days is re-used."""
    return now - checked_at < timedelta(days=age_threshold_days)
