"""Herald's ids: a short kind prefix and the 32 hex digits of an RFC 9562 UUID.

``cmp_0190f3c5d2a17b3e8f41c2d9a0b4e6f7`` is the native form every store keys on. The
hex is a real UUID, so an API that speaks UUIDs (seed 001) shows it dashed
(``0190f3c5-d2a1-7b3e-8f41-c2d9a0b4e6f7``) and strict client validators accept it.

- Campaign ids are **UUIDv7**: the first 48 bits are Unix milliseconds, so ids still
  sort by creation time (a listing newest first is a reverse Query on the id), and the
  version and variant bits make them valid RFC 9562 UUIDs. Campaign ids made before
  (12 hex of milliseconds + 20 random hex) stay valid and sort among the new ones by
  their milliseconds.
- Every other id (templates, senders, contacts, segments, lists, webhooks, imports,
  events, tenants) is a UUIDv4 (``uuid.uuid4().hex``), already valid.

On input an id may be given in any of its forms: native, dashed UUID, or the prefix
followed by the dashed UUID (``native``). A bare UUID says nothing of its kind, so the
caller names the prefix (a path parameter's name does: ``PATH_PREFIXES``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

_DASHED = re.compile(
    r"^(?P<prefix>[a-z]{1,8}_)?"
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_TRAILING_HEX = re.compile(r"([0-9a-f]{32})$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")

# The prefix of the id a path parameter names (routes name their ids this way).
PATH_PREFIXES: Mapping[str, str] = MappingProxyType(
    {
        "campaign_id": "cmp_",
        "sequence_id": "cmp_",  # seed 001's campaigns
        "template_id": "tpl_",
        "sender_id": "snd_",
        "contact_id": "c_",
        "segment_id": "s_",
        "list_id": "l_",
        "webhook_id": "whk_",
        "import_id": "imp_",
        "tenant_id": "",
    }
)


def uuid7_hex(now: datetime) -> str:
    """A UUIDv7 (RFC 9562 §5.7) as 32 hex digits: 48 bits of Unix milliseconds at ``now``,
    version 7, 12 random bits, variant ``10``, 62 random bits."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return f"{value:032x}"


def dashed(native_id: str) -> str:
    """The UUID of an id, 8-4-4-4-12 (its last 32 hex digits); ValueError for a value
    that does not end in 32 hex digits."""
    found = _TRAILING_HEX.search(native_id)
    if found is None:
        raise ValueError(f"{native_id!r} has no UUID")
    h = found.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def native(value: str, prefix: str) -> str:
    """The native id for ``value`` given as the native id, as a UUID (dashed, or 32 hex
    digits), or as ``prefix`` followed by a dashed UUID (any case). Anything else is
    returned as it came, for the store to find or not (an unknown id is a 404, never a
    different resource)."""
    if _HEX32.match(value.strip()):
        return prefix + value.strip().lower()
    found = _DASHED.match(value.strip())
    if found is None or (found.group("prefix") or prefix) != prefix:
        return value
    return prefix + found.group("uuid").replace("-", "").lower()


def collapsed(value: str) -> str:
    """``value`` with a prefixed dashed UUID (``tpl_3c90c3cc-0d44-…``) made native; for a
    field that holds ids of several kinds, which cannot give a bare UUID its prefix."""
    found = _DASHED.match(value.strip())
    if found is None or found.group("prefix") is None:
        return value
    return found.group("prefix") + found.group("uuid").replace("-", "").lower()
