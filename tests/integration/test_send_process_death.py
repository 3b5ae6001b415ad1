"""Real process death and two holders of one batch: the duplicate window, measured.

The promise (docs/engine.md): a crash can repeat only the sends in flight at that
moment, at most one worker's ``send_concurrency``; nobody is lost; the campaign ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

import app as herald
from chalicelib.aws import client, reset_clients
from chalicelib.domain import clock
from chalicelib.domain.feedback import DeliveryEvent
from chalicelib.local.moto_server import MotoServer
from chalicelib.local.poller import drain
from chalicelib.local.provision import provision
from chalicelib.pipeline.feedback import apply_event, feedback_batch
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.send.batch import send_batch
from chalicelib.pipeline.send.compose import forget_cached_content
from chalicelib.settings import get_settings
from chalicelib.store import tenants
from chalicelib.store.counters import read_counts
from chalicelib.store.ledger import list_messages
from tests.conftest import ROOT, make_tenant
from tests.send_kit import START, Shop, assert_books_balance, recipients_of, sent_mail

CONCURRENCY = 8


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server in its own process, so that its state outlives a killed worker."""
    server = MotoServer()
    server.start()
    endpoint = server.ready()
    monkeypatch.setenv("HERALD_AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "1000000")
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", str(CONCURRENCY))
    get_settings.cache_clear()
    reset_clients()
    forget_cached_content()
    try:
        provision()
        yield endpoint
    finally:
        server.stop()
        get_settings.cache_clear()
        reset_clients()
        forget_cached_content()


def receive_one(role: Any) -> dict[str, Any]:
    received = client("sqs").receive_message(QueueUrl=queue_url(role), MaxNumberOfMessages=1)
    (message,) = received["Messages"]
    return dict(message)


def test_a_worker_killed_with_all_threads_mid_send_loses_nobody(served: str) -> None:
    with (
        Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as api,
        clock.frozen(START) as frozen,
    ):
        shop = Shop(make_tenant(api, tenants.create_admin_key("tests")))
        shop.contacts(100)
        campaign_id = shop.campaign()
        shop.send(campaign_id)
        drain(["control"])
        message = receive_one("send")

        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.send_child", START.isoformat(), json.dumps(message)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        accepted = 0
        for line in worker.stdout:
            accepted += line.strip() == "accepted"
            if accepted == 30:
                os.kill(worker.pid, signal.SIGKILL)  # every thread is in a send or about to be
                break
        worker.wait()
        assert worker.returncode == -signal.SIGKILL

        # SQS hands the message out again after its visibility timeout; the lease is over.
        frozen.advance(timedelta(minutes=13))
        send_batch(json.loads(message["Body"]))
        drain()

        sent, _ = list_messages(shop.tenant.id, campaign_id, ["main"], status="sent", limit=200)
        assert len({m.contact_id for m in sent}) == 100  # nobody lost
        # Every message SES accepted, from both processes. moto counts a raw message's
        # recipient twice (the Destination given and the To header it parses).
        counted = int(client("ses").get_send_quota()["SentLast24Hours"])
        assert counted % 2 == 0
        duplicates = counted // 2 - 100
        assert 0 <= duplicates <= CONCURRENCY  # only the sends in flight at the kill
        detail = assert_books_balance(shop, campaign_id)
        assert (detail["status"], detail["sent"]) == ("sent", 100)


@contextmanager
def first_holder_stalled(
    shop: Shop,
    frozen: clock.FrozenClock,
    ses_hooks: Any,
    monkeypatch: pytest.MonkeyPatch,
    contacts: int,
    when: str,
) -> Iterator[str]:
    """A one-batch campaign to ``contacts`` whose first holder stalls at its fifth SES
    call (``when``: before-call or after-call) past its lease (SQS made the message
    visible again meanwhile), and a second delivery that takes the batch over and
    finishes it. Inside the block (the campaign's id) the first holder is still stalled;
    on leaving it wakes up and must finish."""
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "1000000")
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "2")
    get_settings.cache_clear()
    forget_cached_content()
    shop.contacts(contacts)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain(["control"])
    body = json.loads(receive_one("send")["Body"])
    stalled, wake = threading.Event(), threading.Event()

    def stall_the_fifth(n: int) -> None:
        if n == 5:
            stalled.set()
            wake.wait(300)

    ses_hooks(when, stall_the_fifth)
    first = threading.Thread(target=send_batch, args=(body,))
    first.start()
    assert stalled.wait(300)
    frozen.advance(timedelta(minutes=3))  # the first holder's lease is over
    send_batch(body)  # the second holder
    assert shop.detail(campaign_id)["status"] == "sent"
    try:
        yield campaign_id
    finally:
        wake.set()
        first.join(300)
    assert not first.is_alive()


def test_two_holders_of_one_batch_duplicate_only_what_the_first_had_in_flight(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first holder stalls mid-send past its lease (SQS made the message visible
    again meanwhile); a second delivery takes the batch over and finishes it; then the
    first wakes up."""
    with first_holder_stalled(
        shop, frozen, ses_hooks, monkeypatch, 40, "before-call"
    ) as campaign_id:
        pass  # the second holder finished the batch; the first wakes up on leaving
    drain()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 40  # nobody lost
    assert sum(delivered.values()) - 40 <= 2  # at most the first holder's sends in flight
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 40)


def test_a_late_holders_records_never_overwrite_records_feedback_moved_on(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round's records are group-committed without a condition only inside the lease.
    The first holder stalls mid-round past its lease; the second sends everyone and the
    feedback worker records every delivery; the first then wakes with a round's sends to
    record: each is put conditionally, finds the record, and stays a duplicate, not a
    ``sent`` record over a ``delivered`` one."""
    # SES took the fifth message of the first holder, then the stall.
    with first_holder_stalled(
        shop, frozen, ses_hooks, monkeypatch, 10, "after-call"
    ) as campaign_id:
        recorded, _ = list_messages(shop.tenant.id, campaign_id, ["main"], limit=50)
        with feedback_batch() as effects:
            for record in recorded:
                delivered = DeliveryEvent(
                    kind="delivered",
                    channel="email",
                    provider="ses",
                    provider_event="Delivery",
                    occurred_at=clock.now(),
                    recipients=(record.address,),
                    tenant_id=shop.tenant.id,
                    campaign_id=campaign_id,
                    message_id=record.message_id,
                )
                apply_event(delivered, effects)

    after, _ = list_messages(shop.tenant.id, campaign_id, ["main"], limit=50)
    assert len(after) == 10
    assert {m.status for m in after} == {"delivered"}  # nothing written over them
    assert all(m.model_extra and m.model_extra.get("delivered_at") for m in after)
    assert len(recipients_of(sent_mail())) == 10
    assert read_counts(shop.tenant.id, campaign_id)["delivered"] == 10
