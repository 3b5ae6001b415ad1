"""When a campaign is sent: decided from its counters alone, O(1) whatever its size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.errors import InvalidTransition
from chalicelib.observability import logger
from chalicelib.pipeline.iterations import iteration_sent
from chalicelib.store.campaigns import apply_action, get_campaign
from chalicelib.store.counters import forget_markers, read_counts


def count_unit(batch_id: str) -> str:
    """The name a batch counts under (``add_counts_once``); its children add ``/children_<n>``."""
    return f"BATCH#{batch_id}"


def close_batch(tenant_id: str, campaign_id: str, batch_id: str, state: Mapping[str, Any]) -> None:
    """The steps after a batch is done, safe to repeat: the completion check, then dropping
    its count markers (no attempt can count it again once it is done)."""
    check_completion(tenant_id, campaign_id)
    unit = count_unit(batch_id)
    children = [f"{unit}/{name}" for name in state if name.startswith("children_")]
    forget_markers(tenant_id, campaign_id, batch_id, [unit, *children])


def check_completion(tenant_id: str, campaign_id: str) -> bool:
    """Move the campaign to ``sent`` once planning is over and every batch is done.

    Called after every batch and after the last planner page; each reads after its own
    write, so whichever finishes last sees the other's. O(1): the campaign and the
    counter shards (two reads), whatever the campaign's size. Every unit counts exactly
    once (``add_counts_once``), children before they are queued and planner pages before
    planning is marked done, so ``batches_done`` reaching ``planned_batches +
    batches_spawned`` means every batch is done with every count in. The transition is
    conditional: one caller wins.
    """
    campaign = get_campaign(tenant_id, campaign_id)
    if campaign.status not in ("sending", "paused") or not campaign.planning_done:
        return False
    counts = read_counts(tenant_id, campaign_id)
    expected = (campaign.planned_batches or 0) + counts.get("batches_spawned", 0)
    if counts.get("batches_done", 0) < expected:
        return False
    if campaign.iterations is not None and not campaign.iterations.last:
        # An automation with another iteration to come: its gate decides what follows.
        if campaign.status == "sending":
            iteration_sent(tenant_id, campaign_id, clock.now())
        return False
    try:
        apply_action(tenant_id, campaign_id, "complete", clock.now())
    except InvalidTransition:
        return False
    logger.info("campaign sent", extra={"sent": counts.get("sent", 0)})
    return True
