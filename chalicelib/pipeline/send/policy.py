"""Whether one message may go out now, decided AND counted: the send policy of every kind.

Broadcasts (``batch``) and flows (the flow worker) ask ``admit`` before each message.
The rules are the domain's (``chalicelib.domain.flows.policy``: quiet hours defer,
``max_lateness`` skips, the tenant-wide and the campaign's own frequency cap must both
pass); this module reads the campaign and the contact into a ``SendPolicy`` and makes the
caps atomic against the contact's counters (``store.enrolments``): read the counts, decide,
add the message with one UpdateItem conditional on the version read. A sender that loses
the race for the last slot reads again and decides again, so two senders can never both
take it. A campaign without caps reads and writes nothing: its messages are not counted
(docs/engine.md, "Quiet hours, frequency caps, the clock").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import zone_for
from chalicelib.domain.flows.policy import (
    Allow,
    Decision,
    Defer,
    SendPolicy,
    Skip,
    when_to_send,
    within_caps,
)
from chalicelib.store.enrolments import (
    CapCounts,
    cap_counts,
    cap_counts_among,
    count_send,
    uncount_send,
)

__all__ = [
    "MAX_RACES",
    "Allow",
    "CapContention",
    "Decision",
    "Defer",
    "Skip",
    "admit",
    "admit_as_read",
    "read_caps",
    "release",
    "send_policy",
    "timing",
]

# Each lost race means another message was counted for this contact in between: after a
# few, the contact is being messaged so fast that giving up (an error, retried by the
# caller's queue) is better than spinning.
MAX_RACES = 5


class CapContention(Exception):
    """The contact's counters kept changing under us ``MAX_RACES`` times in a row."""


def send_policy(campaign: Campaign) -> SendPolicy:
    return SendPolicy(
        quiet_hours=campaign.quiet_hours,
        max_lateness=campaign.max_lateness.as_timedelta() if campaign.max_lateness else None,
        tenant_cap=campaign.frequency_cap,
        campaign_cap=campaign.campaign_frequency_cap,
        send_windows=tuple(campaign.send_windows),  # a sequence's allowed_windows
    )


def timing(
    campaign: Campaign, contact: Contact, now: datetime, *, due_at: datetime
) -> Defer | Skip | None:
    """Quiet hours (in the contact's timezone, else the campaign's) and ``max_lateness``
    alone: what a broadcast's batch asks before it splits recipients into later batches."""
    zone = zone_for(contact.timezone, campaign.timezone)
    return when_to_send(send_policy(campaign), now=now, due_at=due_at, zone=zone)


def admit(
    tenant_id: str, campaign: Campaign, contact: Contact, now: datetime, *, due_at: datetime
) -> Decision:
    """Send now (the message is counted), defer until the quiet window ends, or skip.

    ``due_at`` is when the message first became due (``max_lateness`` counts from it).
    An ``Allow`` has been counted against both caps; if the message then does not go out
    after all, ``release`` gives the slot back.
    """
    return admit_as_read(tenant_id, campaign, contact, now, due_at=due_at, read=None)


def read_caps(
    tenant_id: str, campaign: Campaign, contact_ids: Iterable[str]
) -> Mapping[str, CapCounts]:
    """The counts of a batch of recipients in one read (BatchGetItem per 100), for
    ``admit_as_read``; nothing (and no AWS call) for a campaign without caps."""
    if not send_policy(campaign).capped:
        return {}
    return cap_counts_among(tenant_id, contact_ids, campaign.id)


def admit_as_read(
    tenant_id: str,
    campaign: Campaign,
    contact: Contact,
    now: datetime,
    *,
    due_at: datetime,
    read: CapCounts | None,
) -> Decision:
    """``admit`` starting from counts already read (``read_caps``), or reading them."""
    policy = send_policy(campaign)
    zone = zone_for(contact.timezone, campaign.timezone)
    waiting = when_to_send(policy, now=now, due_at=due_at, zone=zone)
    if waiting is not None:
        return waiting
    if not policy.capped:
        return within_caps(policy, now=now, tenant_counts={}, campaign_counts={})
    counts = read
    for _ in range(MAX_RACES):
        if counts is None:
            counts = cap_counts(tenant_id, contact.id, campaign.id)
        decision = within_caps(
            policy, now=now, tenant_counts=counts.tenant, campaign_counts=counts.campaign
        )
        if isinstance(decision, Skip):
            return decision
        if count_send(
            tenant_id, contact.id, campaign.id, read_as=counts, bucket=decision.bucket, now=now
        ):
            return decision
        counts = None  # another sender counted a message meanwhile: read again
    raise CapContention(f"the cap counters of contact {contact.id} kept changing")


def release(tenant_id: str, campaign: Campaign, contact_id: str, allowed: Allow) -> None:
    """Give back the slot an ``Allow`` counted, for a message that did not go out."""
    if send_policy(campaign).capped:
        uncount_send(tenant_id, contact_id, campaign.id, bucket=allowed.bucket)
