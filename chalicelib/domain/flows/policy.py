"""Whether a message due now may go out: the one policy for flows and broadcasts.

Three rules, in this order, each giving a reason the trace shows:

1. Quiet hours DEFER, never drop: inside the window the message waits until it ends, in
   the contact's timezone (else the campaign's), using ``delivery.next_allowed``.
2. ``max_lateness``: a message that would go out more than this after it became due (a
   long quiet window, a paused flow resumed, a backlog) is skipped with reason
   ``max_lateness`` instead: a "happy hour" message is worthless the next morning.
3. Frequency caps: a tenant-wide cap and a per-campaign cap, BOTH must pass. Each is
   "at most N messages per contact per H hours", counted per contact in hourly buckets.

Caps are counted, not listed: the store keeps one small item per contact holding a count
per (scope, hour bucket) and a version; a sender reads it, asks ``decide_send``, and adds
its message with one UpdateItem conditional on the version it read. Two campaigns
racing for the last slot cannot both pass: one write fails its condition and that
sender reads again. H hourly buckets (the current one and the H-1 before) stand for the
window, so the cap looks back between H-1 and H hours: a "1 per 24 h" cap lets the 09:00
message of one day through the next day at 09:00, and never allows two in 23 hours.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ConfigDict, Field

from chalicelib.domain.delivery import FrequencyCap, QuietWindow, SkipReason, next_allowed
from chalicelib.domain.flows.windows import SendWindow, next_open
from chalicelib.domain.model import Model

MAX_CAP_HOURS = 24 * 31  # how far back a cap may look; older buckets are pruned
_BUCKET_FORMAT = "%Y%m%d%H"


class CampaignCap(Model):
    """At most ``max_messages`` per contact from this campaign in ``per_hours`` hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_messages: int = Field(ge=1, le=1000)
    per_hours: int = Field(ge=1, le=MAX_CAP_HOURS)


@dataclass(frozen=True)
class SendPolicy:
    """Everything ``decide_send`` weighs besides the counts and the clock."""

    quiet_hours: QuietWindow | None = None
    max_lateness: timedelta | None = None
    tenant_cap: FrequencyCap | None = None
    campaign_cap: FrequencyCap | None = None
    send_windows: tuple[SendWindow, ...] = ()  # outside every window: defer to the next

    @property
    def capped(self) -> bool:
        """Whether any cap applies: without one, nothing is read or counted."""
        return self.tenant_cap is not None or self.campaign_cap is not None


@dataclass(frozen=True)
class Allow:
    """Send now; then add one to the hour bucket ``bucket`` of both scopes."""

    bucket: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str = "quiet_hours"


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


Decision = Allow | Defer | Skip


def decide_send(
    policy: SendPolicy,
    *,
    now: datetime,
    due_at: datetime,
    zone: zoneinfo.ZoneInfo,
    tenant_counts: Mapping[str, int],
    campaign_counts: Mapping[str, int],
) -> Decision:
    """Send now, defer until the quiet window ends, or skip with a reason.

    ``due_at`` is when the step first became due (the enrolment reached the node);
    ``*_counts`` map hour buckets to the messages the contact got in that scope.
    """
    return when_to_send(policy, now=now, due_at=due_at, zone=zone) or within_caps(
        policy, now=now, tenant_counts=tenant_counts, campaign_counts=campaign_counts
    )


def when_to_send(
    policy: SendPolicy, *, now: datetime, due_at: datetime, zone: zoneinfo.ZoneInfo
) -> Defer | Skip | None:
    """Rules 1 and 2, which need no counts: None means "now, if the caps let it"."""
    opens = next_opening(policy, now, zone)
    ready = opens or now
    if policy.max_lateness is not None and ready - due_at > policy.max_lateness:
        return Skip(SkipReason.MAX_LATENESS)
    if opens is not None:
        return Defer(opens)
    return None


def within_caps(
    policy: SendPolicy,
    *,
    now: datetime,
    tenant_counts: Mapping[str, int],
    campaign_counts: Mapping[str, int],
) -> Allow | Skip:
    """Rule 3: the tenant-wide cap first, then the campaign's own."""
    if cap_reached(policy.tenant_cap, tenant_counts, now):
        return Skip(SkipReason.FREQUENCY_CAP)
    if cap_reached(policy.campaign_cap, campaign_counts, now):
        return Skip(SkipReason.CAMPAIGN_FREQUENCY_CAP)
    return Allow(hour_bucket(now))


def next_opening(policy: SendPolicy, now: datetime, zone: zoneinfo.ZoneInfo) -> datetime | None:
    """When both the quiet hours and the send windows let a message due at ``now`` go out
    (None: now). Each deferral is re-checked against the other rule: a quiet window may
    end outside every send window, and a send window may open inside quiet hours."""
    at, deferred = now, False
    for _ in range(16):  # each round moves forward to a boundary; a week has few of them
        later = next_allowed(at, zone, policy.quiet_hours) or next_open(
            at, zone, policy.send_windows
        )
        if later is None:
            return at if deferred else None
        at, deferred = later, True
    return at


def cap_reached(cap: FrequencyCap | None, counts: Mapping[str, int], now: datetime) -> bool:
    """Whether one more message would go over ``cap``, given the counts per hour bucket."""
    if cap is None:
        return False
    return sent_in_window(counts, now, cap.per_hours) >= cap.max_messages


def sent_in_window(counts: Mapping[str, int], now: datetime, hours: int) -> int:
    return sum(counts.get(bucket, 0) for bucket in window_buckets(now, hours))


def hour_bucket(at: datetime) -> str:
    """The UTC hour ``at`` falls in, as ``YYYYMMDDHH`` (sorts as time does)."""
    return at.astimezone(UTC).strftime(_BUCKET_FORMAT)


def window_buckets(now: datetime, hours: int) -> tuple[str, ...]:
    """The ``hours`` buckets a cap of ``hours`` sums: the current hour and those before."""
    return tuple(hour_bucket(now - timedelta(hours=back)) for back in range(hours))


def stale_buckets(buckets: Iterable[str], now: datetime) -> list[str]:
    """Buckets no cap can look at any more (older than MAX_CAP_HOURS): the store prunes
    them in the same write that adds a message, so a contact's item stays small."""
    oldest = hour_bucket(now - timedelta(hours=MAX_CAP_HOURS - 1))
    return sorted(bucket for bucket in buckets if bucket < oldest)
