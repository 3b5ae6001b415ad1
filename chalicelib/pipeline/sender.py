"""The sender: delivers one batch of a campaign's recipients, exactly once each.

A ``send.batch`` message names up to ``send_batch_size`` contact ids. Handling it:
1. a batch due later (quiet hours) goes back on the queue with a delay; a paused
   campaign's batch too (growing delays); other statuses that cannot send drop it;
2. take the batch's lease (one conditional write): a duplicate delivery is dropped or
   retried after the lease; an attempt after a crash takes the lease over;
3. read the contacts and their ledger records (two BatchGetItems) and the suppression
   list (one call); recipients recorded by an earlier attempt count as they were recorded,
   and are never sent again;
4. recipients inside their quiet hours go into child batches, stored on the batch item,
   counted in ``batches_spawned`` (once) and queued with a delay; every retry counts and
   queues again what earlier attempts stored;
5. the rest are sent concurrently (``send_concurrency`` threads) at the paced rate: for
   each, frequency cap, render (a failure is the recipient's own ``render_error``),
   deadline check after the pacer's slot, provider call, then one conditional ledger put;
6. a recipient left without an outcome (paused, out of time, throttled to the end, the
   quota spent) hands the whole batch back; otherwise the callbacks go out, the counts
   are added exactly once, the batch is marked done, and the completion check (O(1),
   from the counters) may move the campaign to ``sent``; a redelivery of a done batch
   runs that check again.
A crash repeats only the sends in flight at that moment, at most ``send_concurrency``
messages (docs/engine.md, per crash point). Pause and cancel are re-checked every few
seconds while a batch runs, so both take effect mid-batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from chalicelib.channels.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from chalicelib.channels.identities import sender_usability
from chalicelib.channels.registry import channel_for
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import (
    SkipReason,
    backoff_seconds,
    cap_reached,
    contact_skip,
    message_id,
    next_allowed,
    pick_for,
    zone_for,
)
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT
from chalicelib.domain.senders import Sender
from chalicelib.domain.templates import (
    EmailTemplate,
    RenderContext,
    SmsTemplate,
    Template,
    contact_variables,
    render_email,
    render_sms,
)
from chalicelib.domain.unsubscribe import UnsubscribeClaim, unsubscribe_headers, unsubscribe_url
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.feedback import on_messages_sent
from chalicelib.pipeline.messages import BatchMessage
from chalicelib.pipeline.queues import enqueue
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings
from chalicelib.store.campaigns import apply_action, get_campaign
from chalicelib.store.contacts import find_by_email, find_by_phone, get_contacts
from chalicelib.store.counters import add_counts_once, forget_markers, read_counts
from chalicelib.store.ledger import (
    LeaseResult,
    MessageRecord,
    WorkUnit,
    finish,
    mark_once,
    messages_among,
    recent_send_times,
    record_message,
    release_lease,
    take_lease,
)
from chalicelib.store.provider_messages import MessageRef, remember_provider_messages
from chalicelib.store.secrets import unsubscribe_token
from chalicelib.store.senders import get_sender
from chalicelib.store.suppression import suppress, suppressed_among
from chalicelib.store.templates import get_template

MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds
# A paused batch looks again after these: resume takes effect within a minute, and a
# parked batch costs one SQS message and one GetItem a minute while the pause lasts.
PAUSE_DELAYS = (15, 30, 60)
STATUS_RECHECK_SECONDS = 5.0  # how stale the campaign status may get while a batch runs
DEADLINE_MARGIN_SECONDS = 20  # stop starting sends this long before the Lambda timeout
CONTENT_CACHE_SECONDS = 60.0  # templates and senders are re-read at most this often
TEST_SEND_SECONDS = 25  # a test send answers within an API request's time
SENDING_STATUSES = frozenset({"calculating", "sending"})

T = TypeVar("T")


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
        _close(batch, campaign.id, lease.state)
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
    return herald_resources(get_settings()).queue("send").consumer_timeout_seconds


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


# -- pacing and stopping ------------------------------------------------------------------
class Pacer:
    """Spaces provider calls ``1 / rate`` seconds apart across all threads of a worker.

    Each worker paces to the account rate divided by the number of workers
    (``send_workers``, the send Lambda's reserved concurrency), so all workers together
    stay under the account's rate (docs/engine.md).
    """

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = clock.now().timestamp()
            slot = max(now, self._next)
            self._next = slot + self._interval
        clock.sleep(slot - now)


def worker_rate(channel: str) -> float:
    settings = get_settings()
    account = settings.ses_max_send_rate if channel == "email" else settings.sms_max_send_rate
    return account / settings.send_workers


class StopWatch:
    """Tells the sending threads to stop: out of time, or the campaign paused or cancelled.

    The campaign's status is read again at most every ``STATUS_RECHECK_SECONDS`` (one
    GetItem), so a cancel takes effect within seconds even in a long batch.
    """

    def __init__(self, tenant_id: str, campaign: Campaign, deadline: datetime) -> None:
        self._tenant_id = tenant_id
        self._campaign_id = campaign.id
        self._deadline = deadline
        self._checked_at = clock.now()
        self._lock = threading.Lock()
        self.reason: str | None = "cancelled" if campaign.status == "cancelled" else None

    def stop_reason(self) -> str | None:
        with self._lock:
            if self.reason is not None:
                return self.reason
            now = clock.now()
            if now >= self._deadline:
                self.reason = "deadline"
            elif (now - self._checked_at).total_seconds() >= STATUS_RECHECK_SECONDS:
                self._checked_at = now
                status = get_campaign(self._tenant_id, self._campaign_id).status
                if status not in SENDING_STATUSES:
                    self.reason = status
            return self.reason

    def stop(self, reason: str) -> None:
        """Stop every thread of the batch (the provider's quota is spent, say)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason

    def time_left(self) -> float:
        return (self._deadline - clock.now()).total_seconds()


class _SendingThreads:
    """The send worker's threads, started on first use and kept for the container's life.

    A pool per batch started and joined ``send_concurrency`` threads for every batch
    (an eighth of the pool's CPU in the benchmark's profile). The pool is made
    again only when ``send_concurrency`` changes (tests set it per test); the old one
    finishes what it was given and its threads end.
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


# -- content ------------------------------------------------------------------------------
class _TimedCache:
    """Per-process cache of templates and senders for ``CONTENT_CACHE_SECONDS``: a batch
    reads its pools without a DynamoDB call each time, and an edit shows within a minute."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str], load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < CONTENT_CACHE_SECONDS:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_content_cache = _TimedCache()


def forget_cached_content() -> None:
    """Drop cached templates and senders (tests that edit them between sends)."""
    _content_cache.clear()


@dataclass(frozen=True)
class Content:
    """The usable templates and senders of a campaign step, loaded once per batch."""

    templates: list[Template]
    senders: list[Sender]


def load_content(tenant_id: str, template_ids: Sequence[str], sender_ids: Sequence[str]) -> Content:
    """The step's templates and usable senders; missing ones are left out of the rotation."""
    templates = [
        t
        for t in (_cached(tenant_id, "template", i, get_template) for i in template_ids)
        if t is not None
    ]
    senders = [
        s
        for s in (_cached(tenant_id, "sender", i, get_sender) for i in sender_ids)
        if s is not None and sender_usability(s)[0].usable
    ]
    return Content(templates, senders)


def _cached(tenant_id: str, kind: str, item_id: str, read: Callable[[str, str], T]) -> T | None:
    def load() -> T | None:
        try:
            return read(tenant_id, item_id)
        except NotFound:
            return None

    return _content_cache.get((tenant_id, kind, item_id), load)


def compose(
    tenant_id: str,
    campaign: Campaign,
    contact: Contact | None,
    address: str,
    *,
    template: Template,
    sender: Sender,
    tags: Mapping[str, str],
) -> OutboundMessage:
    """Render ``template`` for one recipient; RenderError when it cannot be rendered.

    A contact gets an unsubscribe link and the one-click headers; an address with no
    contact (a test send to a colleague) gets neither.
    """
    settings = get_settings()
    step = campaign.main_step.id
    token = None
    if contact is not None:
        claim = UnsubscribeClaim(tenant_id, contact.id, campaign.channel, campaign.id, step)
        token = unsubscribe_token(claim)
    context = RenderContext(
        contact=contact_variables(contact) if contact is not None else {"email": address},
        now=clock.now(),
        campaign={"id": campaign.id, "name": campaign.name, "number": campaign.number},
        unsubscribe_url=unsubscribe_url(token, settings) if token else "",
    )
    content = template.content
    if isinstance(content, SmsTemplate):
        sms = render_sms(content, context)
        return OutboundMessage(
            tenant_id=tenant_id,
            message_id=tags.get(TAG_MESSAGE, ""),
            to=address,
            text=sms.body,
            sender=sender.origination_number or sender.sender_id or "",
            tags=tags,
        )
    assert isinstance(content, EmailTemplate)
    email = render_email(content, context)
    reply_to = campaign.reply_to or ", ".join(sender.reply_to) or None
    return OutboundMessage(
        tenant_id=tenant_id,
        message_id=tags.get(TAG_MESSAGE, ""),
        to=address,
        text=email.text,
        subject=email.subject,
        html=email.html,
        sender=sender.from_email or "",
        sender_name=campaign.from_name or sender.from_name,
        reply_to=reply_to,
        headers=unsubscribe_headers(token, settings) if token else {},
        tags=tags,
        track_opens=campaign.track_opens,
        track_clicks=campaign.track_clicks,
    )


class QuotaSpent(Exception):
    """The provider's daily sending quota is used up: retrying before it rolls over only
    burns worker time, so the campaign pauses until then."""


# SES v2 reports a spent 24-hour sending quota this way; it clears only with time.
QUOTA_CODES = frozenset({"LimitExceededException"})


def send_with_retries(
    channel: Channel, message: OutboundMessage, pacer: Pacer, time_left: Callable[[], float]
) -> SendResult | None:
    """Send, retrying transient errors with backoff while there is time; None when time ran
    out (a batch's recipient then stays unsent and is handed back with the batch).

    The time is checked after the pacer grants the slot, right before the call: at a low
    rate the slot may come long after the request for it, and a send must never start
    later than the lease can cover. QuotaSpent when the provider's daily quota is used up.
    """
    attempt = 0
    while True:
        attempt += 1
        pacer.wait()
        if time_left() <= 0:
            return None
        try:
            return channel.send(message)
        except TransientSendError as error:
            if error.code in QUOTA_CODES or "quota exceeded" in str(error).lower():
                raise QuotaSpent(str(error)) from error
            delay = backoff_seconds(attempt)
            metrics.add_metric(name="send_throttled", unit="Count", value=1)
            if time_left() <= delay:
                logger.warning("out of time retrying a send", extra={"code": error.code})
                return None
            clock.sleep(delay)


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

    @property
    def channel(self) -> Channel:
        return channel_for(self.campaign.channel)

    def run(self) -> None:
        tenant_id, batch = self.batch.tenant_id, self.batch
        deadline = self.started + timedelta(seconds=_lease_seconds() - DEADLINE_MARGIN_SECONDS)
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
        todo: list[tuple[Contact, str]] = []
        for contact_id in recipients:
            outcome, address = self._screen(contact_id, records, contacts, watch)
            if outcome is not None:
                self.outcomes.append(outcome)
            elif address is not None:
                todo.append((contacts[contact_id], address))
        todo = self._drop_suppressed(todo)
        todo = self._defer_quiet_hours(todo)
        delivered = self._deliver_all(todo, watch)
        self.outcomes.extend(delivered)
        self._check_renders(delivered)
        self._conclude(watch)

    def _screen(
        self,
        contact_id: str,
        records: Mapping[str, MessageRecord],
        contacts: Mapping[str, Contact],
        watch: StopWatch,
    ) -> tuple[Outcome | None, str | None]:
        """An outcome decided before sending, or the address to send to."""
        record = records.get(contact_id)
        if record is not None:
            if record.batch_id != self.batch.batch_id:
                return skipped(SkipReason.DUPLICATE), None
            # Sent records have sent_at; a refusal recorded by the sender has none (feedback
            # may have moved either record's status since).
            return Outcome("sent" if record.sent_at else "failed", record=record), None
        if watch.reason == "cancelled":
            return skipped(SkipReason.CANCELLED), None
        contact = contacts.get(contact_id)
        if contact is None:
            return skipped(SkipReason.NOT_FOUND), None
        address = self.channel.address_of(contact)
        reason = contact_skip(contact.status, address, suppressed=False)
        if reason is not None:
            return skipped(reason), None
        return None, address

    def _drop_suppressed(self, todo: list[tuple[Contact, str]]) -> list[tuple[Contact, str]]:
        if not todo:
            return todo
        suppressed = suppressed_among(self.batch.tenant_id, [address for _, address in todo])
        kept = []
        for contact, address in todo:
            if address in suppressed:
                self.outcomes.append(skipped(SkipReason.SUPPRESSED))
            else:
                kept.append((contact, address))
        return kept

    def _defer_quiet_hours(self, todo: list[tuple[Contact, str]]) -> list[tuple[Contact, str]]:
        """Move recipients inside their quiet hours into child batches, grouped by the
        minute their window opens; record the children once, then queue them."""
        window = self.campaign.quiet_hours
        if window is None or not todo:
            return todo
        now = clock.now()
        groups: dict[datetime, list[str]] = {}
        kept = []
        for contact, address in todo:
            opens = next_allowed(now, zone_for(contact.timezone, self.campaign.timezone), window)
            if opens is None:
                kept.append((contact, address))
            else:
                groups.setdefault(opens.replace(second=0, microsecond=0), []).append(contact.id)
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
            unit=f"{_count_unit(self.batch.batch_id)}/{name}",
        )
        self.children[name] = [c.model_dump(mode="json", exclude_none=True) for c in children]
        now = clock.now()
        for child in children:
            assert child.not_before is not None
            _requeue(child, child.not_before - now)

    def _deliver_all(self, todo: list[tuple[Contact, str]], watch: StopWatch) -> list[Outcome]:
        if not todo:
            return []
        settings = get_settings()
        step = self.campaign.main_step
        content = load_content(self.batch.tenant_id, step.template_ids, step.sender_ids)
        pacer = Pacer(worker_rate(self.campaign.channel))
        pool = _sending_threads.pool(settings.send_concurrency)
        futures = [
            pool.submit(self._deliver, contact, address, content, pacer, watch)
            for contact, address in todo
        ]
        # Every send finishes before the batch goes on, even when one raised: the batch
        # must not conclude (or fail) while its threads are still sending.
        wait(futures)
        return [future.result() for future in futures]

    def _deliver(
        self, contact: Contact, address: str, content: Content, pacer: Pacer, watch: StopWatch
    ) -> Outcome:
        """Everything for one recipient: cap, render, send, record."""
        if watch.stop_reason() is not None:
            return UNSENT
        cap = self.campaign.frequency_cap
        if cap is not None:
            recent = recent_send_times(self.batch.tenant_id, contact.id, cap.max_messages)
            if cap_reached(recent, clock.now(), cap):
                return skipped(SkipReason.FREQUENCY_CAP)
        if not content.senders:
            return skipped(SkipReason.SENDER_UNUSABLE)
        if not content.templates:
            return skipped(SkipReason.RENDER_ERROR)
        salt = f"{self.campaign.id}:{self.batch.step}"
        template = pick_for(content.templates, contact.id, salt)
        sender = pick_for(content.senders, contact.id, salt)
        record = MessageRecord(
            campaign_id=self.campaign.id,
            step=self.batch.step,
            contact_id=contact.id,
            channel=self.campaign.channel,
            message_id=message_id(self.batch.step, contact.id, self.campaign.channel),
            status="sent",
            address=address,
            batch_id=self.batch.batch_id,
            template_id=template.id,
            sender_id=sender.id,
        )
        tags = {
            TAG_TENANT: self.batch.tenant_id,
            TAG_CAMPAIGN: self.campaign.id,
            TAG_MESSAGE: record.message_id,
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
        sent = record.model_copy(
            update={"sent_at": clock.now(), "provider_message_id": result.provider_message_id}
        )
        if not record_message(tenant_id, sent):
            # Another attempt recorded this recipient while we sent: a duplicate went out.
            metrics.add_metric(name="duplicate_sends", unit="Count", value=1)
            return skipped(SkipReason.DUPLICATE)
        return Outcome("sent", record=sent)

    def _refused(self, record: MessageRecord, error: PermanentSendError) -> Outcome:
        """A provider said no for good: a recipient's refusal is a skip, the rest a failure."""
        if error.skip is not None:
            if error.skip is SkipReason.OPTED_OUT:
                suppress(self.batch.tenant_id, record.address, "unsubscribed", clock.now())
            return skipped(error.skip)
        failed = record.model_copy(
            update={"status": "failed", "error": f"{error.code}: {error}"[:300]}
        )
        record_message(self.batch.tenant_id, failed)
        return Outcome("failed", record=failed)

    def _render_failed(self, record: MessageRecord, error: Exception) -> Outcome:
        """A template that cannot be rendered for this contact (an error, a budget spent) is
        this recipient's failure, recorded with its reason: never a retry of the batch."""
        failed = record.model_copy(
            update={"status": "failed", "error": f"{RENDER_ERROR_PREFIX}: {error}"[:300]}
        )
        record_message(self.batch.tenant_id, failed)
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
        self._pause(reason)

    def _pause(self, reason: str, *, resume_at: datetime | None = None) -> None:
        try:
            apply_action(
                self.batch.tenant_id,
                self.campaign.id,
                "pause",
                clock.now(),
                error_message=reason[:1000],
                resume_at=resume_at,
            )
        except InvalidTransition:
            return  # paused, cancelled or done meanwhile: nothing to pause
        metrics.add_metric(name="campaigns_paused_by_pipeline", unit="Count", value=1)
        logger.warning("campaign paused", extra={"reason": reason})

    def _conclude(self, watch: StopWatch) -> None:
        """Finish the batch (callbacks, counts once, done), or hand the unsent rest back.

        Every step up to ``finish`` may run again on a retry (callbacks at least once,
        counts exactly once by their marker); the steps after it run again on any
        redelivery of a done batch (``_close``): no crash point loses one.
        """
        self._remember_sms_ids(self.outcomes)
        unsent = sum(1 for o in self.outcomes if o.kind == "unsent")
        if unsent and watch.reason != "cancelled":
            self._hand_back(watch.reason, unsent)
            return
        if clock.now() >= self.started + timedelta(seconds=_lease_seconds()):
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
            unit=_count_unit(self.batch.batch_id),
        )
        if finish(self.unit, clock.now(), counts):
            metrics.add_metric(name="sent", unit="Count", value=counts.get("sent", 0))
        _close(self.batch, self.campaign.id, {**self.lease.state, **self.children})

    def _hand_back(self, reason: str | None, unsent: int) -> None:
        """Give the batch back: the next attempt skips everyone recorded in the ledger and
        sends the rest. Whatever stopped it (out of time, throttled to the end, paused,
        the quota spent), no recipient without an outcome is ever dropped."""
        if not release_lease(self.unit, self.lease.attempt):
            logger.warning("lease taken over; the newer attempt sends the rest")
            return
        if reason == "quota":
            resume_at = clock.now() + timedelta(minutes=get_settings().quota_retry_minutes)
            self._pause(
                f"paused: the provider's daily sending quota is spent ({self.quota_error}); "
                f"resumes by itself at {resume_at.isoformat(timespec='seconds')}",
                resume_at=resume_at,
            )
            _requeue_paused(self.batch)
        elif reason == "paused":
            _requeue_paused(self.batch)
        else:
            _requeue(self.batch, timedelta(0))
        logger.info("batch handed back", extra={"reason": reason, "unsent": unsent})

    def _remember_sms_ids(self, outcomes: Iterable[Outcome]) -> None:
        """SNS's SMS status events carry no tags: leave a pointer per SMS of this batch (again
        for those an earlier attempt sent: it may have died before writing them)."""
        if self.campaign.channel != "sms":
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


