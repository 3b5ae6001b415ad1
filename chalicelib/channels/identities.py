"""SES v2 sending identities: is this From address allowed to send, and asking SES to verify.

SES lets an address send when the address itself or its domain is a verified identity.
``identity_status`` asks for the address first, then its domain (at most two
GetEmailIdentity calls) and reports the verified one if either is, else the most
specific identity SES knows, else NOT_FOUND.

An identity counts as verified when SES says ``VerifiedForSendingStatus`` or its
``VerificationStatus`` is ``SUCCESS``. (moto reports every created identity as
``SUCCESS`` but ``VerifiedForSendingStatus: false``; AWS reports both true.)

SES's management API allows about one GetEmailIdentity a second per account, so every
caller reads through a per-process cache (read routes ``READ_CACHE_SECONDS``, the send
path ``STATUS_CACHE_SECONDS``). When SES throttles or fails, a remembered answer of any
age is returned instead; with none, ``IdentityLookupFailed`` says so (a read route
answers 503, the send path falls back to the status stored on the sender).

Whether the tenant OWNS the identity is not SES's business (one account, many tenants):
see chalicelib/domain/identities.py and chalicelib/services/senders.py.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.senders import IdentityKind, IdentityStatus, Sender, Usability, usability
from chalicelib.settings import get_settings

NOT_FOUND = "NOT_FOUND"
STATUS_CACHE_SECONDS = 60.0
READ_CACHE_SECONDS = 10.0
_cache_lock = threading.Lock()
_cached: dict[str, tuple[float, IdentityStatus]] = {}


class IdentityLookupFailed(Exception):
    """SES could not be asked (throttled, unreachable) and nothing was remembered."""


def _get_identity(identity: str) -> dict[str, Any] | None:
    try:
        response: dict[str, Any] = client("sesv2").get_email_identity(EmailIdentity=identity)
    except ClientError as error:
        if error.response["Error"]["Code"] == "NotFoundException":
            return None
        raise IdentityLookupFailed(f"SES GetEmailIdentity failed: {error}") from error
    except BotoCoreError as error:
        raise IdentityLookupFailed(f"SES unreachable: {error}") from error
    return response


def _status(
    identity: str, kind: IdentityKind, found: dict[str, Any] | None, at: datetime
) -> IdentityStatus:
    if found is None:
        return IdentityStatus(
            identity=identity, kind=kind, verified=False, status=NOT_FOUND, checked_at=at
        )
    status = str(found.get("VerificationStatus") or "NOT_STARTED")
    verified = bool(found.get("VerifiedForSendingStatus")) or status == "SUCCESS"
    return IdentityStatus(
        identity=identity, kind=kind, verified=verified, status=status, checked_at=at
    )


def identity_status(email: str, *, max_age: float = 0.0) -> IdentityStatus:
    """The SES identity ``email`` would send through, and whether it is verified.

    ``max_age`` > 0 accepts an answer this process got at most that many seconds ago
    (the send pipeline checks per batch; SES's management API is not built for that rate).
    """
    with _cache_lock:
        hit = _cached.get(email)
    if max_age > 0 and hit is not None and time.monotonic() - hit[0] <= max_age:
        return hit[1]
    try:
        status = _ask_ses(email)
    except IdentityLookupFailed:
        if hit is None:
            raise
        return hit[1]  # stale beats failing: SES throttles its management API hard
    with _cache_lock:
        _cached[email] = (time.monotonic(), status)
    return status


def forget_cached_statuses() -> None:
    """Drop remembered answers (tests; a verification just requested)."""
    with _cache_lock:
        _cached.clear()


def _ask_ses(email: str) -> IdentityStatus:
    at = clock.now()
    domain = email.rsplit("@", 1)[1]
    by_address = _status(email, "address", _get_identity(email), at)
    if by_address.verified:
        return by_address
    by_domain = _status(domain, "domain", _get_identity(domain), at)
    if by_domain.verified or by_address.status == NOT_FOUND:
        return by_domain
    return by_address


def known_to_ses(identity: str) -> bool:
    """Whether SES has ``identity`` at all (verified or not)."""
    return _get_identity(identity) is not None


def request_verification(identity: str) -> IdentityStatus:
    """Ask SES to verify ``identity`` (an address: SES mails it a link; a domain: DNS
    records, see the SES console or ``get_email_identity``'s DKIM tokens); idempotent."""
    ses = client("sesv2")
    try:
        ses.create_email_identity(EmailIdentity=identity)
    except ClientError as error:
        if error.response["Error"]["Code"] != "AlreadyExistsException":
            raise
    forget_cached_statuses()
    kind: IdentityKind = "address" if "@" in identity else "domain"
    return _status(identity, kind, _get_identity(identity), clock.now())


def identity_arn(identity: str) -> str:
    """The SES identity's ARN, for SendEmail's ``FromEmailAddressIdentityArn``."""
    settings = get_settings()
    return f"arn:aws:ses:{settings.region}:{settings.account_id}:identity/{identity}"


def sender_usability(sender: Sender) -> tuple[Usability, IdentityStatus | None]:
    """Whether ``sender`` can send now (SMS senders: always), for the send pipeline.

    Asks SES at most once per ``STATUS_CACHE_SECONDS`` per address and process. Prefer it
    to the status stored on the sender, which is only refreshed when someone GETs it.
    """
    if sender.from_email is None:
        return usability(sender, None), None
    status: IdentityStatus | None
    try:
        status = identity_status(sender.from_email, max_age=STATUS_CACHE_SECONDS)
    except IdentityLookupFailed:
        # Never fail a batch over SES's management API: the last status seen will do.
        status = sender.verification
    return usability(sender, status), status
