"""The feedback worker: provider events → message status, campaign stats, suppression,
callbacks and webhooks.

Each feedback-queue message (an SNS notification from the SES events topic, an EventBridge
SES event, or an SMS or push delivery status from the status forwarder) is parsed into a
``DeliveryEvent`` and applied. When SES publishes through Firehose, a message announces
an S3 object of hundreds of SES records (``on_events_object``): they are applied the same
way, 100 to a batch of their own, up to the invocation's event budget. Applying one event:

1. Correlate: the SES tags name tenant, campaign and message; an SMS or push status is
   looked up by SNS message id (``store.provider_messages``).
2. Suppress at once on a permanent bounce, a complaint or an opt-out (idempotent, done
   on every delivery of the event so a crash can never leave it undone).
3. Move the message's status forward (one conditional UpdateItem: only from a lower
   status). If the status does not move (a late or duplicate event), record the event's
   time only if it was never recorded (a second conditional UpdateItem). Either way the
   ledger says whether THIS delivery of the event was the first: only a first time counts.
4. First times are gathered for the whole batch and written once per batch (a batch
   scope): one counter ADD per campaign, one callback chunk per (campaign, event), one
   queue call for the webhooks.

Duplicates and reordering therefore change nothing: status never moves back, each kind of
event counts once per message (unique opens and clicks included). The one gap: a worker
that dies between the ledger updates and the batch's counter write loses those counts
(the redelivered events are then duplicates): at most one batch, 100 events, whether they
came one to a message or from an object. docs/feedback.md has the whole argument.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import MAIN_STEP, Campaign
from chalicelib.domain.delivery import message_id, parse_message_id
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.feedback import (
    KIND_COUNTER,
    UNTAGGED_CHANNELS,
    DeliveryEvent,
    EventsObject,
    ObjectRecord,
    UnrecognizedNotification,
    callback_event,
    calls_back,
    parse_notification,
    parse_object_notification,
    split_records,
    statuses_below,
    step_counter,
    timestamp_attribute,
)
from chalicelib.domain.flows.stats import variant_counter
from chalicelib.domain.suppression import SuppressionReason
from chalicelib.domain.unsubscribe import Unsubscribed
from chalicelib.domain.webhooks import message_event_type
from chalicelib.observability import logger, metrics
from chalicelib.pipeline.breaker import record_outcomes
from chalicelib.pipeline.callbacks import CallbackHit, buffer_callbacks
from chalicelib.pipeline.messages import ChannelReceipt, SesEventsObject
from chalicelib.pipeline.queues import enqueue
from chalicelib.services.enrolments import STATUS_EXITS, exit_contact_everywhere
from chalicelib.services.notices import WebhookNotice, notify_webhooks
from chalicelib.settings import get_settings
from chalicelib.store import ledger
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.counters import add_counts
from chalicelib.store.ledger import MessageRecord
from chalicelib.store.provider_messages import MessageRef, find_provider_message
from chalicelib.store.ses_event_objects import read_events
from chalicelib.store.suppression import suppress

# An event for a message Herald has no record of yet is retried while it is this young
# (the sender writes the record right after the provider accepts; a fast event may beat
# it); an older one is not Herald's (a test send, another application) and is dropped.
# The retry is the message queued again with a short delay, not a failed record: that
# would wait for the queue's visibility timeout (6 minutes) and count towards the DLQ.
RECORD_RACE_WINDOW = timedelta(minutes=10)
RECORD_RETRY_SECONDS = 15
_LINK_MAX = 500
# An object's events are applied this many to a batch of their own, whose counts are
# written when it ends: a crash loses at most this many events' counts, as a batch of 100
# SNS-carried events does.
OBJECT_CHUNK_EVENTS = 100
# A record that does not parse is queued alone, cut to this many characters (JSON escapes
# may make one six bytes; SQS takes 256 KiB).
_UNREADABLE_MAX = 40_000
_SUPPRESSION_REASONS: dict[str, SuppressionReason] = {
    "bounced": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}


class MessageNotRecordedYet(Exception):
    """The event's message has no ledger record yet: the event is queued again."""


@dataclass
class _Budget:
    """The events from objects one invocation may still apply (its queue batch's, shared
    by the batches of 100 nested in it): the worker must finish within its timeout."""

    left: int