def _child_recipients(state: Mapping[str, Any]) -> set[str]:
    """Recipients an earlier attempt already moved into child batches."""
    return {
        recipient
        for name, children in state.items()
        if name.startswith("children_")
        for child in children
        for recipient in child.get("recipients", [])
    }


# -- completion ---------------------------------------------------------------------------
RENDER_ERROR_PREFIX = "render_error"


def _count_unit(batch_id: str) -> str:
    return f"BATCH#{batch_id}"


def _first_error(outcomes: Iterable[Outcome]) -> str:
    for outcome in outcomes:
        if outcome.reason is SkipReason.RENDER_ERROR and outcome.record is not None:
            return str(outcome.record.error)
    return ""


def _close(batch: BatchMessage, campaign_id: str, state: Mapping[str, Any]) -> None:
    """The steps after a batch is done, safe to repeat: the completion check, then dropping
    its count markers (no attempt can count it again once it is done)."""
    check_completion(batch.tenant_id, campaign_id)
    unit = _count_unit(batch.batch_id)
    children = [f"{unit}/{name}" for name in state if name.startswith("children_")]
    forget_markers(batch.tenant_id, campaign_id, batch.batch_id, [unit, *children])


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
    try:
        apply_action(tenant_id, campaign_id, "complete", clock.now())
    except InvalidTransition:
        return False
    logger.info("campaign sent", extra={"sent": counts.get("sent", 0)})
    return True


