"""The watchdog: no campaign stays ``calculating`` or ``sending`` for ever.

Every minute (the ``campaigns.watchdog`` tick job in app.py) it reads each running
campaign (``store.running``) and its pipeline counters (O(1) each). A campaign whose
counters and status have not moved for ``settings.stuck_campaign_minutes`` is examined,
once, in the background (one Query of its PLAN and BATCH items, the only place the
pipeline reads them all):
- a live lease, or a quiet-hours child not yet due: it is working or waiting, not stuck;
- otherwise whatever can be re-driven is: the next planner page not queued (or the one
  that died), stored batches or children not done (queued again; their leases drop any
  copy), or, when every unit is done, the counters reconciled with the units' own
  outcomes (one ``correction`` item) and the completion check run;
- after ``MAX_REDRIVES`` re-drives without progress the campaign is failed with an
  ``error_message`` that says what was stuck.
Each stuck campaign found adds to the ``stuck_campaigns`` metric, which an alarm watches
(infra/monitoring.py). docs/engine.md has the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import FINAL_STATUSES, Campaign
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import BatchMessage, PlanMessage
from chalicelib.pipeline.planner import PlannedPage, conclude_chains, page_unit_id
from chalicelib.pipeline.queues import enqueue
from chalicelib.pipeline.scheduling import start_message
from chalicelib.pipeline.send.completion import check_completion
from chalicelib.settings import get_settings
from chalicelib.store.campaigns import apply_action, get_campaign
from chalicelib.store.counters import correct_counts, read_counts
from chalicelib.store.ledger import WorkKind, unit_outcomes
from chalicelib.store.running import RunningEntry, note_seen, running_campaigns, unwatch_campaign

WATCHED_STATUSES = frozenset({"calculating", "sending"})
MAX_REDRIVES = 3
# The counters that move while the pipeline works (feedback's delivered, opened… may
# keep moving for a campaign whose sending is stuck, so they are left out).
_PROGRESS = ("pages_planned", "batches_done", "batches_spawned", "sent", "failed")


def watch_running_campaigns(now: datetime) -> None:
    stuck_after = timedelta(minutes=get_settings().stuck_campaign_minutes)
    for entry in running_campaigns():
        try:
            campaign = get_campaign(entry.tenant_id, entry.campaign_id)
        except NotFound:
            unwatch_campaign(entry.tenant_id, entry.campaign_id)
            continue
        if campaign.status in FINAL_STATUSES:
            unwatch_campaign(entry.tenant_id, entry.campaign_id)
            continue
        seen = fingerprint(campaign, read_counts(entry.tenant_id, campaign.id))
        waiting = campaign.iterations is not None and campaign.iterations.waiting
        if seen != entry.fingerprint or campaign.status not in WATCHED_STATUSES or waiting:
            # moving, paused, or an automation between iterations: the clock starts again
            note_seen(entry, seen, now)
        elif now - entry.seen_at >= stuck_after:
            redrive(entry, campaign, now)


def fingerprint(campaign: Campaign, counts: Mapping[str, int]) -> str:
    """What changes whenever the pipeline makes progress on a campaign."""
    moved = sum(n for name, n in counts.items() if name in _PROGRESS or name.startswith("skip"))
    return f"{campaign.status}:{moved}"


def redrive(entry: RunningEntry, campaign: Campaign, now: datetime) -> None:
    """Examine a campaign that has not moved: leave it, re-drive it, or fail it."""
    tenant_id = entry.tenant_id
    pages = _units(tenant_id, campaign.id, "PLAN")
    batches = _units(tenant_id, campaign.id, "BATCH")
    if _working(pages.values(), now) or _working(batches.values(), now):
        note_seen(entry, entry.fingerprint, now, redrives=entry.redrives)
        return
    if campaign.status == "calculating":
        stuck = _redrive_planning(tenant_id, campaign, pages)
    else:
        stuck = _redrive_sending(tenant_id, campaign, pages, batches, now)
    if stuck is None:
        note_seen(entry, entry.fingerprint, now, redrives=entry.redrives)
        return
    metrics.add_metric(name="stuck_campaigns", unit="Count", value=1)
    logger.warning("stuck campaign", extra={"campaign_id": campaign.id, "stuck": stuck})
    if entry.redrives >= MAX_REDRIVES:
        _fail(tenant_id, campaign, f"stuck in {campaign.status}: {stuck}", now)
        return
    note_seen(entry, entry.fingerprint, now, redrives=entry.redrives + 1)


def _units(tenant_id: str, campaign_id: str, kind: WorkKind) -> dict[str, dict[str, Any]]:
    return {str(u["unit_id"]): u for u in unit_outcomes(tenant_id, campaign_id, kind)}


def _working(units: Iterable[Mapping[str, Any]], now: datetime) -> bool:
    """A unit under a live lease: its holder is at work."""
    moment = int(now.timestamp())
    return any(not u.get("done_at") and int(u.get("lease_until", 0)) > moment for u in units)


def _redrive_planning(
    tenant_id: str, campaign: Campaign, pages: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """Queue, in each chain, the page planning stopped at: the last one if it never
    finished, else the next; every chain done → conclude the chains.

    A chain's pages run one after another, so every page before its last is done and holds
    its snapshot: the re-driven page's cursor and running totals come from them."""
    if not pages:
        enqueue("control", [start_message(tenant_id, campaign.id)])
        return "planning never began: the start was queued again"
    chains = campaign.plan_chains or 1
    stopped = [
        message
        for chain in range(chains)
        if (message := _stopped_page(tenant_id, campaign.id, chain, chains, pages)) is not None
    ]
    if stopped:
        enqueue("control", [message.as_message() for message in stopped])
        names = ", ".join(page_unit_id(m.chain, chains, m.page) for m in stopped[:10])
        return f"{len(stopped)} planner pages were not going on ({names}): queued again"
    if chains > 1 and conclude_chains(tenant_id, campaign.id, chains, clock.now()):
        return None
    return "every planner page is done but planning did not end"


