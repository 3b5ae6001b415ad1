"""The rules that decide, for one recipient at one moment, whether a message goes out.

Pure functions used by the planner and the sender: why a recipient is skipped
(``SkipReason``), when a quiet-hours window lets a message out (``next_allowed``), what a
frequency cap is (``FrequencyCap``; the send policy counts it, ``domain.flows.policy``),
which of a campaign's templates and senders a recipient gets (``pick_for``), and the ids
a message carries to SES
(``message_id``, ``tag_value``). Nothing here reads the clock: callers pass ``now``, so
every rule is testable at any instant in any timezone.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
import re
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

T = TypeVar("T")

_TAG_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
TAG_MAX_LENGTH = 256


class SkipReason(StrEnum):
    """Why a recipient got no message; counted per reason as ``skipped.<reason>``."""

    SUPPRESSED = "suppressed"  # on the tenant's suppression list (bounce, complaint, manual)
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    NO_ADDRESS = "no_address"  # no email for an email campaign, no phone for SMS
    NOT_FOUND = "not_found"  # the contact was deleted between planning and sending
    DUPLICATE = "duplicate"  # already sent by another batch of this campaign step
    FREQUENCY_CAP = "frequency_cap"
    RENDER_ERROR = "render_error"
    SENDER_UNUSABLE = "sender_unusable"  # no usable sender identity for the message
    OPTED_OUT = "opted_out"  # SNS says the phone number opted out of SMS
    COUNTRY_NOT_ALLOWED = "country_not_allowed"  # SMS outside the tenant's sms_countries
    CANCELLED = "cancelled"  # the campaign was cancelled before this recipient's turn
    VERIFICATION = "verification"  # address status not among the acceptable ones
    CAMPAIGN_FREQUENCY_CAP = "campaign_frequency_cap"  # a flow's own cap (the tenant's passed)
    MAX_LATENESS = "max_lateness"  # it could only go out later than the flow's max_lateness
    BEFORE_START = "before_start"  # a flow entered before its starts_at


_STATUS_SKIPS: dict[str, SkipReason] = {
    "unsubscribed": SkipReason.UNSUBSCRIBED,
    "bounced": SkipReason.BOUNCED,
    "complained": SkipReason.COMPLAINED,
}


def status_skip(contact_status: str) -> SkipReason | None:
    """The reason a contact's own status forbids sending, or None for a subscribed contact."""
    return _STATUS_SKIPS.get(contact_status)


def contact_skip(
    contact_status: str, address: str | None, *, suppressed: bool
) -> SkipReason | None:
    """Why a contact gets nothing on a channel (its status first, then its address), or None.

    The planner asks this with what it knows per page and the sender again at send time,
    so both skip for the same reasons.
    """
    status_reason = status_skip(contact_status)
    if status_reason is not None:
        return status_reason
    if not address:
        return SkipReason.NO_ADDRESS
    return SkipReason.SUPPRESSED if suppressed else None


# -- quiet hours --------------------------------------------------------------------------
class QuietWindow(Protocol):
    """Local wall-clock times ("21:00", "08:00") between which nothing is sent."""

    @property
    def start(self) -> str | time: ...

    @property
    def end(self) -> str | time: ...


def clock_time(value: str | time) -> time:
    """``"21:00"`` (or a ``time``) as a ``time``; ValueError for anything else."""
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    return time.fromisoformat(value)


