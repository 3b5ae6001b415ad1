"""``pipeline.send.policy.admit`` against moto: decide and count atomically, or touch nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain.campaigns import Campaign, FrequencyCap, QuietHours, Step
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason
from chalicelib.domain.flows.policy import CampaignCap, hour_bucket
from chalicelib.domain.flows.timing import Duration
from chalicelib.domain.tenants import new_tenant_id
from chalicelib.pipeline.send.policy import (
    MAX_RACES,
    Allow,
    CapContention,
    Defer,
    Skip,
    admit,
    admit_as_read,
    read_caps,
    release,
)
from chalicelib.store import enrolments

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)  # 11:00 in Berlin
ADA = Contact(id="c_1", email="ada@example.com", created_at=NOW, updated_at=NOW)

pytestmark = pytest.mark.usefixtures("aws")

Hook = Callable[..., None]


def campaign(campaign_id: str = "cmp_a", **fields: Any) -> Campaign:
    return Campaign(
        id=campaign_id,
        number=1,
        name="News",
        channel="email",
        steps=[Step(channel="email")],
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


@pytest.fixture
def dynamodb_hook() -> Iterator[Callable[[str, Hook], None]]:
    """Install a botocore handler on Herald's DynamoDB client for the test's duration."""
    installed: list[tuple[str, Hook]] = []
    events = client("dynamodb").meta.events

    def install(event: str, handler: Hook) -> None:
        events.register(event, handler)
        installed.append((event, handler))

    yield install
    for event, handler in installed:
        events.unregister(event, handler)


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's in-process DynamoDB atomic per request, as DynamoDB is.

    moto checks an UpdateItem's condition and then applies its changes to the item in
    place, with no lock: two threads can both pass ``attribute_not_exists`` and a reader
    can see the new version before the new counts. DynamoDB serialises writes to an item,
    so a race test needs the same from its fake or it measures moto, not Herald.
    """
    from moto.dynamodb.models import DynamoDBBackend

    one_request_at_a_time = threading.RLock()
    for name in ("get_item", "put_item", "update_item", "delete_item"):
        unlocked = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _unlocked: Any = unlocked, **kwargs: Any) -> Any:
            with one_request_at_a_time:
                return _unlocked(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def dynamodb_calls(dynamodb_hook: Callable[[str, Hook], None]) -> list[str]:
    """The DynamoDB operations Herald calls from here on, by name."""
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    dynamodb_hook("before-call.dynamodb", count)
    return calls


def test_an_allowed_message_is_counted_against_both_caps() -> None:
    tenant = new_tenant_id()
    capped = campaign(
        frequency_cap=FrequencyCap(max_messages=2),
        campaign_frequency_cap=CampaignCap(max_messages=1, per_hours=24),
    )

    assert admit(tenant, capped, ADA, NOW, due_at=NOW) == Allow(hour_bucket(NOW))
    assert admit(tenant, capped, ADA, NOW, due_at=NOW) == Skip(SkipReason.CAMPAIGN_FREQUENCY_CAP)
    other = campaign("cmp_b", frequency_cap=FrequencyCap(max_messages=2))
    assert admit(tenant, other, ADA, NOW, due_at=NOW) == Allow(hour_bucket(NOW))
    assert admit(tenant, other, ADA, NOW, due_at=NOW) == Skip(SkipReason.FREQUENCY_CAP)

    counts = enrolments.cap_counts(tenant, ADA.id, "cmp_a")
    assert counts.tenant == {hour_bucket(NOW): 2}
    assert counts.campaign == {hour_bucket(NOW): 1}


def test_a_cap_looks_back_over_hourly_buckets() -> None:
    tenant = new_tenant_id()
    capped = campaign(frequency_cap=FrequencyCap(max_messages=1))
    assert isinstance(admit(tenant, capped, ADA, NOW, due_at=NOW), Allow)

    # 24 hourly buckets: the 10:xx bucket leaves the window at 10:00 the next day.
    almost = datetime(2026, 12, 8, 9, 59, 59, tzinfo=UTC)
    assert admit(tenant, capped, ADA, almost, due_at=almost) == Skip(SkipReason.FREQUENCY_CAP)
    next_day = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert admit(tenant, capped, ADA, next_day, due_at=next_day) == Allow(hour_bucket(next_day))


def test_a_campaign_without_caps_never_reads_or_writes_counters(
    dynamodb_calls: list[str],
) -> None:
    tenant = new_tenant_id()
    uncapped = campaign(quiet_hours=QuietHours(start="21:00", end="08:00"))

    decisions = [admit(tenant, uncapped, ADA, NOW, due_at=NOW) for _ in range(3)]
    assert read_caps(tenant, uncapped, [ADA.id, "c_2"]) == {}

    assert decisions == [Allow(hour_bucket(NOW))] * 3
    assert dynamodb_calls == []
    assert enrolments.cap_counts(tenant, ADA.id, "cmp_a").version == 0


def test_a_deferred_or_late_message_reads_no_counters(dynamodb_calls: list[str]) -> None:
    tenant = new_tenant_id()
    night = campaign(
        quiet_hours=QuietHours(start="21:00", end="08:00"),
        max_lateness=Duration(amount=2, unit="hours"),
        frequency_cap=FrequencyCap(max_messages=1),
    )
    in_tokyo = ADA.model_copy(update={"timezone": "Asia/Tokyo"})
    late_evening = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)  # 21:30 in Tokyo

    assert admit(tenant, night, in_tokyo, late_evening, due_at=late_evening) == Skip(
        SkipReason.MAX_LATENESS
    )  # the window opens at 08:00 Tokyo, 10.5 h later: past max_lateness
    patient = night.model_copy(update={"max_lateness": None})
    assert admit(tenant, patient, in_tokyo, late_evening, due_at=late_evening) == Defer(
        datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    )
    # Without a timezone of its own the contact is read in the campaign's.
    berlin = patient.model_copy(update={"timezone": "Europe/Berlin"})
    assert isinstance(admit(tenant, berlin, ADA, late_evening, due_at=late_evening), Allow)
    assert dynamodb_calls == ["GetItem", "UpdateItem"]  # only the Allow touched counters


