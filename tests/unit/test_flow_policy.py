"""The send policy (quiet hours defer, max lateness skips, two frequency caps) and the timers."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.campaigns import FrequencyCap, QuietHours
from chalicelib.domain.delivery import SkipReason
from chalicelib.domain.flows.policy import (
    MAX_CAP_HOURS,
    Allow,
    CampaignCap,
    Defer,
    SendPolicy,
    Skip,
    decide_send,
    hour_bucket,
    sent_in_window,
    stale_buckets,
    window_buckets,
)
from chalicelib.domain.flows.timers import (
    DUE_SHARDS,
    SQS_MAX_DELAY,
    FileDue,
    QueueDelayed,
    RunNow,
    due_entry_of,
    due_key,
    due_shard,
    enrolment_key,
    minute_bucket,
    minutes_to_sweep,
    route,
    step_key,
    sweep_delay,
)

UTC_ZONE = zoneinfo.ZoneInfo("UTC")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(start="21:00", end="08:00")
LATE_EVENING = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)  # 23:30 in Berlin


def decide(policy: SendPolicy, now: datetime, **kwargs: object) -> object:
    arguments: dict[str, object] = {
        "now": now,
        "due_at": now,
        "zone": BERLIN,
        "tenant_counts": {},
        "campaign_counts": {},
    }
    arguments.update(kwargs)
    return decide_send(policy, **arguments)  # type: ignore[arg-type]


# -- quiet hours and lateness ---------------------------------------------------------
def test_outside_quiet_hours_a_message_goes_now_and_counts_in_this_hour() -> None:
    noon = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)

    assert decide(SendPolicy(quiet_hours=NIGHT), noon) == Allow("2026120711")


def test_quiet_hours_defer_to_the_end_of_the_window_in_the_contacts_zone() -> None:
    decision = decide(SendPolicy(quiet_hours=NIGHT), LATE_EVENING)

    assert decision == Defer(datetime(2026, 12, 8, 7, 0, tzinfo=UTC), "quiet_hours")  # 08:00 CET


def test_quiet_hours_never_drop_without_a_max_lateness() -> None:
    long_ago = LATE_EVENING - timedelta(days=30)

    decision = decide(SendPolicy(quiet_hours=NIGHT), LATE_EVENING, due_at=long_ago)

    assert isinstance(decision, Defer)


def test_a_deferral_past_max_lateness_is_a_skip_with_its_reason() -> None:
    policy = SendPolicy(quiet_hours=NIGHT, max_lateness=timedelta(hours=2))

    assert decide(policy, LATE_EVENING) == Skip(SkipReason.MAX_LATENESS)


def test_a_deferral_within_max_lateness_is_kept() -> None:
    policy = SendPolicy(quiet_hours=NIGHT, max_lateness=timedelta(hours=12))

    assert isinstance(decide(policy, LATE_EVENING), Defer)


def test_a_step_already_later_than_max_lateness_is_skipped_outside_quiet_hours_too() -> None:
    policy = SendPolicy(max_lateness=timedelta(minutes=30))
    noon = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)

    assert decide(policy, noon, due_at=noon - timedelta(minutes=31)) == Skip(
        SkipReason.MAX_LATENESS
    )
    assert isinstance(decide(policy, noon, due_at=noon - timedelta(minutes=30)), Allow)


# -- frequency caps -------------------------------------------------------------------
NOON = datetime(2026, 12, 7, 12, 15, tzinfo=UTC)
TWO_A_DAY = FrequencyCap(max_messages=2)
ONE_A_WEEK = CampaignCap(max_messages=1, per_hours=24 * 7)


def test_hour_buckets_sort_as_time_does_and_a_window_is_its_last_hours() -> None:
    assert hour_bucket(NOON) == "2026120712"
    assert hour_bucket(datetime(2026, 12, 7, 13, 15, tzinfo=BERLIN)) == "2026120712"
    assert window_buckets(NOON, 3) == ("2026120712", "2026120711", "2026120710")


def test_the_tenant_cap_counts_every_campaigns_messages_in_its_window() -> None:
    counts = {"2026120712": 1, "2026120613": 1, "2026120612": 5}  # the last is 24 h ago

    assert sent_in_window(counts, NOON, 24) == 2
    assert decide(SendPolicy(tenant_cap=TWO_A_DAY), NOON, tenant_counts=counts) == Skip(
        SkipReason.FREQUENCY_CAP
    )


def test_a_message_must_pass_both_the_tenant_and_the_campaign_cap() -> None:
    policy = SendPolicy(tenant_cap=TWO_A_DAY, campaign_cap=ONE_A_WEEK)
    three_days_ago = hour_bucket(NOON - timedelta(days=3))

    capped = decide(policy, NOON, campaign_counts={three_days_ago: 1})
    free = decide(policy, NOON, tenant_counts={"2026120712": 1})

    assert capped == Skip(SkipReason.CAMPAIGN_FREQUENCY_CAP)
    assert free == Allow("2026120712")


def test_quiet_hours_come_before_caps_so_a_deferred_message_is_capped_when_it_goes() -> None:
    policy = SendPolicy(quiet_hours=NIGHT, tenant_cap=TWO_A_DAY)

    decision = decide(policy, LATE_EVENING, tenant_counts={hour_bucket(LATE_EVENING): 5})

    assert isinstance(decision, Defer)


@given(
    st.dictionaries(
        st.integers(0, 24 * 40).map(lambda back: hour_bucket(NOON - timedelta(hours=back))),
        st.integers(0, 5),
    ),
    st.integers(1, 24 * 31),
)
def test_the_window_sum_counts_exactly_the_buckets_of_the_last_hours(
    counts: dict[str, int], hours: int
) -> None:
    oldest = hour_bucket(NOON - timedelta(hours=hours - 1))

    assert sent_in_window(counts, NOON, hours) == sum(n for b, n in counts.items() if b >= oldest)


def test_buckets_no_cap_can_read_any_more_are_pruned() -> None:
    old = hour_bucket(NOON - timedelta(hours=MAX_CAP_HOURS))
    kept = hour_bucket(NOON - timedelta(hours=MAX_CAP_HOURS - 1))

    assert stale_buckets({old: 1, kept: 1}, NOON) == [old]


def test_a_campaign_cap_looks_back_at_most_31_days() -> None:
    with pytest.raises(ValueError):
        CampaignCap(max_messages=1, per_hours=MAX_CAP_HOURS + 1)


# -- timers ---------------------------------------------------------------------------
T0 = datetime(2026, 12, 7, 10, 0, 20, tzinfo=UTC)


def test_a_wake_time_already_past_runs_now() -> None:
    assert route(T0, T0 - timedelta(seconds=5), "cmp#c") == RunNow()
    assert route(T0, T0, "cmp#c") == RunNow()


def test_a_wake_time_within_15_minutes_is_an_sqs_delay() -> None:
    assert route(T0, T0 + timedelta(seconds=1.2), "cmp#c") == QueueDelayed(2)
    assert route(T0, T0 + timedelta(seconds=SQS_MAX_DELAY), "cmp#c") == QueueDelayed(900)


def test_a_later_wake_time_is_filed_under_its_minute_and_shard() -> None:
    wake = T0 + timedelta(days=2, seconds=17)

    assert route(T0, wake, "cmp#c") == FileDue("202612091000", due_shard("cmp#c"))


@given(st.text(min_size=1, max_size=60))
def test_an_enrolment_always_files_its_timers_in_the_same_shard(key: str) -> None:
    assert 0 <= due_shard(key) < DUE_SHARDS
    assert due_shard(key) == due_shard(key)


def test_shards_spread_a_minutes_enrolments_evenly() -> None:
    per_shard = [0] * DUE_SHARDS
    for i in range(32_000):
        per_shard[due_shard(f"cmp_1#c_{i}")] += 1

    assert max(per_shard) < 1.1 * 1000
    assert min(per_shard) > 0.9 * 1000


def test_a_sweep_covers_every_minute_since_the_last_one_it_swept() -> None:
    assert minutes_to_sweep("202612071000", T0 + timedelta(minutes=2)) == [
        "202612071001",
        "202612071002",
    ]
    assert minutes_to_sweep("202612071000", T0) == []
    assert minutes_to_sweep("202612070900", T0, catch_up=2) == ["202612070959", "202612071000"]
    assert minutes_to_sweep(None, T0) == ["202612071000"]  # the first: nothing was missed
    assert len(minutes_to_sweep("202612060000", T0)) == 60


def test_a_swept_entry_is_queued_with_what_is_left_of_its_minute() -> None:
    assert sweep_delay(T0, T0 + timedelta(seconds=39.5)) == 40
    assert sweep_delay(T0, T0 - timedelta(minutes=3)) == 0


def test_keys_name_the_enrolment_and_order_due_entries_by_visit() -> None:
    assert enrolment_key("cmp_1", "c_1") == ("ENROL#cmp_1", "c_1")
    assert due_key(FileDue(minute_bucket(T0), 7), "t_1", "cmp_1", "c_1", visit=12) == (
        "FLOWDUE#202612071000#07",
        "t_1#cmp_1#c_1#0000000012",
    )
    assert step_key("cmp_1", "c_1", "welcome", 3) == "cmp_1#c_1#welcome#3"


def test_a_due_entry_is_read_back_from_its_sort_key() -> None:
    _, sort = due_key(FileDue(minute_bucket(T0), 7), "t_1", "cmp_1", "c_1", visit=12)
    assert due_entry_of(sort) == ("t_1", "cmp_1", "c_1", 12)
