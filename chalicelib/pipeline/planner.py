"""The planner: turns a started campaign's audience into send batches, one page per message.

``campaign.start`` (from the Scheduler schedule, ``/send`` or the overdue sweep) moves the
campaign scheduled → calculating with a conditional write, so it starts once however many
start messages arrive, and plans page 0. Each ``campaign.plan`` message plans one page
of the audience and queues the next page as a new message: no invocation ever walks a
whole audience, and memory holds one page whatever the audience size.

Planning one page:
1. take the page's lease (``PLAN#<campaign>`` / page number): a duplicate delivery of the
   same page message is dropped (``done``) or retried after the lease (``busy``);
2. on the first attempt, read the page, drop what is known ineligible now (contact status,
   no address on the channel, suppressed: ONE ``suppressed_among`` per page), cut the rest
   into batches of ``settings.send_batch_size`` and store them on the page item. A retried
   page re-uses what was stored instead of reading the audience again, which may have
   changed meanwhile: batches are a snapshot, the same on every attempt;
3. in a walk of several lists, write the page's planned markers (later lists skip
   those contacts), then queue the batches (SendMessageBatch, ten a call);
4. add its plan-time skips to the counters exactly once (``add_counts_once``), then queue
   the next page's message, or on the last page move the campaign calculating → sending
   with ``total_recipients`` and ``planned_batches`` fixed; then mark the page done.
Every step is repeatable, so a retry after any crash (even after the campaign moved to
``sending``) completes the page. The sender completes the campaign when that many
batches (plus the ones quiet hours split off) are done.

Chains: a broadcast's audience is planned in ``settings.plan_chains`` parallel chains
(fixed on the campaign at the start), chain c walking part c of the contacts
(``contact_part``: shards, then id ranges) or of each list's members (``id_range``), so
no two chains meet the same contact. A chain's last page counts the chain done with its
totals in its exactly-once counter write; ``conclude_chains`` applies ``planned`` once
every chain has (docs/engine.md, "Planning chains"). One chain planned ~1,850 recipients
a second: 10 million needed ~1.5 hours of planning.

Duplicates: a contact is one ledger key per campaign step, so it is sent once however often
it appears. Addresses are unique per tenant (contacts claim their email and phone with
identity items), so contact-level uniqueness is address-level uniqueness too; the
audience module yields each contact once (docs/engine.md).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import Field

from chalicelib.channels.registry import channel_for
from chalicelib.domain import automation, clock
from chalicelib.domain.automation import IterationState
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import HeraldError, InvalidTransition, NotFound
from chalicelib.domain.model import Model
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import BatchMessage, PlanMessage, StartCampaign
from chalicelib.pipeline.queues import enqueue
from chalicelib.pipeline.send.completion import check_completion
from chalicelib.pipeline.send.screen import screen
from chalicelib.resources import consumer_timeout_seconds
from chalicelib.settings import get_settings
from chalicelib.store.audience import audience_page
from chalicelib.store.campaigns import apply_action, get_campaign
from chalicelib.store.contacts import contact_part, scan_contacts
from chalicelib.store.counters import add_counts_once, forget_markers, read_counts
from chalicelib.store.ledger import (
    LeaseResult,
    WorkUnit,
    finish,
    mark_planned,
    planned_among,
    remember,
    take_lease,
)
from chalicelib.store.running import watch_campaign

PAGE_SIZE = 500  # contacts examined per planner message
# Counters of a plan in several chains: chains done, and their audience and batch totals.
CHAINS_DONE = "plan_chains_done"
CHAIN_RECIPIENTS = "plan_recipients"
CHAIN_BATCHES = "plan_batches"
MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds


class PlannedPage(Model):
    """What one page yielded, stored on its PLAN item so that a retry re-uses it."""

    batches: list[list[str]]
    members: int
    members_ids: list[str] = Field(
        default_factory=list,
        description="Every member examined (in walks of several lists: what was planned).",
    )
    skipped: dict[str, int]
    next_cursor: str | None
    # An automation's iteration (docs/engine.md, "Automation iterations"):
    taken: int = Field(default=0, description="Recipients planned from this page.")
    quota_met: bool = Field(default=False, description="The iteration is full on this page.")
    rest_cursor: str | None = Field(
        default=None, description="Where the next iteration reads (this page again if cut)."
    )
    exhausted: bool = Field(default=False, description="Nothing of the audience is left.")


def start_campaign(message: dict[str, Any]) -> None:
    """Start a due campaign (once) and plan its first page."""
    start = StartCampaign.model_validate(message)
    tenant_id, campaign_id = start.tenant_id, start.campaign_id
    try:
        chains = _chains_for(get_campaign(tenant_id, campaign_id))
        apply_action(tenant_id, campaign_id, "start", clock.now(), plan_chains=chains)
    except NotFound:
        logger.info("start of a campaign that no longer exists")
        return
    except InvalidTransition as refused:
        # A second start message, or a stale one. If the campaign is calculating, an
        # earlier start may have died before planning page 0: planning it again is safe.
        if refused.current != "calculating":
            logger.info("start refused", extra={"current": refused.current})
            return
    watch_campaign(tenant_id, campaign_id, clock.now())
    campaign = get_campaign(tenant_id, campaign_id)
    first_quota = (
        automation.quota(campaign.automation_plan, 1, 0) if campaign.type == "automation" else None
    )
    chains = campaign.plan_chains or 1
    if chains == 1:
        plan_page(
            PlanMessage(tenant_id=tenant_id, campaign_id=campaign_id, page=0, quota=first_quota)
        )
        return
    # Every chain's first page at once (a start delivered again queues them again: each
    # page's lease drops the copy).
    firsts = (
        PlanMessage(tenant_id=tenant_id, campaign_id=campaign_id, page=0, chain=c, chains=chains)
        for c in range(chains)
    )
    enqueue("control", (first.as_message() for first in firsts))


def _chains_for(campaign: Campaign) -> int:
    """An automation's iterations take their quota in audience order: one chain. Every
    other broadcast is planned in ``settings.plan_chains`` parallel chains."""
    return 1 if campaign.type == "automation" else get_settings().plan_chains


def page_unit_id(chain: int, chains: int, page: int) -> str:
    """A planner page's unit id (and the prefix of its batches' ids)."""
    return f"{page:06d}" if chains == 1 else f"{chain:03d}.{page:06d}"


def continue_plan(message: dict[str, Any]) -> None:
    plan_page(PlanMessage.model_validate(message))


def plan_page(plan: PlanMessage) -> None:
    """Plan one page of the audience (see the module docstring for the steps)."""
    now = clock.now()
    unit_id = page_unit_id(plan.chain, plan.chains, plan.page)
    unit = WorkUnit(plan.tenant_id, plan.campaign_id, "PLAN", unit_id)
    lease = take_lease(unit, now, _lease_seconds())
    if lease.status == "done":
        # Its holder may have died after marking it done, before the chains were concluded
        # or the completion check.
        if plan.chains > 1:
            conclude_chains(plan.tenant_id, plan.campaign_id, plan.chains, now)
        check_completion(plan.tenant_id, plan.campaign_id)
        return
    if lease.status == "busy":
        _retry_later(plan, lease, now)
        return
    try:
        campaign = get_campaign(plan.tenant_id, plan.campaign_id)
    except NotFound:
        finish(unit, now, {})
        return
    stored = _stored_page(lease)
    if campaign.status == "calculating":
        try:
            page = stored or _read_page(unit, campaign, plan)
        except HeraldError as error:  # a list or segment deleted since scheduling; a bad cursor
            _fail(campaign, plan, error)
            finish(unit, now, {})
            return
    elif stored is not None and campaign.status in ("sending", "paused"):
        # The last page again: an earlier attempt planned it and moved the campaign on,
        # then died before finishing the page. Its remaining steps are repeated.
        page = stored
    else:
        logger.info("planning stopped", extra={"status": campaign.status, "page": plan.page})
        finish(unit, now, {})
        return
    _carry_out(plan, unit, campaign, page, now)


def _carry_out(
    plan: PlanMessage, unit: WorkUnit, campaign: Campaign, page: PlannedPage, now: datetime
) -> None:
    """Steps 3 and 4 of a page whose snapshot is taken; each repeatable."""
    if _marks_planned(campaign):
        mark_planned(plan.tenant_id, campaign.id, page.members_ids, now)
    _enqueue_batches(plan.tenant_id, campaign, unit.unit_id, page.batches)
    recipients, batches = plan.recipients + page.members, plan.batches + len(page.batches)
    quota_left = None if plan.quota is None else plan.quota - page.taken
    walk_on = None if page.quota_met else page.next_cursor
    # Counted (exactly once, however often the page is retried) before the next page
    # exists and before planning is marked done: completion never misses a page's skips.
    # A chain's last page also counts the chain as done, with its totals, in the same write.
    skipped = {f"skipped.{reason}": n for reason, n in page.skipped.items()}
    counts = {**skipped, "pages_planned": 1}
    if walk_on is None and plan.chains > 1:
        counts |= {CHAINS_DONE: 1, CHAIN_RECIPIENTS: recipients, CHAIN_BATCHES: batches}
    shard_key = f"PLAN#{plan.page}" if plan.chains == 1 else f"PLAN#{unit.unit_id}"
    add_counts_once(plan.tenant_id, plan.campaign_id, counts, shard_key, shard_key)
    if walk_on is not None:
        following = plan.model_copy(
            update={
                "page": plan.page + 1,
                "cursor": walk_on,
                "recipients": recipients,
                "batches": batches,
                "quota": quota_left,
            }
        )
        enqueue("control", [following.as_message()])
    elif plan.chains > 1:
        conclude_chains(plan.tenant_id, plan.campaign_id, plan.chains, now)
    else:
        progress = _iteration_planned(campaign, plan, page, quota_left)
        _planned(plan.tenant_id, campaign.id, recipients, batches, now, iterations=progress)
    if finish(unit, now, skipped):
        metrics.add_metric(name="planned_recipients", unit="Count", value=page.members)
    if walk_on is None:
        check_completion(plan.tenant_id, plan.campaign_id)
    forget_markers(plan.tenant_id, plan.campaign_id, shard_key, [shard_key])


def conclude_chains(tenant_id: str, campaign_id: str, chains: int, now: datetime) -> bool:
    """Once every chain has counted itself done, apply ``planned`` with the chains' totals.

    Each chain's last page ADDs 1 to ``CHAINS_DONE`` and its totals exactly once, in one
    write, before it calls this; the counters are read strongly consistent after that write,
    so the last chain to finish always sees all of them (two finishing together may both
    apply ``planned``: the transition is conditional, the second is refused)."""
    counts = read_counts(tenant_id, campaign_id)
    if counts.get(CHAINS_DONE, 0) < chains:
        return False
    recipients, batches = counts.get(CHAIN_RECIPIENTS, 0), counts.get(CHAIN_BATCHES, 0)
    _planned(tenant_id, campaign_id, recipients, batches, now, iterations=None)
    return True


def _marks_planned(campaign: Campaign) -> bool:
    """Planned markers: in walks of several lists, and across an automation's iterations."""
    return campaign.type == "automation" or _walks_several_lists(campaign)


