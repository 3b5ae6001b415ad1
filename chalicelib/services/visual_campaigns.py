"""Use cases seed 004 (visual-editor campaigns, docs/api-seed-004.md) needs beyond the
native flow and broadcast ones, which it calls for everything else.

* ``every``: the tenant's campaigns made through seed 004, newest first.
* ``counts``: a campaign's counters, one BatchGetItem (never a scan).
* ``delete``: permanent; a live flow is cancelled first through the flow service, so its
  waiting contacts leave (``campaign_ended``) and nothing is sent afterwards; a live
  broadcast is cancelled through the broadcast service.
* ``enter_selection``: a trigger processed by hand enrols the contacts it selects now (a
  segment's members, the campaign's audience) through the enrolment service (one
  enrolment per contact: a repeat is ``already_enrolled``): the first page within the
  request, the rest through the control queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.campaigns import FINAL_STATUSES, Campaign, CampaignFilter
from chalicelib.domain.errors import NotFound
from chalicelib.pipeline.messages import EnterAudience
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import campaigns as broadcasts
from chalicelib.services import seed_campaigns
from chalicelib.services.enrolments import enrol_contacts, selection_page
from chalicelib.store import campaigns as store
from chalicelib.store.counters import read_counts

DIALECT = "seed004"  # dialect_data["dialect"] of a campaign made through seed 004


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
    """What processing a trigger did within the request: contacts enrolled, those already
    in the flow, errors; ``queued``: more pages follow through the control queue."""

    enrolled: int = 0
    already_enrolled: int = 0
    errors: int = 0
    queued: bool = False


def enter_selection(
    tenant_id: str, campaign: Campaign, node_id: str, segment_id: str | None, now: datetime
) -> Entered:
    """Enrol whom the trigger ``node_id`` selects now (``segment_id``'s members, else the
    campaign's audience): the first page within the request, every later one through the
    control queue (``EnterAudience`` by hand, a lease per page), so a large audience never
    holds the request open."""
    page, cursor = selection_page(tenant_id, campaign.audience, segment_id, None, now)
    answers = (
        enrol_contacts(tenant_id, campaign.id, [c.id for c in page], now, trigger_node_id=node_id)
        if page
        else []
    )
    if cursor is not None:
        following = EnterAudience(
            tenant_id=tenant_id,
            campaign_id=campaign.id,
            node_id=node_id,
            fire_at=now,
            page=1,
            cursor=cursor,
            by_hand=True,
            segment_id=segment_id,
        )
        enqueue("control", [following.as_message()])
    return Entered(
        enrolled=sum(a.outcome == "enrolled" for a in answers),
        already_enrolled=sum(a.outcome == "already_enrolled" for a in answers),
        errors=sum(a.outcome == "error" for a in answers),
        queued=cursor is not None,
    )
