"""The on-site inbox: messages a tenant's site or app shows a contact, and who may read them.

A message is stored per contact when the ``onsite`` channel sends it (that is its
delivery) and kept for ``Settings.onsite_retention_days``. End users read their own inbox
with a contact token: a signed claim (tenant, contact, expiry) the tenant's backend gets
from ``POST /v1/contacts/{id}/token`` and hands to its page, which sends it as
``Authorization: Bearer <token>``. A token names exactly one contact of one tenant; a
forged, expired or other-purpose token reads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ConfigDict

from chalicelib.domain.model import Model
from chalicelib.domain.unsubscribe import SigningKey

CONTACT_TOKEN_PREFIX = "hct1"  # noqa: S105  (Herald contact token, version 1: a prefix)


class InboxMessage(Model):
    """One on-site message as the contact sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    body: str
    url: str | None = None
    campaign_id: str | None = None
    created_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True)
class ContactClaim:
    """Who a contact token lets read: one contact of one tenant, until ``expires``."""

    tenant_id: str
    contact_id: str
    expires: int  # Unix seconds


class BadContactToken(Exception):
    """Forged, garbled, expired or signed with an unknown key."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_contact_token(claim: ContactClaim, key: SigningKey) -> str:
    """``hct1.<key id>.<claim>.<HMAC-SHA256>``: URL-safe, verifiable without a lookup."""
    payload = _b64(json.dumps([claim.tenant_id, claim.contact_id, claim.expires]).encode())
    signed = f"{CONTACT_TOKEN_PREFIX}.{key.id}.{payload}"
    mac = hmac.new(key.secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def verify_contact_token(
    token: str, secret_of: Callable[[int], bytes | None], now: datetime
) -> ContactClaim:
    """The claim of a genuine, unexpired token; BadContactToken otherwise (``secret_of``
    finds a signing key's secret by its id)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != CONTACT_TOKEN_PREFIX or not parts[1].isdigit():
        raise BadContactToken("not a contact token")
    secret = secret_of(int(parts[1]))
    if secret is None:
        raise BadContactToken("unknown signing key")
    signed = ".".join(parts[:3])
    expected = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[3])
        tenant_id, contact_id, expires = json.loads(_unb64(parts[2]))
    except (ValueError, TypeError) as error:
        raise BadContactToken("garbled token") from error
    if not hmac.compare_digest(expected, given):
        raise BadContactToken("bad signature")
    if not (
        isinstance(tenant_id, str) and isinstance(contact_id, str) and isinstance(expires, int)
    ):
        raise BadContactToken("garbled claim")
    if expires <= now.timestamp():
        raise BadContactToken("expired")
    return ContactClaim(tenant_id, contact_id, expires)
