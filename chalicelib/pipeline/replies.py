"""Replies to sequence messages, from SES inbound through the replies queue.

Each queue message is an SNS envelope around SES's ``Received`` notification (a receipt
rule for the reply domain publishes it: infra/replies.py). The reply is matched to the
message it answers (``domain.replies``: quoted SES ids, else a ``reply+<token>@``
recipient) through pointers the sender leaves after each send (``remember_for_replies``),
then, for the first reply to a message (until its ``replied_at`` is set, last):

- a campaign with ``stop_on_reply`` exits the contact's enrolment with reason
  ``replied`` (``services.enrolments.exit_enrolment``: the step claim, so a worker racing
  it cannot send the next step; counted and told as ``enrollment.exited``);
- ``replied`` counts for the campaign and the step (``replied@<step>``), once per message;
- a ``message.replied`` webhook is queued;
- the reply reaches a person: forwarded whole to the campaign's ``reply_to``, else the
  sender's first reply-to address, and an operator inbox thread is opened for it.

An automatic answer (out of office…) is recorded as ``auto_replied_at`` and nothing more.
A mail that answers nothing of Herald's is counted (``replies_unmatched``) and dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.channels import email as email_channel
from chalicelib.channels.base import PermanentSendError
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.errors import NotFound
from chalicelib.domain.feedback import step_counter
from chalicelib.domain.flows.step import ExitReason
from chalicelib.domain.replies import (
    InboundMail,
    forward,
    parse_notification,
    reply_token,
    reply_token_for,
)
from chalicelib.observability import logger, metrics
from chalicelib.services.enrolments import exit_enrolment
from chalicelib.services.notices import WebhookNotice, notify_webhooks
from chalicelib.settings import get_settings
from chalicelib.store import inbox_threads, ledger, senders
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.counters import add_counts_once
from chalicelib.store.inbound_mail import read_mail
from chalicelib.store.ledger import MessageRecord
from chalicelib.store.provider_messages import (
    MessageRef,
    find_provider_message,
    remember_provider_messages,
)

# A contact may answer weeks later; a sequence's pointers live this long.
REPLY_RETENTION = timedelta(days=180)
_POINTER_PREFIX = "reply:"  # the pointer kept under a reply token


@dataclass(frozen=True)
class ReplyOutcome:
    """What one inbound mail did (for logs and tests)."""

    matched: MessageRef | None
    counted: bool
    exited: bool
    forwarded_to: str | None


# -- the sender's side -------------------------------------------------------------------
def remember_for_replies(tenant_id: str, records: Iterable[MessageRecord], now: datetime) -> int:
    """Leave the pointers a reply is matched by, for messages just sent: the SES id (what
    In-Reply-To quotes) and the reply token. The flow worker calls this after a
    sequence's send (one BatchWriteItem per 12 messages)."""
    pairs: list[tuple[str, MessageRef]] = []
    for record in records:
        if record.provider_message_id is None or record.channel != "email":
            continue
        ref = MessageRef(tenant_id, record.campaign_id, record.message_id)
        token = reply_token_for(tenant_id, record.campaign_id, record.message_id)
        pairs += [(record.provider_message_id, ref), (_POINTER_PREFIX + token, ref)]
    return remember_provider_messages(pairs, now, REPLY_RETENTION)


# -- the queue's side --------------------------------------------------------------------
def on_inbound(message: dict[str, Any]) -> None:
    """One SNS envelope from the replies queue."""
    notification = json.loads(message["Message"])
    mail = parse_notification(notification)
    if mail.stored_at is not None and mail.raw is None:
        mail = parse_notification(notification, read_mail(mail.stored_at))
    handle_reply(mail, clock.now())