@dataclass
class _BatchEffects:
    """What a batch's first-time events add up to, written once when the batch ends."""

    budget: _Budget
    counts: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    callbacks: list[CallbackHit] = field(default_factory=list)
    notices: list[WebhookNotice] = field(default_factory=list)
    campaigns: dict[tuple[str, str], Campaign | None] = field(default_factory=dict)

    def campaign(self, ref: MessageRef) -> Campaign | None:
        """The event's campaign, read once per batch (None if it was deleted)."""
        return self._campaign(ref.tenant_id, ref.campaign_id)

    def _campaign(self, tenant_id: str, campaign_id: str) -> Campaign | None:
        key = (tenant_id, campaign_id)
        if key not in self.campaigns:
            try:
                self.campaigns[key] = get_campaign(tenant_id, campaign_id)
            except NotFound:
                self.campaigns[key] = None
        return self.campaigns[key]

    def write(self) -> None:
        now = clock.now()
        for (tenant_id, campaign_id), counts in self.counts.items():
            add_counts(tenant_id, campaign_id, counts, shard_key=uuid.uuid4().hex)
            campaign = self._campaign(tenant_id, campaign_id)
            if campaign is not None:  # the breaker's windows (pipeline.breaker)
                record_outcomes(tenant_id, campaign, counts, now)
        buffer_callbacks(self.callbacks)
        notify_webhooks(self.notices)


_batch: ContextVar[_BatchEffects | None] = ContextVar("feedback_batch", default=None)


@contextmanager
def feedback_batch() -> Iterator[_BatchEffects]:
    """Gather the effects of the events handled inside; write them when the block ends.

    Nested in another (an object's chunk inside the queue batch), it writes its own
    effects when it ends and shares the outer one's event budget and campaign reads. The
    effects are written even when an event inside raised: the events applied before it
    are recorded as happened, so their redelivery would not count them again.
    """
    outer = _batch.get()
    if outer is None:
        effects = _BatchEffects(_Budget(get_settings().feedback_events_per_invocation))
    else:
        effects = _BatchEffects(outer.budget, campaigns=outer.campaigns)
    token = _batch.set(effects)
    try:
        yield effects
    finally:
        _batch.reset(token)
        effects.write()


@contextmanager
def _current_batch() -> Iterator[_BatchEffects]:
    """The queue batch's effects; outside one (a direct call), a batch of its own, with its
    own event budget, written when the block ends."""
    effects = _batch.get()
    if effects is not None:
        yield effects
        return
    with feedback_batch() as effects:
        yield effects


def on_provider_event(message: dict[str, Any]) -> None:
    """One SES event (SNS or EventBridge) or SMS or push delivery status (from the status
    forwarder, ``pipeline.status_logs``) from the feedback queue."""
    event = parse_notification(message)
    if event is not None:
        _handle(event, message)


def on_events_object(message: dict[str, Any]) -> None:
    """An S3 notification of new objects of SES events (Firehose's), or the rest of one
    (``SesEventsObject``): each object's records applied in batches of 100, as far as the
    invocation's event budget goes; the rest is queued as a continuation."""
    if message.get("kind") == SesEventsObject.KIND:
        rest = SesEventsObject.model_validate(message)
        objects = [EventsObject(bucket=rest.bucket, key=rest.key, start=rest.start)]
    else:
        objects = parse_object_notification(message)
    with _current_batch() as effects:
        _apply_objects(objects, effects.budget)


def _apply_objects(objects: list[EventsObject], budget: _Budget) -> None:
    for where in objects:
        if budget.left <= 0:
            _continue_later(where)
            continue
        records = split_records(read_events(where))
        while chunk := list(islice(records, min(OBJECT_CHUNK_EVENTS, budget.left))):
            with feedback_batch():
                for record in chunk:
                    _apply_record(record, where)
            budget.left -= len(chunk)
            if budget.left <= 0:
                if next(records, None) is not None:
                    _continue_later(where.model_copy(update={"start": where.start + chunk[-1].end}))
                break


def _apply_record(record: ObjectRecord, where: EventsObject) -> None:
    """One record of an object, applied like an SNS-carried event; one that is no event
    Herald can read is queued alone, to fail there and wait in the DLQ."""
    try:
        if record.value is None:
            raise UnrecognizedNotification("not a JSON object")
        event = parse_notification(record.value)
    except UnrecognizedNotification as error:
        _set_aside(record, where, error)
        return
    if event is not None:
        _handle(event, record.value)


def _set_aside(record: ObjectRecord, where: EventsObject, error: Exception) -> None:
    """Neither sink the object's other records nor lose this one: the record goes on the
    feedback queue alone (in no shape a handler takes, so it fails there and ends in the
    DLQ after the queue's retries), naming its object."""
    source = f"s3://{where.bucket}/{where.key}"
    unreadable = {"unreadable_record": record.text[:_UNREADABLE_MAX], "object": source}
    enqueue("feedback", [unreadable])
    metrics.add_metric(name="feedback_unreadable_records", unit="Count", value=1)
    logger.warning(
        "unreadable record in an object of SES events",
        extra={"object": source, "error": str(error)[:300]},
    )