def test_two_senders_racing_for_the_last_slot_send_once(
    dynamodb_hook: Callable[[str, Hook], None],
) -> None:
    """The second sender reads, decides and counts between the first one's read and its
    write: the first one's conditional write fails, it reads again and is capped."""
    tenant = new_tenant_id()
    broadcast = campaign("cmp_a", frequency_cap=FrequencyCap(max_messages=1))
    flow = campaign("cmp_b", type="workflow", frequency_cap=FrequencyCap(max_messages=1))
    answers: dict[str, object] = {}

    def the_other_sender_goes_first(**_: Any) -> None:
        if "flow" not in answers:
            answers["flow"] = "racing"
            answers["flow"] = admit(tenant, flow, ADA, NOW, due_at=NOW)

    dynamodb_hook("before-call.dynamodb.UpdateItem", the_other_sender_goes_first)
    answers["broadcast"] = admit(tenant, broadcast, ADA, NOW, due_at=NOW)

    assert answers == {
        "flow": Allow(hour_bucket(NOW)),
        "broadcast": Skip(SkipReason.FREQUENCY_CAP),
    }
    assert enrolments.cap_counts(tenant, ADA.id, "cmp_a").tenant == {hour_bucket(NOW): 1}


def test_threads_racing_for_the_last_slots_take_exactly_that_many(
    dynamodb_hook: Callable[[str, Hook], None], atomic_dynamodb: None
) -> None:
    tenant = new_tenant_id()
    senders = 6
    capped = [
        campaign(f"cmp_{n}", frequency_cap=FrequencyCap(max_messages=2)) for n in range(senders)
    ]
    all_read = threading.Barrier(senders, timeout=10)
    first_reads: set[int] = set()

    def after_everyone_read(**_: Any) -> None:
        """Hold each sender's first write until every sender has read the same counts."""
        me = threading.get_ident()
        if me not in first_reads:
            first_reads.add(me)
            all_read.wait()

    dynamodb_hook("before-call.dynamodb.UpdateItem", after_everyone_read)
    answers: list[object] = []
    threads = [
        threading.Thread(target=lambda c=c: answers.append(admit(tenant, c, ADA, NOW, due_at=NOW)))
        for c in capped
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(map(str, answers)) == sorted(
        [str(Allow(hour_bucket(NOW)))] * 2 + [str(Skip(SkipReason.FREQUENCY_CAP))] * 4
    )
    assert enrolments.cap_counts(tenant, ADA.id, "cmp_0").tenant == {hour_bucket(NOW): 2}


def test_counts_read_for_a_batch_are_checked_like_fresh_ones() -> None:
    tenant = new_tenant_id()
    capped = campaign(frequency_cap=FrequencyCap(max_messages=1))
    bob = ADA.model_copy(update={"id": "c_2"})
    reads = read_caps(tenant, capped, [ADA.id, bob.id])
    # Between the batch's read and Ada's turn another campaign sends her a message.
    assert isinstance(
        admit(
            tenant,
            campaign("cmp_b", frequency_cap=FrequencyCap(max_messages=1)),
            ADA,
            NOW,
            due_at=NOW,
        ),
        Allow,
    )

    assert admit_as_read(tenant, capped, ADA, NOW, due_at=NOW, read=reads[ADA.id]) == Skip(
        SkipReason.FREQUENCY_CAP
    )
    assert admit_as_read(tenant, capped, bob, NOW, due_at=NOW, read=reads[bob.id]) == Allow(
        hour_bucket(NOW)
    )


def test_a_released_slot_can_be_taken_again() -> None:
    tenant = new_tenant_id()
    capped = campaign(campaign_frequency_cap=CampaignCap(max_messages=1, per_hours=2))
    allowed = admit(tenant, capped, ADA, NOW, due_at=NOW)
    assert isinstance(allowed, Allow)

    release(tenant, capped, ADA.id, allowed)

    assert admit(tenant, capped, ADA, NOW, due_at=NOW) == allowed
    assert admit(tenant, capped, ADA, NOW, due_at=NOW) == Skip(SkipReason.CAMPAIGN_FREQUENCY_CAP)


def test_a_sender_that_keeps_losing_the_race_gives_up(
    dynamodb_hook: Callable[[str, Hook], None],
) -> None:
    tenant = new_tenant_id()
    capped = campaign(frequency_cap=FrequencyCap(max_messages=100))
    racing: list[bool] = []

    def someone_else_counts_first(**_: Any) -> None:
        if racing:
            return  # the other sender's own write
        racing.append(True)
        other = enrolments.cap_counts(tenant, ADA.id, "other")
        enrolments.count_send(
            tenant, ADA.id, "other", read_as=other, bucket=hour_bucket(NOW), now=NOW
        )
        racing.clear()

    dynamodb_hook("before-call.dynamodb.UpdateItem", someone_else_counts_first)
    with pytest.raises(CapContention):
        admit(tenant, capped, ADA, NOW, due_at=NOW)

    counts = enrolments.cap_counts(tenant, ADA.id, "cmp_a")
    assert (counts.tenant, counts.campaign) == ({hour_bucket(NOW): MAX_RACES}, {})
