"""A flow's campaign-level times in EventBridge Scheduler: its end and its scheduled triggers.

Per-contact timers never go to Scheduler (docs/flows.md, "Timers"); a flow has at most a
handful of schedules, each a one-time ``at()`` schedule in Herald's group that sends a
control-queue message and is deleted after it fires:

- ``<campaign>-end`` fires ``flow.end`` at ``ends_at`` while the flow is live (active or
  paused): the flow completes. A lost one is caught by the overdue sweep, which reads
  the same due index as broadcast starts (``store.campaigns`` files a live flow's
  ``ends_at`` there).
- ``<campaign>-t-<hash of the node id>`` fires ``flow.enter_audience`` at the next firing
  of a ``trigger.scheduled`` while the flow is active: ``at`` once, a ``cron`` at its next
  time in its timezone; the handler arms the one after (one schedule per trigger, never
  a recurring Scheduler expression, so the local emulator fires them as AWS does).

``follow`` makes the schedules match what the flow is now and is called after every
status change or edit, so arming is idempotent: a create that finds the schedule there
updates it. Deleting is quiet: a schedule that fires after its flow moved on finds it
not live (or the trigger changed) and does nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.flows.graph import Node
from chalicelib.domain.flows.nodes import ScheduledTrigger
from chalicelib.domain.flows.timing import parse_cron
from chalicelib.observability import logger
from chalicelib.pipeline.messages import EndFlow, EnterAudience
from chalicelib.pipeline.scheduling import delete_schedule, one_time_schedule, put_schedule_request
from chalicelib.store.flow_triggers import LIVE_STATUSES


def end_schedule_name(campaign_id: str) -> str:
    return f"{campaign_id}-end"


def trigger_schedule_name(campaign_id: str, node_id: str) -> str:
    """Within Scheduler's 64 characters whatever the node id (up to 64 itself)."""
    return f"{campaign_id}-t-{hashlib.sha256(node_id.encode()).hexdigest()[:16]}"


def next_fire(config: ScheduledTrigger, after: datetime) -> datetime | None:
    """The trigger's first firing strictly after ``after``; None when it never fires again."""
    if config.at is not None:
        return config.at if config.at > after else None
    assert config.cron is not None
    return parse_cron(config.cron).next_fire(after, config.zone)


def fires_at(config: ScheduledTrigger, at: datetime) -> bool:
    """Whether ``at`` is a firing time of the trigger as it is now (a schedule armed for a
    trigger that was edited since is stale)."""
    if config.at is not None:
        return config.at == at
    assert config.cron is not None
    return parse_cron(config.cron).next_fire(at - timedelta(seconds=1), config.zone) == at


def follow(tenant_id: str, campaign: Campaign, now: datetime) -> None:
    """Arm the schedules ``campaign`` needs in its current state; delete the rest."""
    if campaign.family != "flow":
        return
    if campaign.status in LIVE_STATUSES and campaign.ends_at is not None:
        message = EndFlow(tenant_id=tenant_id, campaign_id=campaign.id).as_message()
        put_schedule_request(
            one_time_schedule(
                end_schedule_name(campaign.id),
                campaign.ends_at,
                f"End of flow {campaign.number} of tenant {tenant_id}",
                message,
            ),
            exists=False,
        )
    else:
        _delete_quietly(end_schedule_name(campaign.id))
    for node in _scheduled_triggers(campaign):
        if campaign.status == "active":
            arm_trigger(tenant_id, campaign, node, after=now)
        else:
            _delete_quietly(trigger_schedule_name(campaign.id, node.id))


def arm_trigger(tenant_id: str, campaign: Campaign, node: Node, *, after: datetime) -> None:
    """Arm ``node``'s next firing after ``after`` (or delete its schedule: none is left)."""
    assert isinstance(node.config, ScheduledTrigger)
    name = trigger_schedule_name(campaign.id, node.id)
    at = next_fire(node.config, after)
    if at is None:
        _delete_quietly(name)
        return
    message = EnterAudience(
        tenant_id=tenant_id, campaign_id=campaign.id, node_id=node.id, fire_at=at
    ).as_message()
    description = f"Trigger {node.id} of flow {campaign.number} of tenant {tenant_id}"
    put_schedule_request(one_time_schedule(name, at, description, message), exists=False)


def disarm(campaign: Campaign) -> None:
    """Delete every schedule of a flow that is being deleted."""
    _delete_quietly(end_schedule_name(campaign.id))
    for node in _scheduled_triggers(campaign):
        _delete_quietly(trigger_schedule_name(campaign.id, node.id))


def _scheduled_triggers(campaign: Campaign) -> list[Node]:
    workflow = campaign.workflow
    if workflow is None:
        return []
    return [node for node in workflow.nodes if isinstance(node.config, ScheduledTrigger)]


def _delete_quietly(name: str) -> None:
    try:
        delete_schedule(name)
    except ClientError:
        logger.warning("flow schedule not deleted; it will find nothing to do", exc_info=True)