def _continue_later(where: EventsObject) -> None:
    """Queue the rest of the object for another invocation (the budget is spent)."""
    rest = SesEventsObject(bucket=where.bucket, key=where.key, start=where.start)
    enqueue("feedback", [rest.as_message()])
    metrics.add_metric(name="feedback_object_continued", unit="Count", value=1)


def on_channel_receipt(message: dict[str, Any]) -> None:
    """A receipt a channel queued itself (on-site stored, Telegram accepted; see
    chalicelib/channels/receipts.py): applied exactly like a provider's event."""
    receipt = ChannelReceipt.model_validate(message)
    _handle(DeliveryEvent.model_validate(receipt.event), message)


def _handle(event: DeliveryEvent, message: dict[str, Any]) -> None:
    """Apply ``event`` in the current batch; queue ``message`` again while its record may
    still be being written."""
    try:
        with _current_batch() as effects:
            apply_event(event, effects)
    except MessageNotRecordedYet:
        enqueue("feedback", [message], delay_seconds=RECORD_RETRY_SECONDS)
        metrics.add_metric(name="feedback_requeued", unit="Count", value=1)


def apply_event(event: DeliveryEvent, effects: _BatchEffects) -> None:
    """Apply one event (see the module docstring); first-time effects go to ``effects``."""
    ref = _correlate(event)
    if ref is None:
        metrics.add_metric(name="feedback_uncorrelated", unit="Count", value=1)
        logger.info(
            "feedback event for no Herald message",
            extra={"kind": event.kind, "provider_message_id": event.provider_message_id},
        )
        return
    if event.suppress:
        reason = _SUPPRESSION_REASONS[event.kind]
        for address in event.recipients:
            try:
                suppress(ref.tenant_id, address, reason, event.occurred_at)
            except ValidationFailed:  # not an address Herald could send to anyway
                logger.warning("unsuppressible address in feedback", extra={"kind": event.kind})
        _leave_flows(ref, event)
    if event.status is None:
        return
    record = _first_time(event, ref)
    if record is None:
        return
    counter = KIND_COUNTER[event.kind]
    if counter:
        counts = effects.counts.setdefault((ref.tenant_id, ref.campaign_id), Counter())
        counts[counter] += 1
        variant = record.model_extra.get("variant") if record.model_extra else None
        if isinstance(variant, str):  # a flow message sent after an A/B split
            counts[variant_counter(variant, counter)] += 1
        step = parse_message_id(ref.message_id)[0]
        if step != MAIN_STEP:  # a flow's step (a sequence's unique opens per step…)
            counts[step_counter(counter, step)] += 1
    effects.notices.append(_notice(event, ref))
    hook = callback_event(event.kind, event.channel)
    campaign = effects.campaign(ref) if hook else None
    if hook and campaign is not None and campaign.event_callback and event.recipients:
        effects.callbacks.append(
            CallbackHit(
                tenant_id=ref.tenant_id,
                campaign_id=ref.campaign_id,
                channel=event.channel,
                url=campaign.event_callback,
                event=hook,
                address=event.recipients[0],
                message_id=ref.message_id,
                occurred_at=event.occurred_at,
            )
        )


def _correlate(event: DeliveryEvent) -> MessageRef | None:
    """Herald's message for an event: from its tags, else by the provider's message id."""
    if event.tenant_id and event.campaign_id and event.message_id:
        ref = MessageRef(event.tenant_id, event.campaign_id, event.message_id)
    elif event.provider_message_id:
        found = find_provider_message(event.provider_message_id)
        if found is None:
            if event.channel in UNTAGGED_CHANNELS:  # the sender leaves pointers after its batch
                _retry_if_young(event)
            return None
        ref = found
    else:
        return None
    try:
        parse_message_id(ref.message_id)
    except ValueError:
        return None  # tags that look like ours but are not a Herald message id
    return ref


def _leave_flows(ref: MessageRef, event: DeliveryEvent) -> None:
    """A hard bounce, a complaint or an opt-out ends the contact's flows (idempotent, so
    done on every delivery of the event like the suppression)."""
    try:
        _, contact_id, _ = parse_message_id(ref.message_id)
    except ValueError:
        return
    reason = STATUS_EXITS[_SUPPRESSION_REASONS[event.kind]]
    exit_contact_everywhere(ref.tenant_id, contact_id, reason, clock.now())


