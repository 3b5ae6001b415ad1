"""The watchdog: a campaign made stuck on purpose ends ``sent`` (re-driven) or ``failed``
with a reason that says what was stuck, never ``sending`` for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain, poll_once
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.tick import run_tick
from chalicelib.settings import get_settings
from tests.send_kit import Shop, assert_books_balance, drain_all, recipients_of, sent_mail

pytestmark = pytest.mark.usefixtures("fast_sends")


def lose_queued_sends() -> None:
    """The send queue's messages vanish (as if dead-lettered and never redriven)."""
    client("sqs").purge_queue(QueueUrl=queue_url("send"))


def tick_after(frozen: clock.FrozenClock, minutes: int) -> None:
    run_tick(herald.TICK_JOBS, frozen.advance(timedelta(minutes=minutes)))


def test_a_campaign_whose_batches_were_lost_is_redriven_to_sent(
    shop: Shop, frozen: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")  # three batches, as 250 in 100s
    get_settings.cache_clear()
    shop.contacts(25)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain(["control"])
    lose_queued_sends()
    assert shop.detail(campaign_id)["status"] == "sending"

    tick_after(frozen, 1)  # seen; not yet stuck
    assert drain() == 0
    tick_after(frozen, 10)  # no progress for 10 minutes, no live lease: re-driven
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 25 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 25)
    tick_after(frozen, 1)  # a final campaign is no longer watched
    assert drain() == 0


def test_a_campaign_that_stays_stuck_fails_with_what_was_stuck(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any
) -> None:
    shop.contacts(30)
    campaign_id = shop.campaign()

    def broken(_: int) -> None:
        raise RuntimeError("the worker dies here every time")

    ses_hooks("before-call", broken)
    shop.send(campaign_id)
    drain_all()
    tick_after(frozen, 1)
    for _ in range(4):  # three re-drives, then the verdict
        tick_after(frozen, 11)
        drain_all()

    detail = shop.detail(campaign_id)
    assert detail["status"] == "failed"
    assert detail["error_message"].startswith("stuck in sending: 1 batches were not going on")
    assert "000000-000" in detail["error_message"]
    assert sent_mail() == []


def test_a_planner_that_stopped_between_pages_is_redriven(
    shop: Shop, frozen: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.contacts(1200)  # three planner pages
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    # Page 0 runs, then its message for page 1 is lost.
    poll_once("control")
    client("sqs").purge_queue(QueueUrl=queue_url("control"))
    assert shop.detail(campaign_id)["status"] == "calculating"

    tick_after(frozen, 1)
    tick_after(frozen, 10)
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 1200 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["total_recipients"]) == ("sent", 1200)
