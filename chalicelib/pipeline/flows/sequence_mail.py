"""What a sequence's email send adds to a flow's send node (seed 001, docs/api-seed-001.md).

The flow worker sends every flow's messages the same way (``sending``); for a campaign of
type ``sequence`` on email it calls the two hooks here:

- ``threaded``: before the send, a later step joins the thread of the contact's earlier
  steps (``In-Reply-To``/``References`` of their Message-IDs as SES rewrote them,
  ``Re: <first subject>`` for a step without its own) and, with a reply domain, carries
  a ``reply+<token>@`` Reply-To, so a reply is matched even without threading headers;
- ``sent``: after the send, the pointers a reply is matched by (``remember_for_replies``).

The earlier messages are read from the ledger (one Query per earlier step), so a retried
step composes the same headers.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.channels.base import OutboundMessage
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.mail_threads import reply_in_thread
from chalicelib.domain.replies import reply_address, reply_token_for
from chalicelib.domain.sequences import SEQUENCE_TYPE, steps_of
from chalicelib.pipeline.replies import remember_for_replies
from chalicelib.settings import get_settings
from chalicelib.store.ledger import MessageRecord, step_messages_of

EMAIL = "email"


def applies(campaign: Campaign, channel: str) -> bool:
    """Whether a send of ``campaign`` on ``channel`` is a sequence's email."""
    return campaign.type == SEQUENCE_TYPE and channel == EMAIL


def threaded(
    tenant_id: str, campaign: Campaign, record: MessageRecord, message: OutboundMessage
) -> OutboundMessage:
    """``message`` (step ``record.step`` to ``record.contact_id``) as its place in the
    contact's thread makes it: threading headers, subject, reply-to-token address."""
    settings = get_settings()
    steps = [s for s in steps_of(campaign) if s.is_active]
    first_subject = next((s.subject for s in steps if s.subject.strip()), message.subject)
    earlier = _earlier_ses_ids(tenant_id, campaign, record, [s.id for s in steps])
    thread = reply_in_thread(
        earlier, message.subject, first_subject, settings.region, settings.ses_message_id_domain
    )
    reply_to = message.reply_to
    if settings.reply_domain:
        token = reply_token_for(tenant_id, campaign.id, record.message_id)
        reply_to = reply_address(token, settings.reply_domain)
    return replace(
        message,
        subject=thread.subject,
        headers={**message.headers, **thread.headers},
        reply_to=reply_to,
    )


def sent(tenant_id: str, record: MessageRecord, now: datetime) -> None:
    """Leave the pointers a reply to the message just sent is matched by."""
    remember_for_replies(tenant_id, [record], now)


def _earlier_ses_ids(
    tenant_id: str, campaign: Campaign, record: MessageRecord, step_ids: list[str]
) -> list[str]:
    """The SES ids of the contact's messages of the steps before ``record.step``, oldest
    first: each earlier step's latest sent message of this enrolment's walk (a visit
    before this one)."""
    if record.step not in step_ids:
        return []
    visit = int(record.occurrence or 0)
    found: list[str] = []
    for step_id in step_ids[: step_ids.index(record.step)]:
        sent_before = [
            r
            for r in step_messages_of(
                tenant_id, campaign.id, step_id, record.contact_id, record.channel
            )
            if r.provider_message_id and r.sent_at and int(r.occurrence or 0) < visit
        ]
        if sent_before:
            latest = max(sent_before, key=lambda r: int(r.occurrence or 0))
            found.append(str(latest.provider_message_id))
    return found
