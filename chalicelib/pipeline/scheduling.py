"""When a campaign starts: its EventBridge Scheduler schedule, send-now, and the overdue sweep.

A scheduled campaign has one one-time schedule in Herald's group, named after the
campaign, firing ``at()`` its time (UTC) with the ``campaign.start`` message as input to
the control queue, and deleted by Scheduler after it fires. The planner's start is a
conditional status change (scheduled → calculating) refused when the campaign is not
due, so a duplicate, stale or early start message is harmless: that is what lets every
step here be simple.

Order of operations, so that no failure leaves a half-written state behind:
- schedule / reschedule / send now: the status is written first (conditionally, with
  the due-index entry), then the schedule or start message. If that fails, the status
  is restored and the error raised; if even the restore fails, the due index still
  holds the time and the sweep starts the campaign at most two minutes late.
- cancel / unschedule: the status is written first, then the schedule is deleted. A
  failed delete is only logged: a schedule that fires for a cancelled campaign finds it
  not scheduled and does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.domain.campaigns import Action, Campaign, resolve_scheduled_at
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import EndFlow, StartCampaign
from chalicelib.pipeline.queues import enqueue
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store

# Scheduler fires within seconds of at(); past this a start is considered lost.
OVERDUE_AFTER = timedelta(minutes=1)
SWEEP_LIMIT = 500  # starts per tick; anything beyond waits one more minute


def start_message(tenant_id: str, campaign_id: str) -> dict[str, Any]:
    """The control-queue message that starts a campaign (handled by the planner)."""
    return StartCampaign(tenant_id=tenant_id, campaign_id=campaign_id).as_message()


# -- EventBridge Scheduler ---------------------------------------------------------------
def schedule_request(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    """CreateSchedule/UpdateSchedule parameters for ``campaign``'s start.

    UpdateSchedule replaces every field, so both calls send the whole definition.
    """
    assert campaign.scheduled_at is not None
    return one_time_schedule(
        campaign.id,
        campaign.scheduled_at,
        f"Start of campaign {campaign.number} of tenant {tenant_id}",
        start_message(tenant_id, campaign.id),
    )


def one_time_schedule(
    name: str, at: datetime, description: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A schedule in Herald's group that sends ``message`` to the control queue once,
    ``at`` (whole seconds, UTC), and is deleted by Scheduler after it fires."""
    settings = get_settings()
    return {
        "Name": name,
        "GroupName": settings.schedule_group_name,
        "Description": description,
        "ScheduleExpression": f"at({at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "ActionAfterCompletion": "DELETE",
        "Target": {
            "Arn": settings.queue_arn("control"),
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps(message, separators=(",", ":")),
        },
    }


def put_schedule(tenant_id: str, campaign: Campaign, *, exists: bool) -> None:
    """Create the campaign's schedule, or update it when it ``exists``."""
    put_schedule_request(schedule_request(tenant_id, campaign), exists=exists)


def put_schedule_request(request: dict[str, Any], *, exists: bool) -> None:
    """Create a schedule, or update it when it ``exists``.

    Either call falls back to the other when the schedule turns out to be (or not be)
    there: a schedule lost, or left behind by an earlier attempt.
    """
    scheduler = client("scheduler")
    first, fallback, expected = (
        (scheduler.update_schedule, scheduler.create_schedule, "ResourceNotFoundException")
        if exists
        else (scheduler.create_schedule, scheduler.update_schedule, "ConflictException")
    )
    try:
        first(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] != expected:
            raise
        fallback(**request)


def delete_schedule(campaign_id: str) -> None:
    """Delete the campaign's schedule; one already gone (fired, or never made) is fine."""
    try:
        client("scheduler").delete_schedule(
            Name=campaign_id, GroupName=get_settings().schedule_group_name
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def _delete_schedule_quietly(campaign_id: str) -> None:
    try:
        delete_schedule(campaign_id)
    except ClientError:
        logger.warning(
            "schedule not deleted; its start will be refused",
            extra={"campaign_id": campaign_id},
            exc_info=True,
        )


def _or_restore(
    tenant_id: str, done: store.Change, now: datetime, effect: Callable[[], Any]
) -> None:
    """Run the side effect of ``done``; if it fails, put the campaign back and re-raise."""
    try:
        effect()
    except Exception:
        logger.exception(
            "campaign side effect failed; restoring", extra={"campaign_id": done.after.id}
        )
        try:
            store.restore(tenant_id, done, now)
        except Exception:  # the due index still covers it: the sweep starts it
            logger.exception("restore failed", extra={"campaign_id": done.after.id})
        raise


# -- actions -----------------------------------------------------------------------------
def schedule_campaign(
    tenant_id: str, campaign_id: str, when: datetime, timezone: str | None, now: datetime
) -> Campaign:
    """Schedule a draft, or reschedule a scheduled campaign, to start at ``when``.

    ``when`` without an offset is read in ``timezone`` (which the campaign then keeps)
    or else the campaign's own timezone.
    """
    current = store.get_campaign(tenant_id, campaign_id)
    fields: dict[str, Any] = {
        "scheduled_at": resolve_scheduled_at(when, timezone or current.timezone)
    }
    if timezone:
        fields["timezone"] = timezone
    action: Action = "reschedule" if current.status == "scheduled" else "schedule"
    done = store.change(tenant_id, campaign_id, action, now, **fields)
    exists = done.before.status == "scheduled"
    _or_restore(tenant_id, done, now, lambda: put_schedule(tenant_id, done.after, exists=exists))
    return done.after


def send_now(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Start a draft or scheduled campaign now: it is due at once and its start is queued."""
    done = store.change(tenant_id, campaign_id, "send_now", now)
    _or_restore(
        tenant_id, done, now, lambda: enqueue("control", [start_message(tenant_id, campaign_id)])
    )
    if done.before.status == "scheduled":
        _delete_schedule_quietly(campaign_id)
    return done.after


def cancel(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Cancel a campaign in any state that is not final; its schedule goes with it."""
    done = store.change(tenant_id, campaign_id, "cancel", now)
    if done.before.status == "scheduled":
        _delete_schedule_quietly(campaign_id)
    return done.after


def unschedule(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Take a scheduled campaign back to draft (seed 003's SCHEDULED → DRAFT)."""
    done = store.change(tenant_id, campaign_id, "unschedule", now)
    _delete_schedule_quietly(campaign_id)
    return done.after


# -- the sweep ---------------------------------------------------------------------------
def start_overdue(now: datetime) -> None:
    """Queue the start of every campaign whose time passed over a minute ago without one
    (and the end of every flow whose ``ends_at`` did).

    A lost or failed schedule is the only way to get here. The entry is forgotten once
    the start is queued, so each is queued once; a start queued twice (the schedule fired
    after all) is refused by the planner's conditional start.
    """
    entries = store.due_entries(until=now - OVERDUE_AFTER, limit=SWEEP_LIMIT)
    if not entries:
        return
    enqueue("control", [_due_message(e) for e in entries])
    store.forget_due(entries)
    metrics.add_metric(name="campaign_starts_swept", unit="Count", value=len(entries))
    logger.warning("started overdue campaigns", extra={"count": len(entries)})


def _due_message(entry: store.DueEntry) -> dict[str, Any]:
    """A broadcast's start, or a flow's end (its ``ends_at`` schedule went missing)."""
    if entry.due == "end":
        return EndFlow(tenant_id=entry.tenant_id, campaign_id=entry.campaign_id).as_message()
    return start_message(entry.tenant_id, entry.campaign_id)
