"""The send worker keeps one pool of ``send_concurrency`` threads for all its batches."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.local.poller import drain
from chalicelib.pipeline.send.compose import forget_cached_content
from tests.conftest import Tenant
from tests.integration.test_send_pipeline import Shop


@pytest.fixture
def senders(aws: None) -> Iterator[list[threading.Thread]]:
    """The thread of every SendEmail call, in order (a botocore hook on the SES client)."""
    calls: list[threading.Thread] = []

    def record(**_: Any) -> None:
        calls.append(threading.current_thread())

    events = client("sesv2").meta.events
    events.register("before-call.sesv2.SendEmail", record)
    forget_cached_content()
    yield calls
    events.unregister("before-call.sesv2.SendEmail", record)
    forget_cached_content()


def test_every_batch_sends_from_the_same_threads_until_the_concurrency_changes(
    tenant: Tenant, herald_env: Callable[..., None], senders: list[threading.Thread]
) -> None:
    herald_env(ses_max_send_rate="1000000", send_concurrency="3", send_batch_size="10")
    shop = Shop(tenant)
    shop.contacts(40)

    for _ in range(2):  # 2 campaigns of 4 batches of 10
        shop.send(shop.campaign())
        drain()
    assert len(senders) == 80
    assert all(thread.name.startswith("send") for thread in senders)
    assert len(set(senders)) <= 3  # a pool per batch would have started up to 3 a batch

    herald_env(send_concurrency="1")
    earlier = set(senders)
    senders.clear()
    shop.send(shop.campaign())
    drain()
    assert len(senders) == 40
    (only,) = set(senders)
    assert only not in earlier


def test_a_round_of_send_concurrency_sends_is_recorded_together_on_fewer_threads(
    tenant: Tenant, herald_env: Callable[..., None], senders: list[threading.Thread]
) -> None:
    """``send_threads`` (the benchmark's one thread) carries a round of ``send_concurrency``
    sends: the round is still ``send_concurrency`` messages, written with one
    BatchWriteItem."""
    herald_env(
        ses_max_send_rate="1000000", send_concurrency="4", send_threads="1", send_batch_size="10"
    )
    rounds: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        for requests in params["RequestItems"].values():
            keys = [r["PutRequest"]["Item"]["pk"]["S"] for r in requests if "PutRequest" in r]
            if any("#LEDGER#" in key for key in keys):
                rounds.append(len(keys))

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb.BatchWriteItem", record)
    try:
        shop = Shop(tenant)
        shop.contacts(40)
        shop.send(shop.campaign())
        drain()
    finally:
        events.unregister("provide-client-params.dynamodb.BatchWriteItem", record)
    assert len(senders) == 40
    assert len(set(senders)) == 1
    assert sorted(rounds) == [2] * 4 + [4] * 8  # 4 batches of 10: rounds of 4, 4 and 2