def _walks_several_lists(campaign: Campaign) -> bool:
    spec = campaign.audience.spec()
    return spec is not None and not spec.segment_ids and len(spec.list_ids) > 1


def _lease_seconds() -> int:
    return consumer_timeout_seconds("control")


def _retry_later(plan: PlanMessage, lease: LeaseResult, now: datetime) -> None:
    """Another worker holds this page: look again when its lease runs out."""
    assert lease.until is not None
    wait = int((lease.until - now).total_seconds()) + 1
    message = plan.as_message()
    enqueue("control", [message], delay_seconds=max(1, min(MAX_DELAY_SECONDS, wait)))


def _stored_page(lease: LeaseResult) -> PlannedPage | None:
    stored = lease.state.get("planned")
    return PlannedPage.model_validate(stored) if stored else None


def _read_page(unit: WorkUnit, campaign: Campaign, plan: PlanMessage) -> PlannedPage:
    """Read one audience page, filter it, cut it into batches, and store the result."""
    contacts, next_cursor = _audience(unit.tenant_id, campaign, plan)
    quota_met, rest_cursor, cut_short = False, next_cursor, False
    if plan.quota is not None:
        # An iteration: contacts an earlier one planned are left out, and the page is cut
        # after the recipient that fills the quota; the rest waits for the next iteration.
        already = planned_among(unit.tenant_id, campaign.id, [c.id for c in contacts])
        contacts = [c for c in contacts if c.id not in already]
        eligible, _ = eligible_recipients(unit.tenant_id, campaign.channel, contacts)
        if len(eligible) >= plan.quota:
            quota_met = True
            cut = _cut_after(contacts, eligible[plan.quota - 1]) if plan.quota else 0
            if cut < len(contacts):
                contacts, rest_cursor, cut_short = contacts[:cut], plan.cursor, True
    eligible, skipped = eligible_recipients(unit.tenant_id, campaign.channel, contacts)
    size = get_settings().send_batch_size
    page = PlannedPage(
        batches=[eligible[i : i + size] for i in range(0, len(eligible), size)],
        members=len(contacts),
        members_ids=[c.id for c in contacts] if _marks_planned(campaign) else [],
        skipped=skipped,
        next_cursor=next_cursor,
        taken=len(eligible),
        quota_met=quota_met,
        rest_cursor=rest_cursor,
        exhausted=not cut_short and next_cursor is None,
    )
    remember(unit, {"planned": page.model_dump()})
    return page


