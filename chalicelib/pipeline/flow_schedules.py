"""What a flow's schedules fire (chalicelib.pipeline.flow_scheduling): its end, and its
scheduled triggers entering the audience a page at a time.

Both may arrive twice, late, or after the flow changed (Scheduler is at least once; a
schedule deleted too late still fires): each handler re-reads the flow and acts only
when the message still describes it.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import START_LEEWAY
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.domain.flows.nodes import ScheduledTrigger
from chalicelib.observability import logger
from chalicelib.pipeline.flow_scheduling import arm_trigger, fires_at
from chalicelib.pipeline.messages import EndFlow, EnterAudience
from chalicelib.pipeline.queues import enqueue
from chalicelib.resources import consumer_timeout_seconds
from chalicelib.services import flows
from chalicelib.services.enrolments import enrol_contacts, selection_page
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.ledger import WorkUnit, finish, take_lease


def end_flow(message: dict[str, Any]) -> None:
    """Complete the flow if its ``ends_at`` has come; a moved or finished one is left."""
    end = EndFlow.model_validate(message)
    now = clock.now()
    try:
        campaign = get_campaign(end.tenant_id, end.campaign_id)
    except NotFound:
        return
    if campaign.family != "flow" or campaign.ends_at is None:
        return
    if campaign.ends_at > now + START_LEEWAY:
        logger.info("flow end not due (ends_at moved)", extra={"campaign_id": campaign.id})
        return
    try:
        flows.complete(end.tenant_id, campaign.id, now)
    except InvalidTransition as refused:
        logger.info("flow end refused", extra={"current": refused.current})


def enter_audience(message: dict[str, Any]) -> None:
    """One page of a trigger's selection: a ``trigger.scheduled`` firing, or a trigger
    processed by hand (its pages after the request's first): enrol the page's contacts at
    the trigger; queue the next page; on page 0 of a cron, arm the next firing.

    Each page is a unit of work with a lease (``FLOWFIRE``): a duplicate delivery of a done
    page does nothing, a retry after a crash enrols the page again (already enrolled
    contacts answer ``already_enrolled``: one enrolment per contact per flow).
    """
    entry = EnterAudience.model_validate(message)
    now = clock.now()
    try:
        campaign = get_campaign(entry.tenant_id, entry.campaign_id)
    except NotFound:
        return
    workflow = campaign.workflow
    node = workflow.by_id.get(entry.node_id) if workflow is not None else None
    config = node.config if node is not None else None
    fired = isinstance(config, ScheduledTrigger) and fires_at(config, entry.fire_at)
    if campaign.status != "active" or node is None or not (entry.by_hand or fired):
        logger.info("stale trigger page", extra={"status": campaign.status})
        return
    unit = WorkUnit(
        entry.tenant_id,
        campaign.id,
        "FLOWFIRE",
        f"{node.id}#{entry.fire_at:%Y%m%dT%H%M%S}#{entry.page:06d}",
    )
    lease = take_lease(unit, now, _lease_seconds())
    if lease.status != "taken":
        if lease.status == "busy":  # another worker holds it: look again after its lease
            enqueue("control", [entry.as_message()], delay_seconds=_lease_seconds())
        return
    if entry.page == 0 and isinstance(config, ScheduledTrigger) and config.cron is not None:
        arm_trigger(entry.tenant_id, campaign, node, after=entry.fire_at)
    contacts, cursor = selection_page(
        entry.tenant_id, campaign.audience, entry.segment_id, entry.cursor, entry.fire_at
    )
    if contacts:
        enrol_contacts(
            entry.tenant_id, campaign.id, [c.id for c in contacts], now, trigger_node_id=node.id
        )
    if cursor is not None:
        following = entry.model_copy(update={"page": entry.page + 1, "cursor": cursor})
        enqueue("control", [following.as_message()])
    finish(unit, now, {"enrolled": len(contacts)})


def _lease_seconds() -> int:
    return consumer_timeout_seconds("control")
