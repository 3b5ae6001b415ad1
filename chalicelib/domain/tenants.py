"""Tenants and API keys.

An API key reads ``hk_<tenant>_<key id>_<secret>``. Carrying the tenant and key id in
the clear lets the gate find the stored record with one GetItem under the tenant's own
partition (so even key lookup respects "every storage key begins with the tenant id"),
while only a SHA-256 of the whole key is stored: a leaked table does not leak keys.
Admin keys have the same shape with ``admin`` in the tenant slot.

A tenant key may be read-only (it can call GET routes only) and may expire; both are
fixed when the key is made, so a leaked dashboard key can neither write nor live forever.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import ConfigDict, Field

from chalicelib.domain.model import Model

KEY_PREFIX = "hk"
ADMIN_SCOPE = "admin"
_TENANT_ID = re.compile(r"^[0-9a-f]{32}$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")


def new_tenant_id() -> str:
    return uuid.uuid4().hex


def is_tenant_id(value: str) -> bool:
    return bool(_TENANT_ID.match(value))


@dataclass(frozen=True)
class ParsedKey:
    """The public parts of a presented key; ``digest`` is what is compared with storage."""

    scope: str  # a tenant id, or ADMIN_SCOPE
    key_id: str
    digest: str


@dataclass(frozen=True)
class IssuedKey:
    """A freshly minted key: ``secret`` is shown to the caller once and never stored."""

    scope: str
    key_id: str
    secret: str
    digest: str


def key_digest(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def issue_key(scope: str) -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{scope}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(scope=scope, key_id=key_id, secret=secret, digest=key_digest(secret))


def parse_key(presented: str) -> ParsedKey | None:
    """The scope and key id of a well-formed key, or None for anything else."""
    parts = presented.split("_", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX:
        return None
    _, scope, key_id, secret = parts
    if not (scope == ADMIN_SCOPE or is_tenant_id(scope)) or not _KEY_ID.match(key_id):
        return None
    if len(secret) < 32:
        return None
    return ParsedKey(scope=scope, key_id=key_id, digest=key_digest(presented))


@dataclass(frozen=True)
class KeyGrant:
    """What a valid key lets its caller do: act in ``scope``, and write unless read-only."""

    scope: str  # a tenant id, or ADMIN_SCOPE
    read_only: bool = False


def digests_match(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())


class Tenant(Model):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    created_at: datetime


class ApiKey(Model):
    """What Herald keeps about a key: never the key itself."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant_id: str
    name: str = Field(default="")
    prefix: str = Field(description="The first characters of the key, to recognise it by.")
    created_at: datetime
    revoked_at: datetime | None = None
    read_only: bool = Field(default=False, description="The key may call GET routes only.")
    expires_at: datetime | None = Field(default=None, description="The key fails from then on.")

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