def _stopped_page(
    tenant_id: str,
    campaign_id: str,
    chain: int,
    chains: int,
    pages: Mapping[str, Mapping[str, Any]],
) -> PlanMessage | None:
    """The page of one chain to plan again, or None if the chain is planned to its end."""
    prefix = page_unit_id(chain, chains, 0)[:-6]
    ordered = [pages[key] for key in sorted(pages) if key[:-6] == prefix]
    snapshots = [PlannedPage.model_validate(p["planned"]) for p in ordered if p.get("planned")]
    if ordered and ordered[-1].get("done_at"):
        if not snapshots or snapshots[-1].next_cursor is None:
            return None
        number, earlier = len(ordered), snapshots
    else:
        number, earlier = max(len(ordered) - 1, 0), snapshots[: max(len(ordered) - 1, 0)]
    return PlanMessage(
        tenant_id=tenant_id,
        campaign_id=campaign_id,
        page=number,
        chain=chain,
        chains=chains,
        cursor=earlier[-1].next_cursor if earlier else None,
        recipients=sum(p.members for p in earlier),
        batches=sum(len(p.batches) for p in earlier),
    )


def _redrive_sending(
    tenant_id: str,
    campaign: Campaign,
    pages: Mapping[str, Mapping[str, Any]],
    batches: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> str | None:
    """Queue every batch or child not done; when all are done, reconcile and complete."""
    expected: list[BatchMessage] = []
    for key, page in sorted(pages.items()):
        stored = page.get("planned")
        if stored:
            for index, recipients in enumerate(PlannedPage.model_validate(stored).batches):
                expected.append(
                    BatchMessage(
                        tenant_id=tenant_id,
                        campaign_id=campaign.id,
                        step=campaign.main_step.id,
                        batch_id=f"{key}-{index:03d}",
                        recipients=recipients,
                    )
                )
    for batch in batches.values():
        for name, children in batch.items():
            if name.startswith("children_"):
                expected.extend(BatchMessage.model_validate(child) for child in children)
    waiting = [
        b
        for b in expected
        if not batches.get(b.batch_id, {}).get("done_at")
        and (b.not_before is None or b.not_before <= now)
    ]
    if waiting:
        enqueue("send", [b.as_message() for b in waiting])
        names = ", ".join(b.batch_id for b in waiting[:10])
        return f"{len(waiting)} batches were not going on ({names}): queued again"
    if any(b.not_before is not None and b.not_before > now for b in expected):
        return None  # children waiting for their quiet hours to end
    _reconcile(tenant_id, campaign.id, pages, batches)
    if check_completion(tenant_id, campaign.id):
        return None
    return "every batch is done but the campaign could not complete"


def _reconcile(
    tenant_id: str,
    campaign_id: str,
    pages: Mapping[str, Mapping[str, Any]],
    batches: Mapping[str, Mapping[str, Any]],
) -> None:
    """Make the counters agree with the outcomes kept on the units (one correction item).

    Counts are added exactly once per unit, so this only matters after a crash between
    a unit's counting and its done marker left them apart."""
    truth: dict[str, int] = {"pages_planned": sum(1 for p in pages.values() if p.get("done_at"))}
    for unit in [*pages.values(), *batches.values()]:
        found = dict(unit.get("outcome") or {}) if unit.get("done_at") else {}
        found["batches_spawned"] = sum(
            len(children) for name, children in unit.items() if name.startswith("children_")
        )
        for name, value in found.items():
            truth[name] = truth.get(name, 0) + int(value)
    counts = read_counts(tenant_id, campaign_id)
    names = set(truth) | {n for n in counts if n in _PROGRESS or n.startswith("skipped.")}
    correct_counts(tenant_id, campaign_id, {n: truth.get(n, 0) - counts.get(n, 0) for n in names})


def _fail(tenant_id: str, campaign: Campaign, reason: str, now: datetime) -> None:
    try:
        apply_action(tenant_id, campaign.id, "fail", now, error_message=reason[:1000])
    except InvalidTransition:
        return
    unwatch_campaign(tenant_id, campaign.id)
    metrics.add_metric(name="stuck_campaigns_failed", unit="Count", value=1)
    logger.error("stuck campaign failed", extra={"campaign_id": campaign.id, "reason": reason})
