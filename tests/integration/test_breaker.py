"""The deliverability breaker on the real pipeline: a broadcast to SES simulator addresses
whose complaints cross the threshold pauses itself with the reason, sends nothing more
while paused, and a resume re-arms it (new windows: only later outcomes count)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from chalicelib.domain.deliverability import PAUSE_COMPLAINT_RATE
from chalicelib.local.poller import drain, poll_once
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.store.campaigns import get_campaign
from tests.conftest import Tenant
from tests.feedback_kit import Shop
from tests.send_kit import release_delayed_messages, sent_mail

SIM = "simulator.amazonses.com"


@pytest.fixture(autouse=True)
def small_batches(herald_env: Callable[..., None]) -> None:
    herald_env(
        ses_max_send_rate="1000000",
        simulator_delay_seconds="0",
        send_batch_size="50",
        breaker_min_volume="50",
    )


def feedback(simulator: FeedbackSimulator) -> None:
    simulator.flush()
    drain(["feedback"])


def test_complaints_over_the_threshold_pause_a_broadcast_until_resumed(
    tenant: Tenant, simulator: FeedbackSimulator
) -> None:
    shop = Shop(tenant)
    # a third complain (the 1-hour limit is 1 %): every batch of 50 holds some, whatever
    # order the contacts are read in (by id, random)
    shop.contacts(
        f"complaint+{n}@{SIM}" if n % 3 == 0 else f"success+{n}@{SIM}" for n in range(200)
    )
    campaign_id = shop.campaign()
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/send")
    drain(["control"])  # planned: 4 batches of 50
    assert poll_once("send") == 1
    feedback(simulator)

    paused = get_campaign(tenant.id, campaign_id)
    assert paused.status == "paused"
    assert paused.pause_reason == PAUSE_COMPLAINT_RATE
    assert paused.error_message is not None
    # Which 50 outcomes come first depends on the send order.
    assert re.fullmatch(
        r"complaint rate \d+(\.\d)?% over the last 1 h is above the limit of 1% "
        r"\(50 messages with an outcome\)",
        paused.error_message,
    ), paused.error_message

    # Paused: the other batches park, nothing more goes out.
    drain(["send"])
    release_delayed_messages()
    drain(["send"])
    assert len(sent_mail()) == 50
    assert shop.ok("GET", f"/v1/campaigns/{campaign_id}")["error_message"] == paused.error_message

    # Resumed: the reason is cleared and the windows start again, so the next trip
    # counts only what came after the resume.
    resumed = shop.ok("POST", f"/v1/campaigns/{campaign_id}/resume")
    assert resumed["status"] == "sending" and resumed["error_message"] is None
    release_delayed_messages()
    assert poll_once("send") == 1
    feedback(simulator)
    again = get_campaign(tenant.id, campaign_id)
    assert again.status == "paused" and again.pause_reason == PAUSE_COMPLAINT_RATE
    assert again.error_message is not None
    assert "(50 messages with an outcome)" in again.error_message  # not 100
