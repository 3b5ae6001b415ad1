"""Use cases seed 000 needs beyond the native campaign ones: its event-triggered sends
(flows decided in full by the dialect) and audiences given as inline rules.

* ``create_flow`` / ``update_flow`` / ``delete_flow``: an ``event_triggered`` campaign is
  a flow whose graph the dialect compiled (``domain.flows.event_triggered``). Its email
  templates and senders are checked like any campaign's, the campaign is stored and its
  triggers published (``store.flow_triggers``, after every status or graph change).
  ``delete_flow`` goes through the flow service (``chalicelib.services.flows``);
  create and update still write the dialect's decision themselves (the flow service's
  create takes the native fields, not a compiled campaign).
* ``rules_segment``: the seed's ``segment_query`` is rules, Herald's audience names
  segments: each campaign gets one segment of its own, written in place on every change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chalicelib.domain.campaigns import Action, Campaign, CampaignStatus, check_channels
from chalicelib.domain.errors import NotFound
from chalicelib.domain.segments import SegmentGroup
from chalicelib.services import flows
from chalicelib.store import campaigns as store
from chalicelib.store import flow_triggers, segments
from chalicelib.store.senders import get_sender
from chalicelib.store.templates import get_template


def _check_pools(tenant_id: str, campaign: Campaign) -> None:
    templates = {}
    for template_id in campaign.template_ids:
        try:
            templates[template_id] = get_template(tenant_id, template_id).channel
        except NotFound:
            continue
    senders = {}
    for sender_id in campaign.sender_ids:
        try:
            senders[sender_id] = get_sender(tenant_id, sender_id).channel
        except NotFound:
            continue
    check_channels(campaign, templates, senders)


def create_flow(tenant_id: str, campaign: Campaign) -> Campaign:
    """Store a flow decided in full (its status included) and publish its triggers."""
    _check_pools(tenant_id, campaign)
    stored = store.add_campaign(tenant_id, campaign)
    flow_triggers.publish(tenant_id, stored)
    return stored


def update_flow(
    tenant_id: str, campaign_id: str, decide: Callable[[Campaign], Campaign], now: datetime
) -> Campaign:
    """Write ``decide(campaign)`` (one conditional write) and publish the triggers again.

    A move between ``active`` and ``paused`` (seed 000's ``enabled``) goes through the
    flow service's life cycle after the write, so that contacts held while it was
    disabled move on and the pause is announced (``campaign.paused``)."""
    wanted: list[CampaignStatus] = []

    def checked(current: Campaign) -> Campaign:
        after = decide(current)
        _check_pools(tenant_id, after)
        wanted[:] = [after.status]
        if {current.status, after.status} == {"active", "paused"}:
            return after.model_copy(update={"status": current.status})
        return after

    updated = store.update_with(tenant_id, campaign_id, checked)
    flow_triggers.publish(tenant_id, updated)
    if wanted and {updated.status, wanted[0]} == {"active", "paused"}:
        action: Action = "pause" if wanted[0] == "paused" else "resume"
        updated = flows.lifecycle(tenant_id, campaign_id, action, now)
    return updated


def delete_flow(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Cancel a live flow, then delete it, through the flow service: its waiting contacts
    leave (``campaign_ended``), its triggers and schedules go with it."""
    current = store.get_campaign(tenant_id, campaign_id)
    if current.status in ("active", "paused"):
        flows.cancel(tenant_id, campaign_id, now)
    return flows.delete(tenant_id, campaign_id, now)


def rules_segment(
    tenant_id: str, segment_id: str | None, name: str, tree: SegmentGroup, now: datetime
) -> str:
    """The id of the campaign's own segment holding ``tree`` (made on first use)."""
    if segment_id is not None:
        try:
            return segments.update_segment(tenant_id, segment_id, tree=tree, now=now).id
        except NotFound:
            pass
    made = segments.create_segment(tenant_id, name, "seed 000 segment_query", tree, now)
    return made.id
