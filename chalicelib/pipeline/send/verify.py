"""Address verification in the sender: only acceptable statuses are sent to.

For a campaign with ``verification.active``, each batch, after ``screen``:
1. ONE BatchGetItem of the cached results; a result younger than ``age_threshold`` days
   is used as it is;
2. the others are verified (one resolver lookup per distinct domain) while the campaign's
   budget lasts: ``max_budget`` thousands of fresh verifications per campaign, counted in
   its ``verifications`` counter (read once per batch; parallel batches can overshoot by
   at most one batch each). Past the budget an address is ``unknown``, uncached;
3. new results are cached (one BatchWriteItem per 25);
4. recipients whose status is not in ``acceptable_statuses`` are skipped with reason
   ``verification``.
A retried batch finds its own results cached, so it neither pays nor decides twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from chalicelib.channels.resolver import resolver_for
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.verification import (
    DomainRecords,
    Verdict,
    classify,
    domain_of,
    is_fresh,
    needs_lookup,
)
from chalicelib.settings import get_settings
from chalicelib.store.counters import add_counts, read_counts
from chalicelib.store.verifications import cached_verdicts, remember_verdicts

Recipient = tuple[Contact, str]
_OVER_BUDGET = Verdict("unknown", "budget_spent")


def verify_recipients(
    tenant_id: str, campaign: Campaign, recipients: Sequence[Recipient], now: datetime
) -> tuple[list[Recipient], int]:
    """The recipients whose address status the campaign accepts, and how many were not."""
    rule = campaign.verification
    if rule is None or not rule.active or not recipients:
        return list(recipients), 0
    addresses = [address.lower() for _, address in recipients]
    verdicts: dict[str, Verdict] = {
        address: Verdict(cached.status, cached.reason)
        for address, cached in cached_verdicts(tenant_id, addresses).items()
        if is_fresh(cached.checked_at, now, rule.age_threshold)
    }
    missing = [a for a in dict.fromkeys(addresses) if a not in verdicts]
    if missing:
        room = max(
            0, rule.max_verifications - read_counts(tenant_id, campaign.id).get("verifications", 0)
        )
        fresh = _verify(missing[:room])
        remember_verdicts(tenant_id, fresh, now)
        add_counts(tenant_id, campaign.id, {"verifications": len(fresh)}, uuid.uuid4().hex)
        verdicts.update(fresh)
        verdicts.update((address, _OVER_BUDGET) for address in missing[room:])
    accepted = set(rule.acceptable_statuses)
    kept = [(c, a) for c, a in recipients if verdicts[a.lower()].status in accepted]
    return kept, len(recipients) - len(kept)


def _verify(addresses: Sequence[str]) -> dict[str, Verdict]:
    resolver = resolver_for(get_settings())
    domains: dict[str, DomainRecords | None] = {}
    verdicts = {}
    for address in addresses:
        if needs_lookup(address):
            domain = domain_of(address)
            if domain not in domains:
                domains[domain] = resolver.records(domain)
            verdicts[address] = classify(address, domains[domain])
        else:
            verdicts[address] = classify(address, None)
    return verdicts
