"""Unsubscribe tokens, the headers built from them, and who hears of an unsubscribe.

Every message carries a token that names its recipient and is signed, so ``/u/{token}``
needs no login, no lookup table and no per-message write (a 10-million-recipient
campaign would otherwise pay for 10 million items that are almost never read). The
token is the URL-safe base64 (unpadded) of::

    version (1) | key id (2) | channel (1) | tenant id (16) | contact id | campaign id
    | message ref | HMAC-SHA256(key, everything before)[:16]

Ids are packed: an id made of a short prefix and 32 hex digits (``c_1f…``) takes
``2 + len(prefix) + 16`` bytes, anything else its UTF-8 length plus one. The 128-bit
tag makes a forgery a 2^-128 guess; the key id lets keys rotate while old links keep
working. A typical token is about 100 characters, short enough for an SMS.

The token deliberately holds no address: an unsubscribe link forwarded or logged leaks
no PII, and the address is read from the contact when the link is used.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.domain.tenants import is_tenant_id
from chalicelib.settings import Settings

UnsubscribeChannel = Literal["email", "sms"]

TOKEN_VERSION = 1
TAG_BYTES = 16
MAX_TOKEN_LENGTH = 512
_CHANNELS: dict[UnsubscribeChannel, bytes] = {"email": b"e", "sms": b"s"}
_CHANNEL_OF = {code: name for name, code in _CHANNELS.items()}
_HEX_ID = re.compile(r"^([A-Za-z0-9_-]{0,15})([0-9a-f]{32})$")
_PACKED_HEX = 0x80  # high bit of an id's length byte: prefix + 16 raw bytes follow
_MAX_ID_BYTES = 0x7F
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class UnsubscribeClaim:
    """Who a token unsubscribes, and from what message."""

    tenant_id: str
    contact_id: str
    channel: UnsubscribeChannel
    campaign_id: str = ""
    message_ref: str = ""


@dataclass(frozen=True)
class SigningKey:
    id: int
    secret: bytes


class BadToken(ValueError):
    """A token that is malformed, unknown-keyed or wrongly signed; callers answer 404."""


# -- packing ----------------------------------------------------------------------------
def _pack_id(value: str) -> bytes:
    match = _HEX_ID.match(value)
    if match:
        prefix = match.group(1).encode()
        return bytes([_PACKED_HEX | len(prefix)]) + prefix + bytes.fromhex(match.group(2))
    raw = value.encode()
    if len(raw) > _MAX_ID_BYTES:
        raise ValueError(f"an id of {len(raw)} bytes is too long for a token")
    return bytes([len(raw)]) + raw


def _unpack_id(data: bytes, at: int) -> tuple[str, int]:
    if at >= len(data):
        raise BadToken("token is truncated")
    head = data[at]
    at += 1
    if head & _PACKED_HEX:
        prefix_length = head & _MAX_ID_BYTES
        end = at + prefix_length + 16
        if end > len(data):
            raise BadToken("token is truncated")
        prefix = data[at : at + prefix_length].decode("ascii", errors="strict")
        return prefix + data[at + prefix_length : end].hex(), end
    end = at + head
    if end > len(data):
        raise BadToken("token is truncated")
    return data[at:end].decode("utf-8"), end


def _tag(key: bytes, signed: bytes) -> bytes:
    mac = _keyed(key).copy()
    mac.update(signed)
    return mac.digest()[:TAG_BYTES]


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC holding only ``key``: every message's token copies it instead of hashing the
    padded key again (a token is signed per recipient; keys are few and long-lived)."""
    return hmac.new(key, digestmod=hashlib.sha256)


# -- signing and reading ----------------------------------------------------------------
def sign(claim: UnsubscribeClaim, key: SigningKey) -> str:
    """The token for ``claim``, signed with ``key``."""
    if not is_tenant_id(claim.tenant_id):
        raise ValueError(f"not a tenant id: {claim.tenant_id!r}")
    signed = (
        struct.pack(">BH", TOKEN_VERSION, key.id)
        + _CHANNELS[claim.channel]
        + bytes.fromhex(claim.tenant_id)
        + _pack_id(claim.contact_id)
        + _pack_id(claim.campaign_id)
        + _pack_id(claim.message_ref)
    )
    token = signed + _tag(key.secret, signed)
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def verify(token: str, key_for: Callable[[int], bytes | None]) -> UnsubscribeClaim:
    """The claim a genuine token makes; BadToken for anything else.

    ``key_for`` maps a key id to its secret (None when unknown). The tag is compared in
    constant time, and nothing in the token is trusted before it matches.
    """
    if not (0 < len(token) <= MAX_TOKEN_LENGTH) or not _TOKEN_CHARS.match(token):
        raise BadToken("not a token")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("not a token") from None
    if len(data) < 4 + 16 + TAG_BYTES or data[0] != TOKEN_VERSION:
        raise BadToken("not a token of this version")
    signed, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
    (key_id,) = struct.unpack(">H", signed[1:3])
    secret = key_for(key_id)
    if secret is None or not hmac.compare_digest(_tag(secret, signed), tag):
        raise BadToken("token signature does not match")
    return _read_claim(signed)


def _read_claim(signed: bytes) -> UnsubscribeClaim:
    channel = _CHANNEL_OF.get(signed[3:4])
    if channel is None:
        raise BadToken("unknown channel")
    tenant_id = signed[4:20].hex()
    try:
        contact_id, at = _unpack_id(signed, 20)
        campaign_id, at = _unpack_id(signed, at)
        message_ref, at = _unpack_id(signed, at)
    except UnicodeDecodeError:
        raise BadToken("token holds a malformed id") from None
    if at != len(signed) or not contact_id:
        raise BadToken("token has a malformed body")
    return UnsubscribeClaim(tenant_id, contact_id, channel, campaign_id, message_ref)


# -- what a message carries -------------------------------------------------------------
def unsubscribe_url(token: str, settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/u/{token}"


def unsubscribe_headers(token: str, settings: Settings) -> dict[str, str]:
    """The RFC 2369 / RFC 8058 headers that give mail clients a one-click unsubscribe."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(token, settings)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# -- who hears of it --------------------------------------------------------------------
@dataclass(frozen=True)
class Unsubscribed:
    """A recipient unsubscribed through a link (reported once per address and reason)."""

    claim: UnsubscribeClaim
    address: str | None
    at: datetime


UnsubscribeHook = Callable[[Unsubscribed], None]
_hooks: list[UnsubscribeHook] = []


def on_unsubscribe(hook: UnsubscribeHook) -> UnsubscribeHook:
    """Register ``hook`` (e.g. campaign stats) to be called after each effective unsubscribe.

    Hooks run in the request that unsubscribed, after the unsubscribe is stored; one
    that raises is logged and does not undo it. app.py adds Herald's own.
    """
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def unsubscribe_hooks() -> tuple[UnsubscribeHook, ...]:
    return tuple(_hooks)
