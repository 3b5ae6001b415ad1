"""A flow's send node: one message to one contact, through the broadcast's pipeline pieces,
exactly once per step.

The message is named by the step: its ledger record's occurrence is the enrolment's
visit (``message_id(node, contact, channel, visit)``), so a retry of the step (a
redelivery, a crash before the claim) finds the record and sends nothing, while the same
node reached again (re-entry, a loop) is a new message. In order:

1. the ledger record of this step, if an earlier attempt wrote one: the outcome it says
   (read in one BatchGetItem with the address's suppression entries, ``store.send_reads``);
2. ``screen`` (status, address, SMS countries, suppression: re-checked at send time);
3. the send policy, shared with broadcasts (``pipeline.send.policy.admit``: quiet hours
   defer, ``max_lateness`` skips, both frequency caps, counted atomically; a message that
   then does not go out gives its slot back, ``release``);
4. render (``compose``, with the enrolling event as ``event``; a sequence's email joins
   its thread, ``sequence_mail``), the provider call at the shared pacer's rate
   (``send_with_retries``), then one conditional ledger put (and, for a sequence, the
   pointers its replies are matched by).

Crash points: before the ledger put after the provider accepted, a retry sends again (as
for broadcasts, SES has no idempotency token); after it, never. A worker dying after the
policy counted but before the send over-counts the caps by one: caps err on the side of
less mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chalicelib.channels.base import PermanentSendError
from chalicelib.channels.registry import channel_for
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign, Step
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason, message_id, pick_for
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT, UNTAGGED_CHANNELS
from chalicelib.domain.flows.policy import Allow, Defer
from chalicelib.domain.flows.stats import variant_of
from chalicelib.domain.flows.step import Enrolment
from chalicelib.observability import metrics
from chalicelib.pipeline.feedback import on_messages_sent
from chalicelib.pipeline.flows import sequence_mail
from chalicelib.pipeline.send.compose import RENDER_ERROR_PREFIX, compose, load_content
from chalicelib.pipeline.send.pacing import Pacer, QuotaSpent, send_with_retries, worker_rate
from chalicelib.pipeline.send.policy import CapContention, admit, release
from chalicelib.pipeline.send.screen import screen
from chalicelib.store.ledger import MessageRecord, record_message
from chalicelib.store.provider_messages import MessageRef, remember_provider_messages
from chalicelib.store.send_reads import record_and_suppressed
from chalicelib.store.suppression import suppress

FLOW_BATCH = "flow"  # a flow message's ``batch_id``: it belongs to no batch


class SendInterrupted(Exception):
    """The message could not be sent in this invocation (out of time, the provider's quota
    spent, the cap counters contended): the wake is retried by SQS, the step unclaimed."""


@dataclass(frozen=True)
class SendOutcome:
    """What a send node did: sent (``sent``), deferred until ``defer_until``, or skipped
    for ``skip`` (a reason the trace and the counters show)."""

    sent: bool = False
    defer_until: datetime | None = None
    defer_reason: str | None = None
    skip: str | None = None


_pacers: dict[tuple[str, float], Pacer] = {}


def shared_pacer(channel: str) -> Pacer:
    """One pacer per channel for the whole process, at the send workers' per-worker rate:
    every send of the flow worker's process waits its turn on it (docs/flows.md)."""
    rate = worker_rate(channel)
    return _pacers.setdefault((channel, rate), Pacer(rate))


def forget_pacers() -> None:
    """Start the pacers afresh (tests that move a frozen clock back between tests)."""
    _pacers.clear()


def send_step(
    tenant_id: str,
    campaign: Campaign,
    contact: Contact,
    enrolment: Enrolment,
    *,
    deadline: datetime,
) -> SendOutcome:
    """Send the message of the send node ``enrolment`` stands on (see the module doc)."""
    node_id = enrolment.node_id
    step = campaign.step(node_id)
    if step is None:  # a send node is always a step (flow_steps); an old copy is not
        return SendOutcome(skip="step_missing")
    occurrence = str(enrolment.visit)
    mid = message_id(node_id, contact.id, step.channel, occurrence)
    channel = channel_for(step.channel)
    address = channel.address_of(contact)
    earlier, suppressed = record_and_suppressed(
        tenant_id, campaign.id, mid, [address] if address else []
    )
    if earlier is not None:
        return _recorded(earlier)
    screened = screen(tenant_id, channel, [contact], suppressed=suppressed)
    if screened.skipped:
        return SendOutcome(skip=screened.skipped[0])
    _, address = screened.eligible[0]
    now = clock.now()
    try:
        decision = admit(tenant_id, campaign, contact, now, due_at=enrolment.arrived_at)
    except CapContention as error:
        raise SendInterrupted(str(error)) from error
    if isinstance(decision, Defer):
        return SendOutcome(defer_until=decision.until, defer_reason=decision.reason)
    if not isinstance(decision, Allow):
        return SendOutcome(skip=decision.reason)
    record = MessageRecord.model_validate(
        {
            "campaign_id": campaign.id,
            "step": node_id,
            "contact_id": contact.id,
            "channel": step.channel,
            "message_id": mid,
            "status": "sent",
            "address": address,
            "batch_id": FLOW_BATCH,
            "occurrence": occurrence,
            "variant": variant_of(enrolment),  # feedback counts per A/B variant from it
        }
    )
    try:
        outcome = _deliver(tenant_id, campaign, step, contact, record, enrolment, deadline)
    except SendInterrupted:
        release(tenant_id, campaign, contact.id, decision)  # the retry counts it again
        raise
    if not outcome.sent:
        release(tenant_id, campaign, contact.id, decision)
    return outcome


