"""Automation iterations between their sends: settle, gate, schedule the next one.

The planner plans an iteration (``PlanMessage.quota``) and the sender sends it as any
broadcast's batches. When the completion check finds every batch done and another
iteration to come, it calls ``iteration_sent`` instead of completing the campaign:

1. ``iteration_sent`` records when the iteration finished (once: a conditional write)
   and queues ``automation.settle``;
2. ``settle_iteration`` waits (SQS delays of ``gate_poll_seconds``) until the
   iteration's feedback has settled, then applies the delivery gate: below
   ``min_delivery_rate`` the campaign pauses (``pause_reason`` ``delivery_rate``), else
   the next iteration is due ``send_interval`` minutes later (minutes of
   ``automation_interval_unit_seconds``: 60 but in tests and demos), through an
   EventBridge Scheduler one-shot named ``<campaign>-i<n>`` (or at once for 0);
3. ``start_iteration`` moves the campaign sending → calculating (``iterate``) with the
   counters read at that moment as the new iteration's baseline, and queues the planner's
   first page of it.

Every step is a conditional write on the campaign followed by a queue call, and every
handler re-checks the state it expects, so duplicates and retries change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import automation, clock
from chalicelib.domain.automation import IterationState
from chalicelib.domain.campaigns import Campaign, with_progress
from chalicelib.domain.deliverability import delivery_rate, gate_trip
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.pipeline.breaker import pause_for
from chalicelib.pipeline.messages import IterationSettle, IterationStart, PlanMessage
from chalicelib.pipeline.queues import enqueue
from chalicelib.pipeline.scheduling import one_time_schedule, put_schedule_request
from chalicelib.settings import get_settings
from chalicelib.store.campaigns import apply_action, get_campaign, update_with
from chalicelib.store.counters import read_counts

# Outcomes that resolve a sent message for the gate (a complaint follows a delivery).
_RESOLVED = ("delivered", "bounced", "rejected")


def _resolved(counts: Mapping[str, int]) -> int:
    return sum(counts.get(name, 0) for name in _RESOLVED)


def iteration_sent(tenant_id: str, campaign_id: str, now: datetime) -> None:
    """Every batch of the current iteration is done: note it (once) and start settling."""
    recorded: list[IterationState] = []

    def finish(current: Campaign) -> Campaign:
        state = current.iterations
        if current.status != "sending" or state is None or state.finished_at is not None:
            return current
        finished = state.model_copy(update={"finished_at": now})
        recorded.append(finished)
        return with_progress(current, now, iterations=finished)

    update_with(tenant_id, campaign_id, finish)
    if recorded:
        settle = IterationSettle(
            tenant_id=tenant_id,
            campaign_id=campaign_id,
            iteration=recorded[-1].current_iteration,
        )
        enqueue("control", [settle.as_message()])


def settle_iteration(message: dict[str, Any]) -> None:
    """Gate the next iteration once the last one's feedback has settled (see above)."""
    settle = IterationSettle.model_validate(message)
    try:
        campaign = get_campaign(settle.tenant_id, settle.campaign_id)
    except NotFound:
        return
    state = campaign.iterations
    if (
        campaign.status != "sending"
        or state is None
        or state.current_iteration != settle.iteration
        or state.finished_at is None
        or state.settled_at is not None
    ):
        return  # paused, cancelled, or settled by an earlier copy of this message
    now = clock.now()
    settings = get_settings()
    counts = read_counts(settle.tenant_id, campaign.id)
    sent = counts.get("sent", 0) - state.sent_before
    resolved = _resolved(counts) - state.resolved_before
    if not automation.settled(
        sent,
        resolved,
        state.finished_at,
        now,
        share=settings.gate_settled_share,
        minutes=settings.gate_settle_minutes,
    ):
        enqueue("control", [message], delay_seconds=settings.gate_poll_seconds)
        return
    delivered = counts.get("delivered", 0) - state.delivered_before
    bounced = counts.get("bounced", 0) - state.bounced_before
    rate = delivery_rate(delivered, bounced)
    plan = campaign.automation_plan
    trip = gate_trip(delivered, bounced, plan.min_delivery_rate)
    if trip is not None:
        gated = state.model_copy(
            update={"settled_at": now, "delivery_rate": rate, "reason": trip.message}
        )
        pause_for(settle.tenant_id, campaign.id, trip, now, iterations=gated)
        return
    interval = timedelta(seconds=plan.send_interval * settings.automation_interval_unit_seconds)
    next_send_at = (now + interval).replace(microsecond=0)
    waiting = state.model_copy(
        update={"settled_at": now, "next_send_at": next_send_at, "delivery_rate": rate}
    )
    written = update_with(
        settle.tenant_id,
        campaign.id,
        lambda current: (
            with_progress(current, now, iterations=waiting)
            if current.status == "sending" and current.iterations == state
            else current
        ),
    )
    if written.iterations == waiting:
        schedule_next(settle.tenant_id, campaign.id, settle.iteration + 1, next_send_at, now)


def schedule_next(
    tenant_id: str, campaign_id: str, iteration: int, at: datetime, now: datetime
) -> None:
    """Start ``iteration`` at ``at``: a Scheduler one-shot, or the queue when it is due."""
    start = IterationStart(tenant_id=tenant_id, campaign_id=campaign_id, iteration=iteration)
    if at <= now:
        enqueue("control", [start.as_message()])
        return
    request = one_time_schedule(
        f"{campaign_id}-i{iteration}",
        at,
        f"Iteration {iteration} of campaign {campaign_id} of tenant {tenant_id}",
        start.as_message(),
    )
    put_schedule_request(request, exists=False)


def start_iteration(message: dict[str, Any]) -> None:
    """Plan the next iteration (once, however often the message comes)."""
    start = IterationStart.model_validate(message)
    now = clock.now()
    try:
        campaign = get_campaign(start.tenant_id, start.campaign_id)
    except NotFound:
        return
    state = campaign.iterations
    if state is None:
        return
    if campaign.status == "sending" and state.current_iteration == start.iteration - 1:
        if not state.waiting:
            return
        counts = read_counts(start.tenant_id, campaign.id)
        begun = IterationState(
            current_iteration=start.iteration,
            planned=state.planned,
            next_page=state.next_page,
            next_cursor=state.next_cursor,
            sent_before=counts.get("sent", 0),
            delivered_before=counts.get("delivered", 0),
            bounced_before=counts.get("bounced", 0),
            resolved_before=_resolved(counts),
            delivery_rate=state.delivery_rate,
        )
        try:
            campaign = apply_action(
                start.tenant_id,
                campaign.id,
                "iterate",
                now,
                planning_done=False,
                iterations=begun,
            )
        except InvalidTransition:
            return  # another copy of this message came first
    elif not (campaign.status == "calculating" and state.current_iteration == start.iteration):
        return  # stale: paused, cancelled, or this iteration is planned already
    # (calculating in this iteration: an earlier copy died before queueing its first page;
    # the page's lease drops any duplicate)
    assert campaign.iterations is not None
    first = PlanMessage(
        tenant_id=start.tenant_id,
        campaign_id=campaign.id,
        page=campaign.iterations.next_page,
        cursor=campaign.iterations.next_cursor,
        recipients=campaign.total_recipients or 0,
        batches=campaign.planned_batches or 0,
        quota=automation.quota(
            campaign.automation_plan, start.iteration, campaign.iterations.planned
        ),
    )
    enqueue("control", [first.as_message()])
