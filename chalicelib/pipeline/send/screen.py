"""Who may get a message on a channel now: one rule for the planner and the sender.

The planner screens each page when it plans it, the sender each batch again when it
sends it (a contact may have unsubscribed, lost its address or been suppressed in
between): both call ``screen``, so both skip for the same reasons, in the same order
(the contact's status, its address on the channel, for SMS the destination countries
the tenant may reach, the suppression list).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.channels.base import Channel
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason, contact_skip
from chalicelib.domain.limits import sms_allowed
from chalicelib.store.quotas import LIMITS_CACHE_SECONDS, get_limits
from chalicelib.store.suppression import suppressed_among


@dataclass(frozen=True)
class Screened:
    """The contacts that may get a message (with their address), and why the rest may not."""

    eligible: list[tuple[Contact, str]]
    skipped: list[SkipReason]


def screen(
    tenant_id: str,
    channel: Channel,
    contacts: Iterable[Contact],
    *,
    suppressed: set[str] | None = None,
) -> Screened:
    """Screen ``contacts`` for ``channel``: ONE ``suppressed_among`` call for all of them,
    none when the caller read the suppressed addresses with its own reads (``suppressed``:
    those of the contacts' addresses on the list; a flow's send, ``store.send_reads``)."""
    pending: list[tuple[Contact, str]] = []
    skipped: list[SkipReason] = []
    for contact in contacts:
        address = channel.address_of(contact)
        reason = contact_skip(contact.status, address, suppressed=False)
        if reason is not None or not address:
            skipped.append(reason or SkipReason.NO_ADDRESS)
        else:
            pending.append((contact, address))
    if channel.name == "sms" and pending:
        limits = get_limits(tenant_id, max_age=LIMITS_CACHE_SECONDS)
        reachable = [(c, a) for c, a in pending if sms_allowed(a, limits)]
        skipped.extend(SkipReason.COUNTRY_NOT_ALLOWED for _ in range(len(pending) - len(reachable)))
        pending = reachable
    if suppressed is None:
        suppressed = suppressed_among(tenant_id, [a for _, a in pending]) if pending else set()
    eligible = []
    for contact, address in pending:
        if address in suppressed:
            skipped.append(SkipReason.SUPPRESSED)
        else:
            eligible.append((contact, address))
    return Screened(eligible, skipped)
