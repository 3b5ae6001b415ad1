"""The tenant's live flow triggers: which flows an event or a segment change may enrol into.

An event arriving for a contact must find, in one read, every flow whose
``trigger.event`` names it, and a contact change every segment that a live
``trigger.segment_entry`` / ``trigger.segment_exit`` watches. Reading every campaign of
the tenant per event would cost a scan; instead each flow publishes its triggers here
whenever its status or graph changes (``publish``), and the readers query one small
partition (a tenant has tens of live flows, not thousands).

Live means ``active`` or ``paused``: a paused flow still enrols (held until it resumes,
docs/flows.md); a draft enrols only through the enrolment API, a finished flow never.

Layout (tenant scope): ``FLOWTRIGGERS`` / ``<campaign>#<node>`` →
``{campaign_id, node_id, kind, event_type?, segment_id?}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.campaigns import Campaign, CampaignStatus
from chalicelib.domain.flows.nodes import EventTrigger, SegmentTrigger
from chalicelib.store.table import tenant_table

_PARTITION = "FLOWTRIGGERS"
LIVE_STATUSES: frozenset[CampaignStatus] = frozenset({"active", "paused"})


@dataclass(frozen=True)
class LiveTrigger:
    """One trigger node of a live flow."""

    campaign_id: str
    node_id: str
    kind: str
    event_type: str | None = None
    segment_id: str | None = None


def publish(tenant_id: str, campaign: Campaign) -> None:
    """Make the index say what ``campaign`` triggers now: its trigger nodes while it is
    live, nothing otherwise (also after an edit removed a trigger). Idempotent."""
    table = tenant_table(tenant_id)
    wanted = {t.node_id: t for t in _triggers_of(campaign)}
    stale = [
        (_PARTITION, f"{campaign.id}#{item['node_id']}")
        for item in table.query_all(_PARTITION, sort_prefix=f"{campaign.id}#", consistent=True)
        if item["node_id"] not in wanted
    ]
    table.batch_delete(stale)
    table.batch_put(
        (_PARTITION, f"{t.campaign_id}#{t.node_id}", _stored(t)) for t in wanted.values()
    )


def withdraw(tenant_id: str, campaign_id: str) -> None:
    """Remove every trigger of a deleted campaign."""
    table = tenant_table(tenant_id)
    table.batch_delete(
        (_PARTITION, f"{campaign_id}#{item['node_id']}")
        for item in table.query_all(_PARTITION, sort_prefix=f"{campaign_id}#", consistent=True)
    )


def live_triggers(tenant_id: str) -> list[LiveTrigger]:
    """Every trigger of the tenant's live flows."""
    return [
        LiveTrigger(
            campaign_id=item["campaign_id"],
            node_id=item["node_id"],
            kind=item["kind"],
            event_type=item.get("event_type"),
            segment_id=item.get("segment_id"),
        )
        for item in tenant_table(tenant_id).query_all(_PARTITION)
    ]


def event_triggers(tenant_id: str, event_type: str) -> list[LiveTrigger]:
    return [t for t in live_triggers(tenant_id) if t.event_type == event_type]


def watched_segments(tenant_id: str) -> set[str]:
    """The segments some live segment trigger watches: the only ones a contact change
    needs to re-evaluate."""
    return {t.segment_id for t in live_triggers(tenant_id) if t.segment_id is not None}


def _triggers_of(campaign: Campaign) -> list[LiveTrigger]:
    if campaign.workflow is None or campaign.status not in LIVE_STATUSES:
        return []
    found = []
    for node in campaign.workflow.triggers():
        config = node.config
        found.append(
            LiveTrigger(
                campaign_id=campaign.id,
                node_id=node.id,
                kind=node.kind,
                event_type=config.event_type if isinstance(config, EventTrigger) else None,
                segment_id=config.segment_id if isinstance(config, SegmentTrigger) else None,
            )
        )
    return found


def _stored(trigger: LiveTrigger) -> dict[str, str | None]:
    return {
        "campaign_id": trigger.campaign_id,
        "node_id": trigger.node_id,
        "kind": trigger.kind,
        "event_type": trigger.event_type,
        "segment_id": trigger.segment_id,
    }