def zone_for(*candidates: str | None) -> zoneinfo.ZoneInfo:
    """The first usable IANA zone among ``candidates`` (contact's, then campaign's), else UTC.

    An unknown name falls through to the next candidate instead of failing the send: a
    stale timezone on one contact must not stop a campaign.
    """
    for name in candidates:
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def next_allowed(
    now_utc: datetime, tz: zoneinfo.ZoneInfo | str, window: QuietWindow | None
) -> datetime | None:
    """When a message due at ``now_utc`` may go out: None means now; otherwise, the UTC
    instant the quiet window ends in ``tz``.

    The window is half-open, ``[start, end)`` in local wall-clock time; a start later than
    the end (21:00-08:00) crosses midnight; equal start and end is no window. On DST days
    the end is read as wall-clock time: if it falls in the spring-forward gap (02:30 when
    clocks jump from 02:00 to 03:00) the window opens at the same wall time after the jump
    (03:30), late rather than early; if it falls in the repeated hour, at its first
    occurrence.
    """
    if window is None:
        return None
    zone = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
    start, end = clock_time(window.start), clock_time(window.end)
    if start == end:
        return None
    local = now_utc.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start < end:
        inside, opens_on = start <= wall < end, local.date()
    elif wall >= start:
        inside, opens_on = True, local.date() + timedelta(days=1)
    else:
        inside, opens_on = wall < end, local.date()
    if not inside:
        return None
    opening = datetime.combine(opens_on, end, tzinfo=zone)  # fold=0: first occurrence
    return opening.astimezone(UTC)


# -- frequency caps -----------------------------------------------------------------------
class FrequencyCap(Protocol):
    """At most ``max_messages`` messages per contact in ``per_hours`` hours, counted in
    hourly buckets (``domain.flows.policy.cap_reached``)."""

    @property
    def max_messages(self) -> int: ...

    @property
    def per_hours(self) -> int: ...


# -- rotation -----------------------------------------------------------------------------
def pick_for(options: Sequence[T], contact_id: str, salt: str) -> T:
    """The option a recipient gets from a rotation, the same on every retry and worker.

    A stable hash of (salt, contact) rather than round-robin: a redelivered batch renders
    each recipient exactly as the first attempt did, and no shared counter is needed.
    """
    if not options:
        raise ValueError("nothing to pick from")
    digest = hashlib.sha256(f"{salt}:{contact_id}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


# -- ids a message carries ----------------------------------------------------------------
def message_id(step: str, contact_id: str, channel: str, occurrence: str | None = None) -> str:
    """Herald's id for the one message of (campaign step, contact, channel[, occurrence]).

    Deterministic and invertible (url-safe base64 of the parts), so that a provider event
    carrying it in a tag leads straight to the ledger item without an index, and a
    retried send tags the same id. Uses only SES tag characters. A broadcast sends a step
    once per contact (no occurrence); a flow may send a node to a contact again (re-entry,
    loops), each time under a new ``occurrence`` (the enrolment's visit, docs/flows.md).
    """
    parts = (
        (step, contact_id, channel)
        if occurrence is None
        else (step, contact_id, channel, occurrence)
    )
    raw = "\x1f".join(parts).encode()
    return "m_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@functools.lru_cache(maxsize=1024)
def parse_message_key(value: str) -> tuple[str, str, str, str | None]:
    """(step, contact_id, channel, occurrence) of a ``message_id``; ValueError if it is
    not one. ``occurrence`` is None for a broadcast's message. Cached: the feedback
    worker parses each event's id three times (correlate, count, find the record)."""
    if not value.startswith("m_"):
        raise ValueError("not a Herald message id")
    encoded = value[2:]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError("not a Herald message id") from error
    parts = raw.split("\x1f")
    if len(parts) not in (3, 4) or not all(parts):
        raise ValueError("not a Herald message id")
    return parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else None


def parse_message_id(value: str) -> tuple[str, str, str]:
    """(step, contact_id, channel) of a ``message_id``; ValueError if it is not one."""
    step, contact_id, channel, _ = parse_message_key(value)
    return step, contact_id, channel


def tag_value(value: str) -> str:
    """``value`` made acceptable as an SES message tag value: ``[A-Za-z0-9_-]``, ≤ 256.

    Herald's own ids already comply; anything else has its other characters replaced.
    """
    return _TAG_FORBIDDEN.sub("_", value)[:TAG_MAX_LENGTH] or "_"


# -- retries ------------------------------------------------------------------------------
def backoff_seconds(attempt: int, *, base: float = 0.2, ceiling: float = 5.0) -> float:
    """How long to wait before retry ``attempt`` (1, 2, …): capped exponential, full jitter.

    Jitter keeps a pool of threads throttled at the same moment from retrying in step.
    """
    return random.uniform(0, min(ceiling, base * 2 ** (attempt - 1)))  # noqa: S311
