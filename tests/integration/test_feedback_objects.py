"""SES events through Firehose: objects of SES records in S3, announced on the feedback
queue by S3's event notification, applied by the real feedback worker in moto.

The bucket's notification targets the feedback queue as infra's does; moto delivers the
notification (and S3's test event) to the queue, the local poller runs app.py's
feedback_worker. Nothing of Herald's is stubbed; faults are injected at the AWS boundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.resources import SesEventsStreamSpec, herald_resources
from chalicelib.settings import get_settings
from chalicelib.store.ledger import MessageRecord
from chalicelib.store.suppression import is_suppressed
from tests.aws_events import ses_record
from tests.conftest import Tenant
from tests.feedback_kit import Shop, dead_letters, tags_of


@pytest.fixture(autouse=True)
def fresh_settings(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000", simulator_delay_seconds="0")


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    """A tenant ready to send on the provisioned stack, whose Firehose bucket announces each
    new object on the feedback queue (S3's test event was read when it was provisioned)."""
    return Shop(tenant)


def events_stream() -> SesEventsStreamSpec:
    """The stream, bucket and prefix Firehose writes SES's events to (the default
    transport's)."""
    stream = herald_resources(get_settings()).configuration_set.stream
    assert stream is not None
    return stream


def sent_campaign(shop: Shop, contacts: int) -> tuple[str, list[MessageRecord]]:
    shop.contacts(f"reader{i}@example.com" for i in range(contacts))
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    return campaign_id, sorted(shop.messages(campaign_id).values(), key=lambda r: r.address)


def delivery(shop: Shop, record: MessageRecord, kind: str = "Delivery") -> dict[str, Any]:
    return ses_record(
        kind, tags=tags_of(shop.tenant.id, record), recipient=record.address, at=clock.now()
    )


def firehose_writes(records: Iterable[dict[str, Any] | str], separator: str = "") -> str:
    """Put an object of records as Firehose writes them (back to back by default)."""
    key = "ses-events/2026/12/06/23/herald-dev-ses-events-1 2026-12-06-23-00-00"
    body = separator.join(r if isinstance(r, str) else json.dumps(r) for r in records)
    client("s3").put_object(Bucket=events_stream().bucket, Key=key, Body=body.encode())
    return key


@pytest.fixture
def get_object_ranges() -> Iterator[list[str | None]]:
    """The Range of every GetObject the worker makes (None: the whole object)."""
    ranges: list[str | None] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range"))

    events = client("s3").meta.events
    events.register("before-parameter-build.s3.GetObject", seen)
    yield ranges
    events.unregister("before-parameter-build.s3.GetObject", seen)


def test_an_objects_events_move_each_message_once_and_count_once(shop: Shop) -> None:
    campaign_id, sent = sent_campaign(shop, 30)
    records = [delivery(shop, r) for r in sent] + [delivery(shop, r, "Open") for r in sent[:10]]

    firehose_writes(records)
    drain()

    stats = shop.stats(campaign_id)
    assert (stats["delivered"], stats["opened"]) == (30, 10)
    statuses = [shop.messages(campaign_id)[r.address].status for r in sent]
    assert statuses == ["opened"] * 10 + ["delivered"] * 20
    firehose_writes(records, separator="\n")  # the same events again, one to a line
    drain()
    assert shop.stats(campaign_id) == stats
    assert dead_letters("feedback") == []


def test_an_object_beyond_the_budget_is_finished_by_continuations(
    shop: Shop, herald_env: Callable[..., None], get_object_ranges: list[str | None]
) -> None:
    herald_env(feedback_events_per_invocation="100")
    campaign_id, sent = sent_campaign(shop, 250)

    firehose_writes((delivery(shop, r) for r in sent), separator="\n")
    drain()

    assert shop.stats(campaign_id)["delivered"] == 250
    assert {r.status for r in shop.messages(campaign_id).values()} == {"delivered"}
    # Three invocations of 100, 100 and 50 events: each continuation reads only the rest.
    assert len(get_object_ranges) == 3 and get_object_ranges[0] is None
    starts = [int(str(r).removeprefix("bytes=").rstrip("-")) for r in get_object_ranges[1:]]
    assert 0 < starts[0] < starts[1]
    assert dead_letters("feedback") == []


def test_a_worker_that_fails_mid_object_loses_at_most_one_chunk_of_counts(shop: Shop) -> None:
    """The second chunk's counter write fails: the object's message fails and comes back.
    The first chunk's counts were written, the second's are the documented gap (its
    events were recorded on their messages, so their redelivery counts nothing), the
    third counts on the retry; every message moved to delivered once."""
    campaign_id, sent = sent_campaign(shop, 250)
    counter_writes: list[str] = []

    def fail_second_counter_write(params: dict[str, Any], **_: Any) -> None:
        if "COUNTERS#" in json.dumps(params.get("Key")):
            counter_writes.append(params["UpdateExpression"])
            if len(counter_writes) == 2:
                raise ConnectionError("the worker died before its counts were written")

    events = client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", fail_second_counter_write)
    try:
        firehose_writes(delivery(shop, r) for r in sent)
        drain()
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", fail_second_counter_write)

    assert shop.stats(campaign_id)["delivered"] == 250 - 100
    assert len(counter_writes) == 3  # chunk 1, chunk 2 (failed), chunk 3 on the retry
    assert {r.status for r in shop.messages(campaign_id).values()} == {"delivered"}
    assert dead_letters("feedback") == []


def test_an_unreadable_record_waits_in_the_dlq_and_the_others_are_applied(shop: Shop) -> None:
    campaign_id, sent = sent_campaign(shop, 2)
    cut_short = '{"eventType":"Delivery","mail":{"messageId":"0100018'

    key = firehose_writes([delivery(shop, sent[0]), cut_short, delivery(shop, sent[1])])
    drain()

    assert shop.stats(campaign_id)["delivered"] == 2
    assert dead_letters("feedback") == [
        {"unreadable_record": cut_short, "object": f"s3://{events_stream().bucket}/{key}"}
    ]


@pytest.fixture
def firehose_transport(herald_env: Callable[..., None]) -> None:
    """The stack provisioned with SES publishing its events to Firehose (set before the
    ``aws`` fixture provisions it)."""
    herald_env(ses_events_transport="firehose")


def test_the_stack_with_firehose_carries_ses_events_from_send_to_stats(
    firehose_transport: None, simulator: FeedbackSimulator, shop: Shop
) -> None:
    """SES (the simulator) puts its events on the stream, Firehose writes the object, the
    bucket notifies the feedback queue, the worker reads the object: the same stats and
    suppressions as through SNS."""
    sim = "simulator.amazonses.com"
    addresses = [f"success@{sim}", f"bounce@{sim}", f"complaint@{sim}", "reader@example.com"]
    shop.contacts(addresses)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    simulator.flush()
    drain()

    written = client("s3").list_objects_v2(
        Bucket=events_stream().bucket, Prefix=events_stream().object_prefix
    )
    assert written["KeyCount"] >= 1  # the events came as objects, not SNS notifications
    stats = shop.stats(campaign_id)
    assert (stats["delivered"], stats["bounced"], stats["complained"]) == (3, 1, 1)
    statuses = {a: r.status for a, r in shop.messages(campaign_id).items()}
    assert statuses == {
        f"success@{sim}": "delivered",
        f"bounce@{sim}": "bounced",
        f"complaint@{sim}": "complained",
        "reader@example.com": "delivered",
    }
    assert is_suppressed(shop.tenant.id, f"bounce@{sim}")
    assert dead_letters("feedback") == []
