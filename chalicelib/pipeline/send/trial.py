"""Test sends: the campaign's first template to a few given addresses (on push, Telegram
and on-site: contacts by id), through the same channel code, with no ledger, no counters
and no campaign tags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.channels.base import (
    PermanentSendError,
)
from chalicelib.channels.registry import channel_for
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.delivery import (
    SkipReason,
)
from chalicelib.domain.feedback import TAG_TENANT
from chalicelib.domain.model import Model
from chalicelib.pipeline.send.compose import RENDER_ERROR_PREFIX, Content, compose, load_content
from chalicelib.pipeline.send.pacing import Pacer, QuotaSpent, send_with_retries, worker_rate
from chalicelib.store.contacts import find_by_email, find_by_phone, get_contacts
from chalicelib.store.suppression import suppressed_among

TEST_SEND_SECONDS = 25  # a test send answers within an API request's time


class TestSendResult(Model):
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
    channel = channel_for(campaign.channel)
    if campaign.channel in ("email", "sms"):
        contact = (
            find_by_email(tenant_id, address)
            if "@" in address
            else find_by_phone(tenant_id, address)
        )
        destination: str | None = address
    else:  # the address is a contact id: its device, chat or inbox is the destination
        contact = get_contacts(tenant_id, [address]).get(address)
        destination = channel.address_of(contact) if contact is not None else None
    if destination is None:
        missing = SkipReason.NOT_FOUND if contact is None else SkipReason.NO_ADDRESS
        return TestSendResult(address=address, status="skipped", reason=missing.value)
    template, sender = content.templates[0], content.senders[0]
    tags = {TAG_TENANT: tenant_id}

    def time_left() -> float:
        return (deadline - clock.now()).total_seconds()

    try:
        message = compose(
            tenant_id, campaign, contact, destination, template=template, sender=sender, tags=tags
        )
    except Exception as error:  # any render failure is reported, not raised
        reason = f"{RENDER_ERROR_PREFIX}: {error}"
        return TestSendResult(address=address, status="skipped", reason=reason)
    try:
        result = send_with_retries(channel, message, pacer, time_left)
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