def handle_reply(mail: InboundMail, now: datetime) -> ReplyOutcome:
    """Match, record and act on one received mail (see the module docstring).

    Crash-safe in this order: the exit first (a retry finds the enrolment gone), the
    count once per message (its own marker), the webhook and the forward at least once,
    and the message's ``replied_at`` last, so a worker dying anywhere before it leaves the
    whole reply to the retry instead of a mark with nothing done.
    """
    ref = _match(mail)
    if ref is None:
        metrics.add_metric(name="replies_unmatched", unit="Count", value=1)
        logger.info("inbound mail answers no Herald message", extra={"ses": mail.ses_message_id})
        return ReplyOutcome(None, counted=False, exited=False, forwarded_to=None)
    if mail.automatic:
        ledger.mark_message_event(
            ref.tenant_id, ref.campaign_id, ref.message_id, "auto_replied_at", now.isoformat()
        )
        return ReplyOutcome(ref, counted=False, exited=False, forwarded_to=None)
    record = ledger.get_message(ref.tenant_id, ref.campaign_id, ref.message_id)
    try:
        campaign: Campaign | None = get_campaign(ref.tenant_id, ref.campaign_id)
    except NotFound:
        campaign = None
    exited = (
        campaign is not None
        and campaign.stop_on_reply
        and exit_enrolment(
            ref.tenant_id, ref.campaign_id, record.contact_id, ExitReason.REPLIED, now
        )
    )
    if (record.model_extra or {}).get("replied_at"):
        return ReplyOutcome(ref, counted=False, exited=exited, forwarded_to=None)
    counted = add_counts_once(
        ref.tenant_id,
        ref.campaign_id,
        {"replied": 1, step_counter("replied", record.step): 1},
        shard_key=ref.message_id,
        unit=f"replied#{ref.message_id}",
    )
    notify_webhooks([_notice(ref, record, mail, now)])
    forwarded_to = _forward(ref.tenant_id, campaign, record, mail)
    _open_inbox_thread(ref, record, mail, now)
    ledger.mark_message_event(
        ref.tenant_id, ref.campaign_id, ref.message_id, "replied_at", now.isoformat()
    )
    metrics.add_metric(name="replies", unit="Count", value=1)
    return ReplyOutcome(ref, counted=counted, exited=exited, forwarded_to=forwarded_to)


def _open_inbox_thread(
    ref: MessageRef, record: MessageRecord, mail: InboundMail, now: datetime
) -> None:
    """An operator inbox thread for the reply (one per message answered, idempotent on
    its key), so it reaches a person even when no mailbox is named to forward it to."""
    subject = f": {mail.subject}" if mail.subject else ""
    inbox_threads.open_thread(
        ref.tenant_id,
        thread_id=f"reply#{ref.campaign_id}#{ref.message_id}",
        contact_id=record.contact_id,
        campaign_id=ref.campaign_id,
        node_id=record.step,
        title=f"Reply from {mail.sender}{subject}"[:200],
        now=now,
    )


def _match(mail: InboundMail) -> MessageRef | None:
    for ses_id in mail.quoted_ses_ids:
        found = find_provider_message(ses_id)
        if found is not None:
            return found
    token = reply_token(mail.recipients, get_settings().reply_domain)
    return find_provider_message(_POINTER_PREFIX + token) if token else None


def _notice(ref: MessageRef, record: MessageRecord, mail: InboundMail, now: datetime) -> Any:
    data = {
        "message_id": ref.message_id,
        "campaign_id": ref.campaign_id,
        "step": record.step,
        "contact_id": record.contact_id,
        "channel": "email",
        "from": mail.sender,
        "subject": mail.subject,
        "occurred_at": now.isoformat(),
    }
    return WebhookNotice(ref.tenant_id, "message.replied", now, data)


def _forward(
    tenant_id: str, campaign: Campaign | None, record: MessageRecord, mail: InboundMail
) -> str | None:
    """Send the reply on to a person; None when there is nobody to send it to."""
    if mail.raw is None or record.sender_id is None:
        return None
    try:
        sender = senders.get_sender(tenant_id, record.sender_id)
    except NotFound:
        return None
    mailbox = _mailbox(campaign, sender.reply_to)
    if mailbox is None or sender.from_email is None:
        return None
    try:
        email_channel.send_raw(
            sender.from_email, mailbox, forward(mail, sender=sender.from_email, to=mailbox)
        )
    except PermanentSendError as error:
        logger.warning("reply not forwarded", extra={"error": str(error)})
        return None
    return mailbox


def _mailbox(campaign: Campaign | None, sender_reply_to: Sequence[str]) -> str | None:
    if campaign is not None and campaign.reply_to:
        return campaign.reply_to.split(",")[0].strip()
    return sender_reply_to[0] if sender_reply_to else None