# -- test sends ---------------------------------------------------------------------------
class TestSendResult(BaseModel):
    """What happened to one address of a test send."""

    address: str
    status: Literal["sent", "failed", "skipped"]
    provider_message_id: str | None = None
    reason: str | None = None


def send_test(tenant_id: str, campaign: Campaign, addresses: Sequence[str]) -> list[TestSendResult]:
    """Send the campaign's first template to ``addresses`` only: no ledger, no counters.

    Rendered with the contact's data when an address belongs to a contact (then with its
    unsubscribe link), else with the address alone. Suppressed addresses are skipped. The
    messages carry only the tenant tag, so their provider events correlate to no campaign.
    """
    step = campaign.main_step
    content = load_content(tenant_id, step.template_ids, step.sender_ids)
    suppressed = suppressed_among(tenant_id, addresses)
    pacer = Pacer(worker_rate(campaign.channel))
    deadline = clock.now() + timedelta(seconds=TEST_SEND_SECONDS)
    results = []
    for address in dict.fromkeys(addresses):
        if address in suppressed:
            results.append(TestSendResult(address=address, status="skipped", reason="suppressed"))
        elif not content.templates or not content.senders:
            lacking = (
                SkipReason.RENDER_ERROR if not content.templates else SkipReason.SENDER_UNUSABLE
            )
            results.append(TestSendResult(address=address, status="skipped", reason=lacking.value))
        else:
            results.append(
                _send_one_test(
                    tenant_id, campaign, address, content=content, pacer=pacer, deadline=deadline
                )
            )
    return results


