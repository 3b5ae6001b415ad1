"""Automation iterations: a broadcast sent in growing slices, each gated on the delivery
rate of the one before (docs/engine.md, "Automation iterations").

An ``automation`` campaign is a broadcast whose audience is planned ``iteration_size``
recipients at a time. After an iteration's batches are all done, its feedback is given
time to settle (``settled``); then the delivery gate (``domain.deliverability.gate_trip``)
either pauses the campaign or lets the next iteration start ``send_interval`` minutes
later. What the pipeline keeps between iterations is ``IterationState`` on the campaign.
Nothing here reads the clock or AWS.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from chalicelib.domain.model import Model

MAX_AMOUNT = 10_000_000


class AutomationPlan(Model):
    """How an automation sends (seed 000's ``automation_send``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    send_amount: int | None = Field(
        default=None,
        ge=1,
        le=MAX_AMOUNT,
        description="Recipients in all (null: the whole audience).",
    )
    iteration_send_amount: int = Field(default=200, ge=1, le=MAX_AMOUNT)
    min_delivery_rate: float = Field(
        default=92,
        ge=0,
        le=100,
        description="Percent; an iteration delivering less pauses the campaign.",
    )
    send_interval: int = Field(
        default=10,
        ge=0,
        le=60 * 24 * 30,
        description="Minutes between an iteration's feedback settling and the next one.",
    )
    is_incremental_send: bool = Field(
        default=True, description="Each iteration is iteration_send_amount larger."
    )
    max_iterations: int = Field(default=0, ge=0, description="0: until the audience is sent.")
    max_iteration_send_amount: int = Field(default=1000, ge=1, le=MAX_AMOUNT)


class IterationState(Model):
    """Where an automation is: written by the planner, the completion check and the gate."""

    model_config = ConfigDict(frozen=True)

    current_iteration: int = Field(default=0, ge=0)
    planned: int = Field(default=0, ge=0, description="Recipients planned, all iterations.")
    iteration_planned: int = Field(default=0, ge=0)
    next_page: int = Field(default=0, ge=0, description="The next iteration's first page.")
    next_cursor: str | None = Field(
        default=None, description="Where the next iteration reads the audience from."
    )
    last: bool = Field(default=False, description="No iteration comes after this one.")
    # counters at the start of the current iteration: its own numbers are the difference
    sent_before: int = 0
    delivered_before: int = 0
    bounced_before: int = 0
    resolved_before: int = 0
    finished_at: datetime | None = Field(
        default=None, description="The current iteration's last batch was done."
    )
    settled_at: datetime | None = None
    next_send_at: datetime | None = None
    delivery_rate: float | None = Field(
        default=None, description="The last gated iteration's rate, percent."
    )
    reason: str | None = Field(default=None, description="Why the gate stopped the campaign.")

    @property
    def waiting(self) -> bool:
        """Between iterations: the current one is sent, the next not started."""
        return self.finished_at is not None and not self.last


def iteration_size(plan: AutomationPlan, iteration: int) -> int:
    """Recipients of ``iteration`` (1-based): ``iteration_send_amount``, growing by it each
    iteration when incremental, never above ``max_iteration_send_amount``."""
    grown = plan.iteration_send_amount * (iteration if plan.is_incremental_send else 1)
    return min(grown, plan.max_iteration_send_amount)


def quota(plan: AutomationPlan, iteration: int, planned_before: int) -> int:
    """How many recipients ``iteration`` may plan, ``send_amount`` taken into account."""
    size = iteration_size(plan, iteration)
    if plan.send_amount is not None:
        size = min(size, plan.send_amount - planned_before)
    return max(size, 0)


def is_last(plan: AutomationPlan, iteration: int, planned: int, exhausted: bool) -> bool:
    """No iteration follows ``iteration``: the audience is used up, ``send_amount`` is
    reached, or ``max_iterations`` is."""
    return (
        exhausted
        or (plan.send_amount is not None and planned >= plan.send_amount)
        or (plan.max_iterations > 0 and iteration >= plan.max_iterations)
    )


def settled(
    sent: int, resolved: int, finished_at: datetime, now: datetime, *, share: float, minutes: int
) -> bool:
    """An iteration's feedback has settled: ``share`` of its sends have an outcome, or
    ``minutes`` have passed since its last send (some outcomes never come)."""
    return resolved >= sent * share or now >= finished_at + timedelta(minutes=minutes)


def countdown(
    next_send_at: datetime | None, settled_at: datetime | None, now: datetime
) -> tuple[int, int]:
    """(total, remaining) seconds of the wait for the next iteration; (0, 0) if none."""
    if next_send_at is None:
        return 0, 0
    start = settled_at or now
    total = max(0, int((next_send_at - start).total_seconds()))
    remaining = max(0, int((next_send_at - now).total_seconds()))
    return total, min(total, remaining)
