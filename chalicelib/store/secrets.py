"""Herald's own signing keys, and the unsubscribe tokens signed with them.

Layout (system scope, never a tenant's): ``SYS#SIGNINGKEY#<purpose> / <key id, 5 digits>``
holding 32 random bytes. The newest key signs; every stored key verifies, so rotating
(``rotate_signing_key``) never breaks a link already sent. The first key is created on
first use with a conditional put: two cold Lambdas racing both end up with the winner's
key. Keys are cached in-process for ``_CACHE_SECONDS``; a token naming a key this process
has not seen yet (newer than its newest: rotated elsewhere) triggers a reload, at most
one per ``_MIN_RELOAD_SECONDS``.

The keys sit in the table rather than in Secrets Manager: a leaked table already holds
every address, and the worst a stolen key allows is forging unsubscribes. KMS or Secrets
Manager would cost a call per cold start and an IAM grant for little gain.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.onsite import (
    BadContactToken,
    ContactClaim,
    sign_contact_token,
    verify_contact_token,
)
from chalicelib.domain.unsubscribe import (
    BadToken,
    SigningKey,
    UnsubscribeClaim,
    sign,
    verify,
)
from chalicelib.store.table import Condition, ConditionFailed, system_table

UNSUBSCRIBE = "unsubscribe"
CONTACT = "contact"  # contact tokens: the on-site inbox's Bearer (chalicelib/domain/onsite.py)
KEY_BYTES = 32
_CACHE_SECONDS = 300.0
_MIN_RELOAD_SECONDS = 10.0  # a flood of forged key ids costs at most one read per 10 s
_PARTITION = "SIGNINGKEY#{purpose}"


@dataclass(frozen=True)
class _KeyRing:
    keys: dict[int, bytes]
    loaded_at: float

    @property
    def current(self) -> SigningKey:
        newest = max(self.keys)
        return SigningKey(newest, self.keys[newest])


_lock = threading.Lock()
_rings: dict[str, _KeyRing] = {}


def _sort_key(key_id: int) -> str:
    return f"{key_id:05d}"


def _load(purpose: str) -> _KeyRing:
    items = system_table().query_all(_PARTITION.format(purpose=purpose), consistent=True)
    keys = {int(item["id"]): base64.b64decode(item["secret"]) for item in items}
    return _KeyRing(keys=keys, loaded_at=time.monotonic())


def _create(purpose: str, key_id: int) -> None:
    """Store a new random key under ``key_id``; losing the race to another writer is fine."""
    secret = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    with contextlib.suppress(ConditionFailed):
        system_table().put(
            _PARTITION.format(purpose=purpose),
            _sort_key(key_id),
            {"id": key_id, "secret": secret},
            condition=Condition.absent(),
        )


def _ring(purpose: str, *, refresh: bool = False) -> _KeyRing:
    with _lock:
        ring = _rings.get(purpose)
        if ring is None or refresh or time.monotonic() - ring.loaded_at > _CACHE_SECONDS:
            ring = _load(purpose)
            if not ring.keys:
                _create(purpose, 1)
                ring = _load(purpose)
            _rings[purpose] = ring
        return ring


def signing_key(purpose: str = UNSUBSCRIBE) -> SigningKey:
    """The key new signatures use: the newest one, created on first use."""
    return _ring(purpose).current


def verification_key(key_id: int, purpose: str = UNSUBSCRIBE) -> bytes | None:
    """The secret of ``key_id`` (reloading once if this process has not seen it), or None."""
    ring = _ring(purpose)
    stale = time.monotonic() - ring.loaded_at > _MIN_RELOAD_SECONDS
    if key_id not in ring.keys and key_id > max(ring.keys) and stale:
        ring = _ring(purpose, refresh=True)
    return ring.keys.get(key_id)


def rotate_signing_key(purpose: str = UNSUBSCRIBE) -> int:
    """Add a newer key (it signs from now on; older keys still verify); returns its id."""
    newest = _ring(purpose, refresh=True).current.id
    _create(purpose, newest + 1)
    return _ring(purpose, refresh=True).current.id


def forget_cached_keys() -> None:
    """Drop the in-process cache (tests switch moto accounts under a running process)."""
    with _lock:
        _rings.clear()


def unsubscribe_token(claim: UnsubscribeClaim) -> str:
    """A signed token for ``claim``: what a message's unsubscribe link carries."""
    return sign(claim, signing_key(UNSUBSCRIBE))


def read_unsubscribe_token(token: str) -> UnsubscribeClaim | None:
    """The claim of a genuine token, or None for a forged, garbled or unknown-keyed one."""
    try:
        return verify(token, verification_key)
    except BadToken:
        return None


def contact_token(claim: ContactClaim) -> str:
    """A signed token letting its holder read one contact's on-site inbox until it expires."""
    return sign_contact_token(claim, signing_key(CONTACT))


def read_contact_token(token: str, now: datetime) -> ContactClaim | None:
    """The claim of a genuine, unexpired contact token, or None."""
    try:
        return verify_contact_token(token, lambda key_id: verification_key(key_id, CONTACT), now)
    except BadContactToken:
        return None
