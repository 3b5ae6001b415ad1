"""One ``send.batch``: lease, screen, defer, send, conclude (``chalicelib.pipeline.send``
has the steps)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from chalicelib.channels.base import Channel, OutboundMessage, PermanentSendError
from chalicelib.channels.registry import channel_for
from chalicelib.domain import clock
from chalicelib.domain.campaigns import PAUSE_QUOTA, PAUSE_RENDER_FAILURES, Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason, message_id, pick_for
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT, UNTAGGED_CHANNELS
from chalicelib.domain.limits import RateName
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.feedback import on_messages_sent
from chalicelib.pipeline.messages import BatchMessage
from chalicelib.pipeline.queues import enqueue
from chalicelib.pipeline.send.completion import close_batch, count_unit
from chalicelib.pipeline.send.compose import RENDER_ERROR_PREFIX, Content, compose, load_content
from chalicelib.pipeline.send.pacing import (
    SENDING_STATUSES,
    Pacer,
    QuotaSpent,
    StopWatch,
    send_with_retries,
    worker_rate,
)
from chalicelib.pipeline.send.policy import (
    Defer,
    Skip,
    admit_as_read,
    read_caps,
    release,
    timing,
)
from chalicelib.pipeline.send.screen import screen
from chalicelib.pipeline.send.verify import verify_recipients
from chalicelib.resources import consumer_timeout_seconds
from chalicelib.services.notices import campaign_paused, notify_webhooks
from chalicelib.settings import get_settings
from chalicelib.store import quotas
from chalicelib.store.campaigns import apply_action, get_campaign
from chalicelib.store.contacts import get_contacts
from chalicelib.store.counters import add_counts_once
from chalicelib.store.enrolments import CapCounts
from chalicelib.store.ledger import (
    LeaseResult,
    MessageRecord,
    WorkUnit,
    finish,
    mark_once,
    messages_among,
    record_message,
    record_messages,
    release_lease,
    take_lease,
)
from chalicelib.store.provider_messages import MessageRef, remember_provider_messages
from chalicelib.store.suppression import suppress

MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds
# A paused batch looks again after these: resume takes effect within a minute, and a
# parked batch costs one SQS message and one GetItem a minute while the pause lasts.
PAUSE_DELAYS = (15, 30, 60)
DEADLINE_MARGIN_SECONDS = 20  # stop starting sends this long before the Lambda timeout
# A round's records are group-committed (one unconditional BatchWriteItem) only while the
# lease has at least this long to run; later, each is put on its own, conditionally.
GROUP_COMMIT_MARGIN_SECONDS = 10


# -- the handler --------------------------------------------------------------------------
def send_batch(message: dict[str, Any]) -> None:
    batch = BatchMessage.model_validate(message)
    now = clock.now()
    if batch.not_before is not None and batch.not_before > now:
        _requeue(batch, batch.not_before - now)
        return
    try:
        campaign = get_campaign(batch.tenant_id, batch.campaign_id)
    except NotFound:
        logger.info("batch of a deleted campaign dropped", extra={"batch_id": batch.batch_id})
        return
    if campaign.status == "paused":
        if campaign.resume_at is not None and campaign.resume_at <= now:
            campaign = _resume_after_quota(batch.tenant_id, campaign, now)
        if campaign.status == "paused":
            _requeue_paused(batch)
            return
    if campaign.status not in SENDING_STATUSES and campaign.status != "cancelled":
        logger.info("batch dropped", extra={"status": campaign.status, "batch_id": batch.batch_id})
        return
    unit = WorkUnit(batch.tenant_id, batch.campaign_id, "BATCH", batch.batch_id)
    lease = take_lease(unit, now, _lease_seconds())
    if lease.status == "done":
        # Its holder may have died after marking it done: the steps after that are
        # idempotent, so a redelivery runs them again.
        close_batch(batch.tenant_id, campaign.id, batch.batch_id, lease.state)
        return
    if lease.status == "busy":
        assert lease.until is not None
        _requeue(batch, lease.until - now + timedelta(seconds=1))
        return
    BatchRun(batch, campaign, unit, lease, now).run()


def _resume_after_quota(tenant_id: str, campaign: Campaign, now: datetime) -> Campaign:
    """The provider's quota window has rolled over: the campaign resumes by itself (if it
    is still quota-paused; a refused transition means someone else moved it)."""
    try:
        resumed = apply_action(tenant_id, campaign.id, "resume", now)
    except InvalidTransition:
        return campaign
    logger.info("campaign resumed after the quota window", extra={"campaign_id": campaign.id})
    return resumed


def _lease_seconds() -> int:
    """A lease lasts as long as the send worker may run; SQS redelivers only after 6 times
    that (the queue's visibility timeout), so a crashed holder's lease is always over."""
    return consumer_timeout_seconds("send")


def _requeue(batch: BatchMessage, wait: timedelta) -> None:
    seconds = int(wait.total_seconds() + 0.999)
    enqueue("send", [batch.as_message()], delay_seconds=max(0, min(MAX_DELAY_SECONDS, seconds)))


def _requeue_paused(batch: BatchMessage) -> None:
    """Park a paused campaign's batch: it looks again later, ever less often (≤ 1 min)."""
    delay = PAUSE_DELAYS[min(batch.pause_hops, len(PAUSE_DELAYS) - 1)]
    hopped = batch.model_copy(update={"pause_hops": batch.pause_hops + 1})
    enqueue("send", [hopped.as_message()], delay_seconds=delay)


# -- outcomes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What happened to one recipient in this attempt."""

    kind: Literal["sent", "failed", "skipped", "unsent"]
    reason: SkipReason | None = None
    record: MessageRecord | None = None


UNSENT = Outcome("unsent")  # stopped (pause, cancel, out of time) before its turn


def skipped(reason: SkipReason) -> Outcome:
    return Outcome("skipped", reason)


def tally(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Counter deltas for outcomes: ``sent``, ``failed``, ``skipped.<reason>``."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        name = f"skipped.{outcome.reason}" if outcome.kind == "skipped" else outcome.kind
        counts[name] = counts.get(name, 0) + 1
    return counts


class _SendingThreads:
    """The send worker's threads, started on first use and kept for the container's life.

    A pool per batch started and joined ``send_concurrency`` threads for every batch
    (an eighth of the pool's CPU in the benchmark's profile). The pool is made
    again only when its size (``send_threads`` or ``send_concurrency``) changes (tests set
    it per test); the old one finishes what it was given and its threads end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def pool(self, size: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._size != size:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="send")
                self._size = size
            return self._pool


_sending_threads = _SendingThreads()


# -- one batch ----------------------------------------------------------------------------
@dataclass
class BatchRun:
    """One attempt at one batch, holding its lease."""

    batch: BatchMessage
    campaign: Campaign
    unit: WorkUnit
    lease: LeaseResult
    started: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quota_error: str | None = None
    quota_resume_at: datetime | None = None
    caps: Mapping[str, CapCounts] = field(default_factory=dict)

    @property
    def channel(self) -> Channel:
        return channel_for(self.campaign.channel)

    @cached_property
    def lease_ends(self) -> datetime:
        """When this attempt's lease runs out (worked out once: ``_commit`` asks every
        round)."""
        return self.started + timedelta(seconds=_lease_seconds())

    @property
    def due_at(self) -> datetime:
        """When the broadcast's messages became due: ``max_lateness`` counts from here."""
        return self.campaign.started_at or self.started

    def run(self) -> None:
        tenant_id, batch = self.batch.tenant_id, self.batch
        deadline = self.lease_ends - timedelta(seconds=DEADLINE_MARGIN_SECONDS)
        watch = StopWatch(tenant_id, self.campaign, deadline)
        self._requeue_stored_children()
        deferred_earlier = _child_recipients(self.lease.state)
        recipients = [r for r in dict.fromkeys(batch.recipients) if r not in deferred_earlier]
        # A first attempt can only find records other batches wrote long ago (a contact
        # planned twice), which an eventually consistent read sees at half the cost; a
        # retry must see what its crashed predecessor wrote a moment ago.
        records = messages_among(
            tenant_id,
            self.campaign.id,
            batch.step,
            self.campaign.channel,
            recipients,
            consistent=self.lease.attempt > 1,
        )
        unrecorded = [r for r in recipients if r not in records]
        contacts = {} if watch.reason == "cancelled" else get_contacts(tenant_id, unrecorded)
        present: list[Contact] = []
        for contact_id in recipients:
            outcome = self._decided(contact_id, records, watch)
            if outcome is not None:
                self.outcomes.append(outcome)
            elif (contact := contacts.get(contact_id)) is None:
                self.outcomes.append(skipped(SkipReason.NOT_FOUND))
            else:
                present.append(contact)
        screened = screen(tenant_id, self.channel, present)
        self.outcomes.extend(skipped(reason) for reason in screened.skipped)
        verified, unverified = verify_recipients(
            tenant_id, self.campaign, screened.eligible, clock.now()
        )
        self.outcomes.extend(skipped(SkipReason.VERIFICATION) for _ in range(unverified))
        todo = self._defer_quiet_hours(verified)
        allowed = self._within_tenant_limits(todo) if todo else todo
        # The caps of the whole batch in one read (none without a cap); each send then
        # decides and counts from its recipient's counts (``admit_as_read``).
        self.caps = read_caps(tenant_id, self.campaign, [c.id for c, _ in allowed])
        delivered = self._deliver_all(allowed, watch)
        self.outcomes.extend(delivered)
        if len(allowed) < len(todo):
            self.outcomes.extend(UNSENT for _ in todo[len(allowed) :])
            watch.stop("quota")
        self._check_renders(delivered)
        self._conclude(watch)

    def _decided(
        self, contact_id: str, records: Mapping[str, MessageRecord], watch: StopWatch
    ) -> Outcome | None:
        """The outcome an earlier attempt recorded, or the cancel's; None: still to screen."""
        record = records.get(contact_id)
        if record is not None:
            if record.batch_id != self.batch.batch_id:
                return skipped(SkipReason.DUPLICATE)
            # Sent records have sent_at; a refusal recorded by the sender has none (feedback
            # may have moved either record's status since).
            return Outcome("sent" if record.sent_at else "failed", record=record)
        if watch.reason == "cancelled":
            return skipped(SkipReason.CANCELLED)
        return None

    def _defer_quiet_hours(self, todo: list[tuple[Contact, str]]) -> list[tuple[Contact, str]]:
        """Move recipients inside their quiet hours into child batches, grouped by the
        minute their window opens; record the children once, then queue them. The send
        policy's timing rules decide (``policy.timing``); one it says is too late is
        skipped with its reason."""
        if self.campaign.quiet_hours is None or not todo:
            return todo
        now = clock.now()
        groups: dict[datetime, list[str]] = {}
        kept = []
        for contact, address in todo:
            wait = timing(self.campaign, contact, now, due_at=self.due_at)
            if wait is None:
                kept.append((contact, address))
            elif isinstance(wait, Skip):
                self.outcomes.append(skipped(wait.reason))
            else:
                groups.setdefault(wait.until.replace(second=0, microsecond=0), []).append(
                    contact.id
                )
        if groups:
            self._spawn(groups)
        return kept

    def _spawn(self, groups: Mapping[datetime, list[str]]) -> None:
        attempt = self.lease.attempt
        children = [
            self.batch.model_copy(
                update={
                    "batch_id": f"{self.batch.batch_id}.{attempt}-{index}",
                    "recipients": recipients,
                    "not_before": opens,
                    "pause_hops": 0,
                }
            )
            for index, (opens, recipients) in enumerate(sorted(groups.items()))
        ]
        stored = [child.model_dump(mode="json", exclude_none=True) for child in children]
        # Stored before they are counted and queued: a retry finds them and finishes both
        # steps (``_requeue_stored_children``), so a crash anywhere loses no child.
        name = f"children_{attempt}"
        mark_once(self.unit, name, stored)
        self._count_and_queue(name, children)
        metrics.add_metric(
            name="deferred_recipients", unit="Count", value=sum(len(c.recipients) for c in children)
        )

    def _requeue_stored_children(self) -> None:
        """Children an earlier attempt stored may not have been counted or queued (it died,
        or SendMessageBatch failed): count them (once) and queue them again. A child queued
        twice is harmless: its own lease drops the copy."""
        for name, stored in self.lease.state.items():
            if name.startswith("children_"):
                self._count_and_queue(name, [BatchMessage.model_validate(c) for c in stored])

    def _count_and_queue(self, name: str, children: Sequence[BatchMessage]) -> None:
        # Counted before they are queued: the completion check expects them from here, so
        # the campaign cannot be called sent while a child is still on its way.
        add_counts_once(
            self.batch.tenant_id,
            self.campaign.id,
            {"batches_spawned": len(children)},
            shard_key=self.batch.batch_id,
            unit=f"{count_unit(self.batch.batch_id)}/{name}",
        )
        self.children[name] = [c.model_dump(mode="json", exclude_none=True) for c in children]
        now = clock.now()
        for child in children:
            assert child.not_before is not None
            _requeue(child, child.not_before - now)

    def _within_tenant_limits(self, todo: list[tuple[Contact, str]]) -> list[tuple[Contact, str]]:
        """The part of ``todo`` the tenant's daily limits (``sends_per_day``, and
        ``sms_per_day`` for SMS) let out now, counted before it is sent.

        When a limit cuts the batch, the reason and the window's end are kept: the rest is
        handed back like after a spent provider quota (the campaign pauses and resumes by
        itself when the window rolls over). Each attempt counts what it is about to send,
        so a crash between the count and the sends can only over-count, never send past a
        limit.
        """
        now, tenant_id = clock.now(), self.batch.tenant_id
        names: list[RateName] = ["sends_per_day"]
        if self.campaign.channel == "sms":
            names.append("sms_per_day")
        for name in names:
            allowance = quotas.charge(tenant_id, name, len(todo), now)
            if allowance.allowed:
                continue
            room = allowance.limit - allowance.used
            if 0 < room < len(todo) and quotas.charge(tenant_id, name, room, now).allowed:
                todo = todo[:room]  # what still fits today goes out
            else:
                todo = []
            self.quota_error = f"the tenant's {name} limit ({allowance.limit}) is reached"
            self.quota_resume_at = now + timedelta(seconds=allowance.retry_after)
        return todo

    def _deliver_all(self, todo: list[tuple[Contact, str]], watch: StopWatch) -> list[Outcome]:
        """Send in rounds of ``send_concurrency`` recipients, one per thread, and record
        each round's messages together (``_commit``) before the next round starts.
        (``send_threads`` may carry a round on fewer threads: the benchmark's one.)

        A thread takes its next recipient only once its last message is recorded, so a
        crash leaves at most one round (``send_concurrency`` messages) sent and not
        recorded: the duplicate window of one message per thread, with one ledger write
        per round instead of one per message.
        """
        if not todo:
            return []
        settings = get_settings()
        step = self.campaign.main_step
        content = load_content(self.batch.tenant_id, step.template_ids, step.sender_ids)
        pacer = Pacer(worker_rate(self.campaign.channel))
        size = settings.send_concurrency
        pool = _sending_threads.pool(settings.send_threads or size)
        outcomes: list[Outcome] = []
        for start in range(0, len(todo), size):
            futures = [
                pool.submit(self._deliver, contact, address, content, pacer, watch)
                for contact, address in todo[start : start + size]
            ]
            # Every send of the round finishes, and what went out is recorded, before the
            # batch goes on or fails: nothing sent is left unrecorded by a raise.
            wait(futures)
            done = [f.result() for f in futures if f.exception() is None]
            outcomes.extend(self._commit(done))
            for future in futures:
                future.result()  # the first error of the round, now that the rest is safe
        return outcomes

    def _commit(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Write a round's ledger records: one BatchWriteItem while the lease has time
        to run, else one conditional PutItem each.

        BatchWriteItem takes no condition, so it could overwrite a record someone else
        wrote, one the feedback worker may already have moved to ``delivered``. Nobody
        else can have written these keys while we hold the lease: the records the batch
        read were absent, and a second holder takes the batch only after the lease ends
        (it then reads what we wrote and sends only the rest). Near or past the end (a
        stalled process, never a live Lambda) each record is put only if it has none;
        a sent message that finds one is the duplicate it is (``skipped.duplicate``).
        """
        records = [o.record for o in outcomes if _to_record(o)]
        if not records:
            return outcomes
        if clock.now() < self.lease_ends - timedelta(seconds=GROUP_COMMIT_MARGIN_SECONDS):
            record_messages(self.batch.tenant_id, [r for r in records if r is not None])
            return outcomes
        return [self._record_late(o) if _to_record(o) else o for o in outcomes]

    def _record_late(self, outcome: Outcome) -> Outcome:
        assert outcome.record is not None
        if record_message(self.batch.tenant_id, outcome.record) or outcome.kind != "sent":
            return outcome
        # Another attempt recorded this recipient while we sent: a duplicate went out.
        metrics.add_metric(name="duplicate_sends", unit="Count", value=1)
        return skipped(SkipReason.DUPLICATE)

    def _deliver(
        self, contact: Contact, address: str, content: Content, pacer: Pacer, watch: StopWatch
    ) -> Outcome:
        """Everything for one recipient: render, the send policy, send (its record is
        written with its round's, ``_commit``)."""
        if watch.stop_reason() is not None:
            return UNSENT
        if not content.senders:
            return skipped(SkipReason.SENDER_UNUSABLE)
        if not content.templates:
            return skipped(SkipReason.RENDER_ERROR)
        salt = f"{self.campaign.id}:{self.batch.step}"
        template = pick_for(content.templates, contact.id, salt)
        sender = pick_for(content.senders, contact.id, salt)
        # The record's fields; the record itself is built once, when the outcome is known.
        record: dict[str, Any] = {
            "campaign_id": self.campaign.id,
            "step": self.batch.step,
            "contact_id": contact.id,
            "channel": self.campaign.channel,
            "message_id": message_id(self.batch.step, contact.id, self.campaign.channel),
            "address": address,
            "batch_id": self.batch.batch_id,
            "template_id": template.id,
            "sender_id": sender.id,
        }
        tags = {
            TAG_TENANT: self.batch.tenant_id,
            TAG_CAMPAIGN: self.campaign.id,
            TAG_MESSAGE: record["message_id"],
        }
        tenant_id = self.batch.tenant_id
        try:
            message = compose(
                tenant_id,
                self.campaign,
                contact,
                address,
                template=template,
                sender=sender,
                tags=tags,
            )
        except Exception as error:  # any render failure is this recipient's alone
            return self._render_failed(record, error)
        decision = admit_as_read(
            tenant_id,
            self.campaign,
            contact,
            clock.now(),
            due_at=self.due_at,
            read=self.caps.get(contact.id),
        )
        if isinstance(decision, Skip):
            return skipped(decision.reason)
        if isinstance(decision, Defer):
            return UNSENT  # its quiet hours began since the split: the retry defers it
        outcome = self._send(record, message, pacer, watch)
        if outcome.kind != "sent" and outcome.reason is not SkipReason.DUPLICATE:
            # Counted, but it did not go out: the slot is the retry's (or nobody's).
            release(tenant_id, self.campaign, contact.id, decision)
        return outcome

    def _send(
        self, record: dict[str, Any], message: OutboundMessage, pacer: Pacer, watch: StopWatch
    ) -> Outcome:
        """The provider call of one admitted message, and the record to write for it."""
        try:
            result = send_with_retries(self.channel, message, pacer, watch.time_left)
        except PermanentSendError as error:
            return self._refused(record, error)
        except QuotaSpent as error:
            self.quota_error = str(error)
            watch.stop("quota")
            return UNSENT
        if result is None:
            return UNSENT
        sent = MessageRecord(
            **record,
            status="sent",
            sent_at=clock.now(),
            provider_message_id=result.provider_message_id,
        )
        return Outcome("sent", record=sent)  # recorded with its round (``_commit``)

    def _refused(self, record: dict[str, Any], error: PermanentSendError) -> Outcome:
        """A provider said no for good: a recipient's refusal is a skip, the rest a failure."""
        if error.skip is not None:
            if error.skip is SkipReason.OPTED_OUT:
                suppress(self.batch.tenant_id, record["address"], "unsubscribed", clock.now())
            return skipped(error.skip)
        failed = MessageRecord(**record, status="failed", error=f"{error.code}: {error}"[:300])
        return Outcome("failed", record=failed)

    def _render_failed(self, record: dict[str, Any], error: Exception) -> Outcome:
        """A template that cannot be rendered for this contact (an error, a budget spent) is
        this recipient's failure, recorded with its reason: never a retry of the batch."""
        failed = MessageRecord(
            **record, status="failed", error=f"{RENDER_ERROR_PREFIX}: {error}"[:300]
        )
        metrics.add_metric(name="render_failures", unit="Count", value=1)
        return Outcome("failed", reason=SkipReason.RENDER_ERROR, record=failed)

    def _check_renders(self, delivered: Sequence[Outcome]) -> None:
        """Pause the campaign when its template keeps failing: every further batch would
        only burn worker time. Fixed and resumed, it goes on where it stopped."""
        failures = sum(1 for o in delivered if o.reason is SkipReason.RENDER_ERROR)
        tried = sum(1 for o in delivered if o.kind != "unsent")
        settings = get_settings()
        if failures < settings.render_failure_pause_count or not tried:
            return
        if failures / tried < settings.render_failure_pause_share:
            return
        reason = (
            f"paused: {failures} of {tried} recipients of batch {self.batch.batch_id} could "
            f"not be rendered ({_first_error(delivered)}); fix the template and resume"
        )
        self._pause(PAUSE_RENDER_FAILURES, reason)

    def _pause(self, code: str, reason: str, *, resume_at: datetime | None = None) -> None:
        now = clock.now()
        try:
            paused = apply_action(
                self.batch.tenant_id,
                self.campaign.id,
                "pause",
                now,
                error_message=reason[:1000],
                resume_at=resume_at,
                pause_reason=code,
            )
        except InvalidTransition:
            return  # paused, cancelled or done meanwhile: nothing to pause
        notify_webhooks([campaign_paused(self.batch.tenant_id, paused, now)])
        metrics.add_metric(name="campaigns_paused_by_pipeline", unit="Count", value=1)
        logger.warning("campaign paused", extra={"reason": reason})

    def _conclude(self, watch: StopWatch) -> None:
        """Finish the batch (callbacks, counts once, done), or hand the unsent rest back.

        Every step up to ``finish`` may run again on a retry (callbacks at least once,
        counts exactly once by their marker); the steps after it run again on any
        redelivery of a done batch (``_close``): no crash point loses one.
        """
        self._remember_provider_ids(self.outcomes)
        unsent = sum(1 for o in self.outcomes if o.kind == "unsent")
        if unsent and watch.reason != "cancelled":
            self._hand_back(watch.reason, unsent)
            return
        if clock.now() >= self.lease_ends:
            # Our lease ran out (a stalled process; Lambda would have been stopped): a
            # newer attempt owns the batch and concludes it.
            logger.warning("lease lost before the batch concluded")
            return
        outcomes = [
            skipped(SkipReason.CANCELLED) if o.kind == "unsent" else o for o in self.outcomes
        ]
        counts = {**tally(outcomes), "batches_done": 1}
        tenant_id = self.batch.tenant_id
        sent = [o.record for o in outcomes if o.kind == "sent" and o.record is not None]
        on_messages_sent(tenant_id, self.campaign, sent)
        add_counts_once(
            tenant_id,
            self.campaign.id,
            counts,
            shard_key=self.batch.batch_id,
            unit=count_unit(self.batch.batch_id),
        )
        if finish(self.unit, clock.now(), counts):
            metrics.add_metric(name="sent", unit="Count", value=counts.get("sent", 0))
        close_batch(
            tenant_id, self.campaign.id, self.batch.batch_id, {**self.lease.state, **self.children}
        )

    def _hand_back(self, reason: str | None, unsent: int) -> None:
        """Give the batch back: the next attempt skips everyone recorded in the ledger and
        sends the rest. Whatever stopped it (out of time, throttled to the end, paused,
        the quota spent), no recipient without an outcome is ever dropped."""
        if not release_lease(self.unit, self.lease.attempt):
            logger.warning("lease taken over; the newer attempt sends the rest")
            return
        if reason == "quota":
            resume_at = self.quota_resume_at or clock.now() + timedelta(
                minutes=get_settings().quota_retry_minutes
            )
            spent = (
                self.quota_error
                if self.quota_resume_at
                else (f"the provider's daily sending quota is spent ({self.quota_error})")
            )
            self._pause(
                PAUSE_QUOTA,
                f"paused: {spent}; resumes by itself at {resume_at.isoformat(timespec='seconds')}",
                resume_at=resume_at,
            )
            _requeue_paused(self.batch)
        elif reason == "paused":
            _requeue_paused(self.batch)
        else:
            _requeue(self.batch, timedelta(0))
        logger.info("batch handed back", extra={"reason": reason, "unsent": unsent})

    def _remember_provider_ids(self, outcomes: Iterable[Outcome]) -> None:
        """SNS's SMS and push status events carry no tags: leave a pointer per message of
        this batch (again for those an earlier attempt sent: it may have died before
        writing them)."""
        if self.campaign.channel not in UNTAGGED_CHANNELS:
            return
        refs = [
            (
                o.record.provider_message_id,
                MessageRef(self.batch.tenant_id, self.campaign.id, o.record.message_id),
            )
            for o in outcomes
            if o.kind == "sent" and o.record is not None and o.record.provider_message_id
        ]
        if refs:
            remember_provider_messages(refs, clock.now())


def _to_record(outcome: Outcome) -> bool:
    """Whether this attempt's outcome leaves a ledger record (a message sent or refused)."""
    return outcome.kind in ("sent", "failed") and outcome.record is not None


def _child_recipients(state: Mapping[str, Any]) -> set[str]:
    """Recipients an earlier attempt already moved into child batches."""
    return {
        recipient
        for name, children in state.items()
        if name.startswith("children_")
        for child in children
        for recipient in child.get("recipients", [])
    }


def _first_error(outcomes: Iterable[Outcome]) -> str:
    for outcome in outcomes:
        if outcome.reason is SkipReason.RENDER_ERROR and outcome.record is not None:
            return str(outcome.record.error)
    return ""
