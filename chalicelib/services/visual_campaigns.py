"""Use cases seed 004 (visual-editor campaigns, docs/api-seed-004.md) needs beyond the
native flow and broadcast ones, which it calls for everything else.

* ``every``: the tenant's campaigns made through seed 004, newest first.
* ``counts``: a campaign's counters, one BatchGetItem (never a scan).
* ``delete``: permanent; a live flow is cancelled first through the flow service, so its
  waiting contacts leave (``campaign_ended``) and nothing is sent afterwards; a live
  broadcast is cancelled through the broadcast service.
* ``enter_members`` / ``enter_audience``: a trigger processed by hand enrols the
  contacts it selects now (a segment's members, the campaign's audience), page by page
  through the enrolment service (one enrolment per contact: a repeat is
  ``already_enrolled``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.campaigns import FINAL_STATUSES, Campaign, CampaignFilter
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import NotFound
from chalicelib.services import campaigns as broadcasts
from chalicelib.services import seed_campaigns
from chalicelib.services.enrolments import EnrolmentAnswer, enrol_contacts
from chalicelib.store import campaigns as store
from chalicelib.store.audience import audience_page, iter_audience
from chalicelib.store.contacts import scan_contacts
from chalicelib.store.counters import read_counts

DIALECT = "seed004"  # dialect_data["dialect"] of a campaign made through seed 004
PAGE_SIZE = 500


def made_here(campaign: Campaign) -> bool:
    return (campaign.dialect_data or {}).get("dialect") == DIALECT


def every(tenant_id: str) -> list[Campaign]:
    """The tenant's seed-004 campaigns, newest first."""
    found = store.matching_campaigns(tenant_id, CampaignFilter(), "-created")
    return [campaign for campaign in found if made_here(campaign)]


def get(tenant_id: str, campaign_id: str) -> Campaign:
    """A seed-004 campaign of the tenant (any other campaign, or another tenant's: 404)."""
    try:
        campaign = store.get_campaign(tenant_id, campaign_id)
    except NotFound:
        campaign = None
    if campaign is None or not made_here(campaign):
        raise NotFound(f"campaign '{campaign_id}' not found", field="campaignId")
    return campaign


def counts(tenant_id: str, campaign: Campaign) -> dict[str, int]:
    return read_counts(tenant_id, campaign.id)


def delete(tenant_id: str, campaign: Campaign, now: datetime) -> None:
    if campaign.family == "flow":
        seed_campaigns.delete_flow(tenant_id, campaign.id, now)
        return
    if campaign.status not in FINAL_STATUSES and campaign.status != "draft":
        broadcasts.cancel(tenant_id, campaign.id, now)
    broadcasts.delete(tenant_id, campaign.id, now)


@dataclass(frozen=True)
class Entered:
    """What processing a trigger did: contacts enrolled, and those already in the flow."""

    enrolled: int = 0
    already_enrolled: int = 0
    errors: int = 0

    def plus(self, answers: list[EnrolmentAnswer]) -> Entered:
        return Entered(
            self.enrolled + sum(a.outcome == "enrolled" for a in answers),
            self.already_enrolled + sum(a.outcome == "already_enrolled" for a in answers),
            self.errors + sum(a.outcome == "error" for a in answers),
        )


def enter_members(
    tenant_id: str, campaign_id: str, node_id: str, segment_id: str, now: datetime
) -> Entered:
    """Enrol the segment's members now, at the trigger ``node_id``."""
    entered = Entered()
    for page in iter_audience(tenant_id, segment_ids=[segment_id], now=now, page_size=PAGE_SIZE):
        entered = _enter(tenant_id, campaign_id, node_id, page, now, so_far=entered)
    return entered


def enter_audience(tenant_id: str, campaign: Campaign, node_id: str, now: datetime) -> Entered:
    """Enrol the campaign's audience now, at the trigger ``node_id`` (every contact when
    the audience is everyone)."""
    spec = campaign.audience.spec()
    page_of: Callable[[str | None], tuple[list[Contact], str | None]]
    if spec is None:
        page_of = lambda cursor: scan_contacts(tenant_id, cursor, PAGE_SIZE)  # noqa: E731
    else:
        page_of = lambda cursor: audience_page(tenant_id, spec, cursor, PAGE_SIZE, now)  # noqa: E731
    entered, cursor = Entered(), None
    while True:
        page, cursor = page_of(cursor)
        if page:
            entered = _enter(tenant_id, campaign.id, node_id, page, now, so_far=entered)
        if cursor is None:
            return entered


def _enter(
    tenant_id: str,
    campaign_id: str,
    node_id: str,
    page: list[Contact],
    now: datetime,
    *,
    so_far: Entered,
) -> Entered:
    answers = enrol_contacts(
        tenant_id, campaign_id, [c.id for c in page], now, trigger_node_id=node_id
    )
    return so_far.plus(answers)