def _cut_after(contacts: list[Contact], contact_id: str) -> int:
    return next(i for i, c in enumerate(contacts) if c.id == contact_id) + 1


def _audience(
    tenant_id: str, campaign: Campaign, plan: PlanMessage
) -> tuple[list[Contact], str | None]:
    """The chain's next page: its part of the contacts (``contact_part``), or of each list."""
    spec = campaign.audience.spec()
    cursor = plan.cursor
    if spec is None:
        return scan_contacts(tenant_id, cursor, PAGE_SIZE, contact_part(plan.chain, plan.chains))
    # Relative dates in segments ("-7d") are read at the start, the same for every page.
    # A contact in several lists is planned under the first one walked that holds it,
    # as the planned markers (not its current lists) say.
    return audience_page(
        tenant_id,
        spec,
        cursor,
        PAGE_SIZE,
        now=campaign.started_at,
        taken=lambda ids: planned_among(tenant_id, campaign.id, ids),
        part=plan.chain,
        parts=plan.chains,
    )


def eligible_recipients(
    tenant_id: str, channel: str, contacts: Iterable[Contact]
) -> tuple[list[str], dict[str, int]]:
    """The ids of the contacts that may get a message now, and the others counted by reason
    (``screen``, the sender's own rule; one ``suppressed_among`` call for the whole page)."""
    screened = screen(tenant_id, channel_for(channel), contacts)
    return [contact.id for contact, _ in screened.eligible], dict(Counter(screened.skipped))