def _send_one_test(
    tenant_id: str,
    campaign: Campaign,
    address: str,
    *,
    content: Content,
    pacer: Pacer,
    deadline: datetime,
) -> TestSendResult:
    contact = (
        find_by_email(tenant_id, address) if "@" in address else find_by_phone(tenant_id, address)
    )
    template, sender = content.templates[0], content.senders[0]
    tags = {TAG_TENANT: tenant_id}

    def time_left() -> float:
        return (deadline - clock.now()).total_seconds()

    try:
        message = compose(
            tenant_id, campaign, contact, address, template=template, sender=sender, tags=tags
        )
    except Exception as error:  # any render failure is reported, not raised
        reason = f"{RENDER_ERROR_PREFIX}: {error}"
        return TestSendResult(address=address, status="skipped", reason=reason)
    try:
        result = send_with_retries(channel_for(campaign.channel), message, pacer, time_left)
    except PermanentSendError as error:
        return TestSendResult(address=address, status="failed", reason=f"{error.code}: {error}")
    except QuotaSpent as error:
        return TestSendResult(address=address, status="failed", reason=str(error))
    if result is None:
        return TestSendResult(
            address=address, status="failed", reason="the provider kept throttling"
        )
    return TestSendResult(
        address=address, status="sent", provider_message_id=result.provider_message_id
    )
