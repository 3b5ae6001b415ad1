"""What a batch of flow wakes reads before it walks: ONE BatchGetItem per tenant instead
of a GetItem of each wake's enrolment and contact (and of each flow).

The flows queue hands its worker up to 10 wakes at once, mostly of one flow; each wake
reads its flow, its enrolment and its contact before its first step. Read together they
are one request of at most 21 keys. Strongly consistent, as the single reads are: a
step's claim is conditional on what it read, so a read a moment old costs a refused
claim and a fresh read, never a step taken twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.flows.step import Enrolment
from chalicelib.domain.flows.timers import enrolment_key
from chalicelib.store.campaigns import campaign_key
from chalicelib.store.contacts import contact_key, versioned
from chalicelib.store.enrolments import enrolment_from_item
from chalicelib.store.table import tenant_table


@dataclass
class WakeReads:
    """One tenant's reads for a batch of wakes. A key read and not found maps to None
    (an unknown flow is simply absent: its wakes read it again, and are dropped)."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    enrolments: dict[tuple[str, str], Enrolment | None] = field(default_factory=dict)
    contacts: dict[str, tuple[Contact, int] | None] = field(default_factory=dict)


def read_for_wakes(tenant_id: str, wakes: Iterable[tuple[str, str]]) -> WakeReads:
    """The flows, enrolments and contacts of ``wakes`` ((campaign, contact) pairs)."""
    pairs = list(dict.fromkeys(wakes))
    campaigns = {c: key for c in dict.fromkeys(c for c, _ in pairs) if (key := campaign_key(c))}
    people = {p: key for p in dict.fromkeys(p for _, p in pairs) if (key := contact_key(p))}
    enrolled = {pair: enrolment_key(*pair) for pair in pairs}
    found = tenant_table(tenant_id).batch_get(
        [*campaigns.values(), *people.values(), *enrolled.values()], consistent=True
    )
    reads = WakeReads()
    for campaign_id, key in campaigns.items():
        if (item := found.get(key)) is not None:
            reads.campaigns[campaign_id] = Campaign.model_validate(item)
    for contact_id, key in people.items():
        item = found.get(key)
        reads.contacts[contact_id] = versioned(item) if item is not None else None
    for (campaign_id, contact_id), key in enrolled.items():
        item = found.get(key)
        reads.enrolments[campaign_id, contact_id] = (
            enrolment_from_item(campaign_id, contact_id, item) if item is not None else None
        )
    return reads