def _deliver(  # noqa: PLR0917 (each is a different thing the message needs)
    tenant_id: str,
    campaign: Campaign,
    step: Step,
    contact: Contact,
    record: MessageRecord,
    enrolment: Enrolment,
    deadline: datetime,
) -> SendOutcome:
    """Render, send at the shared pacer's rate, record: the broadcast sender's steps."""
    content = load_content(tenant_id, step.template_ids, step.sender_ids)
    if not content.senders:
        return SendOutcome(skip=SkipReason.SENDER_UNUSABLE)
    if not content.templates:
        return SendOutcome(skip=SkipReason.RENDER_ERROR)
    template = pick_for(content.templates, contact.id, f"{campaign.id}:{step.id}")
    # The sender is drawn per contact for the whole flow, not per node: a contact hears
    # from one sender of a pool at every send (a sequence's thread stays with one person).
    sender = pick_for(content.senders, contact.id, campaign.id)
    record = record.model_copy(update={"template_id": template.id, "sender_id": sender.id})
    tags = {TAG_TENANT: tenant_id, TAG_CAMPAIGN: campaign.id, TAG_MESSAGE: record.message_id}
    try:
        message = compose(
            tenant_id,
            campaign,
            contact,
            record.address,
            template=template,
            sender=sender,
            tags=tags,
            step=step,
            event=_event_variables(enrolment),
        )
    except Exception as error:  # any render failure is this contact's alone
        failed = record.model_copy(
            update={"status": "failed", "error": f"{RENDER_ERROR_PREFIX}: {error}"[:300]}
        )
        record_message(tenant_id, failed)
        metrics.add_metric(name="render_failures", unit="Count", value=1)
        return SendOutcome(skip=SkipReason.RENDER_ERROR)
    in_sequence = sequence_mail.applies(campaign, step.channel)
    if in_sequence:
        message = sequence_mail.threaded(tenant_id, campaign, record, message)

    def time_left() -> float:
        return (deadline - clock.now()).total_seconds()

    channel = channel_for(step.channel)
    try:
        result = send_with_retries(channel, message, shared_pacer(step.channel), time_left)
    except PermanentSendError as error:
        return _refused(tenant_id, record, error)
    except QuotaSpent as error:  # the wake comes back after the visibility timeout
        raise SendInterrupted(str(error)) from error
    if result is None:
        raise SendInterrupted("out of time before the provider took the message")
    sent = record.model_copy(
        update={"sent_at": clock.now(), "provider_message_id": result.provider_message_id}
    )
    if not record_message(tenant_id, sent):
        metrics.add_metric(name="duplicate_sends", unit="Count", value=1)
    if step.channel in UNTAGGED_CHANNELS and result.provider_message_id:
        ref = MessageRef(tenant_id, campaign.id, record.message_id)
        remember_provider_messages([(result.provider_message_id, ref)], clock.now())
    if in_sequence:
        sequence_mail.sent(tenant_id, sent, clock.now())
    on_messages_sent(tenant_id, campaign, [sent])
    return SendOutcome(sent=True)


def _recorded(record: MessageRecord) -> SendOutcome:
    """The outcome an earlier attempt of the step recorded."""
    if record.sent_at is not None:
        return SendOutcome(sent=True)
    if record.error and record.error.startswith(RENDER_ERROR_PREFIX):
        return SendOutcome(skip=SkipReason.RENDER_ERROR)
    return SendOutcome(skip="send_failed")


def _refused(tenant_id: str, record: MessageRecord, error: PermanentSendError) -> SendOutcome:
    """A provider said no for good: the recipient's refusal is a skip, the rest a failure."""
    if error.skip is not None:
        if error.skip is SkipReason.OPTED_OUT:
            suppress(tenant_id, record.address, "unsubscribed", clock.now())
        return SendOutcome(skip=error.skip)
    failed = record.model_copy(update={"status": "failed", "error": f"{error.code}: {error}"[:300]})
    record_message(tenant_id, failed)
    return SendOutcome(skip="send_failed")


def _event_variables(enrolment: Enrolment) -> Mapping[str, Any] | None:
    event = enrolment.trigger_event
    return asdict(event) if event is not None else None