def _retry_if_young(event: DeliveryEvent) -> None:
    """Raise (to queue the event again) while its message may still be being recorded."""
    sent_at = event.sent_at or event.occurred_at
    if clock.now() - sent_at < RECORD_RACE_WINDOW:
        raise MessageNotRecordedYet(f"no record yet of {event.provider_message_id}")


def _first_time(event: DeliveryEvent, ref: MessageRef) -> MessageRecord | None:
    """Record the event on its message; the record if this is the first time it happened."""
    assert event.status is not None
    attribute = timestamp_attribute(event.kind)
    at = event.occurred_at.isoformat()
    try:
        moved = ledger.set_message_status(
            ref.tenant_id,
            ref.campaign_id,
            ref.message_id,
            event.status,
            only_from=statuses_below(event.status),
            values={attribute: at, **_details(event)},
        )
        if moved is not None:
            return moved
        return ledger.mark_message_event(
            ref.tenant_id, ref.campaign_id, ref.message_id, attribute, at
        )
    except NotFound:
        _retry_if_young(event)
        metrics.add_metric(name="feedback_orphans", unit="Count", value=1)
        return None


def _details(event: DeliveryEvent) -> dict[str, Any]:
    """What the message keeps about the event that set its status (kept small: < 1 KB)."""
    details: dict[str, Any] = {
        "bounce_type": event.bounce_type,
        "bounce_subtype": event.bounce_subtype,
        "status_detail": event.detail,
        "clicked_link": event.link[:_LINK_MAX] if event.link else None,
    }
    return {name: value for name, value in details.items() if value}


def _notice(event: DeliveryEvent, ref: MessageRef) -> WebhookNotice:
    data = {
        "message_id": ref.message_id,
        "campaign_id": ref.campaign_id,
        "channel": event.channel,
        "recipients": list(event.recipients),
        "provider_message_id": event.provider_message_id,
        "occurred_at": event.occurred_at.isoformat(),
        **_details(event),
    }
    return WebhookNotice(ref.tenant_id, message_event_type(event.kind), event.occurred_at, data)


# -- Herald's own events ------------------------------------------------------------------
def on_messages_sent(tenant_id: str, campaign: Campaign, sent: Sequence[MessageRecord]) -> None:
    """What the sender calls once per batch, with the batch's ``sent`` records.

    Emits ``submitted`` (Herald accepted and sent the message): the seed's callback event
    and the ``message.submitted`` webhook. One callback chunk and one webhook lookup per
    batch, never per recipient.
    """
    done = [(r, r.sent_at) for r in sent if r.status == "sent" and r.sent_at is not None]
    if not done:
        return
    if campaign.event_callback and calls_back("submitted", campaign.channel):
        buffer_callbacks(
            CallbackHit(
                tenant_id=tenant_id,
                campaign_id=campaign.id,
                channel=campaign.channel,
                url=campaign.event_callback,
                event="submitted",
                address=record.address,
                message_id=record.message_id,
                occurred_at=at,
            )
            for record, at in done
        )
    notify_webhooks(
        WebhookNotice(
            tenant_id,
            "message.submitted",
            at,
            {
                "message_id": record.message_id,
                "campaign_id": campaign.id,
                "channel": campaign.channel,
                "recipients": [record.address],
                "provider_message_id": record.provider_message_id,
                "occurred_at": at.isoformat(),
            },
        )
        for record, at in done
    )


def count_unsubscribe(unsubscribed: Unsubscribed) -> None:
    """An unsubscribe link used: the message becomes ``unsubscribed`` and the campaign's
    ``unsubscribed`` count goes up, once per message however often the link is used."""
    claim = unsubscribed.claim
    if not claim.campaign_id or not claim.message_ref:
        return
    try:  # the sender puts the step in the token; a full message id is accepted too
        parse_message_id(claim.message_ref)
        herald_message_id = claim.message_ref
    except ValueError:
        herald_message_id = message_id(claim.message_ref, claim.contact_id, claim.channel)
    event = DeliveryEvent(
        kind="unsubscribed",
        channel=claim.channel,
        provider="herald",
        provider_event="unsubscribe_link",
        occurred_at=unsubscribed.at,
        recipients=(unsubscribed.address,) if unsubscribed.address else (),
        tenant_id=claim.tenant_id,
        campaign_id=claim.campaign_id,
        message_id=herald_message_id,
    )
    try:
        with feedback_batch() as effects:
            apply_event(event, effects)
    except MessageNotRecordedYet:  # a link to a message that was never recorded
        logger.warning("unsubscribe for a message without a record")