def _enqueue_batches(
    tenant_id: str, campaign: Campaign, unit_id: str, batches: list[list[str]]
) -> None:
    """Queue a page's batches; their ids depend only on the page, so a retry re-queues the
    same ids and the sender's batch lease drops the copies."""
    step = campaign.main_step.id
    enqueue(
        "send",
        (
            BatchMessage(
                tenant_id=tenant_id,
                campaign_id=campaign.id,
                step=step,
                batch_id=f"{unit_id}-{index:03d}",
                recipients=recipients,
            ).as_message()
            for index, recipients in enumerate(batches)
        ),
    )


def _iteration_planned(
    campaign: Campaign, plan: PlanMessage, page: PlannedPage, quota_left: int | None
) -> IterationState | None:
    """An automation's state once its iteration is planned (None for a plain broadcast)."""
    if quota_left is None:
        return None
    state = campaign.iterations or IterationState(current_iteration=1)
    settings = campaign.automation_plan
    taken = automation.quota(settings, state.current_iteration, state.planned) - quota_left
    planned = state.planned + taken
    return state.model_copy(
        update={
            "planned": planned,
            "iteration_planned": taken,
            "next_page": plan.page + 1,
            "next_cursor": page.rest_cursor,
            "last": automation.is_last(
                settings, state.current_iteration, planned, page.exhausted or taken == 0
            ),
        }
    )


def _planned(
    tenant_id: str,
    campaign_id: str,
    recipients: int,
    batches: int,
    now: datetime,
    *,
    iterations: IterationState | None,
) -> None:
    """The last page is planned: fix the totals and let the campaign be ``sending``."""
    extra = {} if iterations is None else {"iterations": iterations}
    try:
        apply_action(
            tenant_id,
            campaign_id,
            "planned",
            now,
            total_recipients=recipients,
            planned_batches=batches,
            planning_done=True,
            **extra,
        )
    except InvalidTransition as refused:
        # Planned by an earlier attempt of this page (or cancelled meanwhile).
        logger.info("planned transition refused", extra={"current": refused.current})


def _fail(campaign: Campaign, plan: PlanMessage, error: HeraldError) -> None:
    logger.warning("planning failed", extra={"error": error.message, "page": plan.page})
    with contextlib.suppress(InvalidTransition):  # cancelled meanwhile: nothing to fail
        apply_action(plan.tenant_id, campaign.id, "fail", clock.now(), error_message=error.message)
