"""Delivery rules: quiet hours in several timezones and across DST, caps, rotation, ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import clock
from chalicelib.domain.delivery import (
    SkipReason,
    backoff_seconds,
    message_id,
    next_allowed,
    parse_message_id,
    pick_for,
    status_skip,
    tag_value,
    zone_for,
)


@dataclass(frozen=True)
class Window:
    start: str
    end: str


NIGHT = Window("21:00", "08:00")
LUNCH = Window("12:00", "14:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- quiet hours ----------------------------------------------------------------------------
def test_outside_the_window_sends_now() -> None:
    assert next_allowed(at("2026-03-02T10:00:00+01:00"), "Europe/Berlin", NIGHT) is None


def test_no_window_sends_now() -> None:
    assert next_allowed(at("2026-03-02T23:00:00+00:00"), "UTC", None) is None


def test_late_evening_waits_until_next_morning() -> None:
    opens = next_allowed(at("2026-03-02T22:30:00+01:00"), "Europe/Berlin", NIGHT)
    assert opens == at("2026-03-03T08:00:00+01:00")


def test_early_morning_waits_until_the_same_morning() -> None:
    opens = next_allowed(at("2026-03-03T03:00:00+01:00"), "Europe/Berlin", NIGHT)
    assert opens == at("2026-03-03T08:00:00+01:00")


def test_window_is_half_open() -> None:
    assert next_allowed(at("2026-03-03T08:00:00+01:00"), "Europe/Berlin", NIGHT) is None
    assert next_allowed(at("2026-03-02T21:00:00+01:00"), "Europe/Berlin", NIGHT) is not None
    assert next_allowed(at("2026-03-02T20:59:59+01:00"), "Europe/Berlin", NIGHT) is None


def test_same_instant_differs_by_timezone() -> None:
    instant = at("2026-06-01T12:30:00+00:00")  # Tokyo 21:30, Berlin 14:30, New York 08:30
    assert next_allowed(instant, "Asia/Tokyo", NIGHT) == at("2026-06-02T08:00:00+09:00")
    assert next_allowed(instant, "Europe/Berlin", NIGHT) is None
    assert next_allowed(instant, "America/New_York", NIGHT) is None
    assert next_allowed(instant, "America/Los_Angeles", NIGHT) == at("2026-06-01T08:00:00-07:00")


def test_daytime_window_not_crossing_midnight() -> None:
    assert next_allowed(at("2026-06-01T12:59:00+00:00"), "UTC", LUNCH) == at(
        "2026-06-01T14:00:00+00:00"
    )
    assert next_allowed(at("2026-06-01T14:00:00+00:00"), "UTC", LUNCH) is None
    assert next_allowed(at("2026-06-01T11:59:00+00:00"), "UTC", LUNCH) is None


def test_equal_start_and_end_is_no_window() -> None:
    assert next_allowed(at("2026-06-01T03:00:00+00:00"), "UTC", Window("08:00", "08:00")) is None


def test_window_given_as_time_objects() -> None:
    window = Window(time(21), time(8))  # type: ignore[arg-type]
    assert next_allowed(at("2026-06-01T22:00:00+00:00"), "UTC", window) == at(
        "2026-06-02T08:00:00+00:00"
    )


def test_night_spanning_spring_forward_opens_at_local_eight() -> None:
    # New York springs forward on 2026-03-08 at 02:00 (EST -5 → EDT -4).
    opens = next_allowed(at("2026-03-07T23:00:00-05:00"), "America/New_York", NIGHT)
    assert opens == at("2026-03-08T08:00:00-04:00")
    assert opens == at("2026-03-08T12:00:00+00:00")


def test_night_spanning_fall_back_opens_at_local_eight() -> None:
    # New York falls back on 2026-11-01 at 02:00 (EDT -4 → EST -5): the night is 12 h long.
    opens = next_allowed(at("2026-10-31T21:30:00-04:00"), "America/New_York", NIGHT)
    assert opens == at("2026-11-01T08:00:00-05:00")
    assert opens == at("2026-11-01T13:00:00+00:00")


def test_window_end_inside_the_spring_forward_gap_opens_late_never_early() -> None:
    window = Window("01:00", "02:30")  # 02:30 does not exist in New York on 2026-03-08
    opens = next_allowed(at("2026-03-08T01:15:00-05:00"), "America/New_York", window)
    assert opens is not None
    assert opens == at("2026-03-08T03:30:00-04:00")
    # By then the local time really is past the window.
    assert next_allowed(opens, "America/New_York", window) is None


def test_window_end_in_the_repeated_hour_opens_at_its_first_occurrence() -> None:
    window = Window("00:00", "01:30")  # 01:30 happens twice in New York on 2026-11-01
    opens = next_allowed(at("2026-11-01T00:10:00-04:00"), "America/New_York", window)
    assert opens == at("2026-11-01T01:30:00-04:00")


def test_southern_hemisphere_dst() -> None:
    # Sydney moves from AEDT (+11) to AEST (+10) on 2026-04-05 at 03:00.
    opens = next_allowed(at("2026-04-04T22:00:00+11:00"), "Australia/Sydney", NIGHT)
    assert opens == at("2026-04-05T08:00:00+10:00")


def test_half_hour_offset_zone() -> None:
    instant = at("2026-06-01T16:00:00+00:00")  # Kolkata +05:30 → 21:30 local
    assert next_allowed(instant, "Asia/Kolkata", NIGHT) == at("2026-06-02T08:00:00+05:30")


@given(
    minutes=st.integers(min_value=0, max_value=366 * 24 * 60),
    zone=st.sampled_from(
        ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
    ),
)
def test_opening_is_in_the_future_and_outside_the_window(minutes: int, zone: str) -> None:
    instant = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    opens = next_allowed(instant, zone, NIGHT)
    if opens is not None:
        assert opens > instant
        assert opens - instant <= timedelta(hours=12)
        assert next_allowed(opens, zone, NIGHT) is None


def test_zone_falls_back_from_contact_to_campaign_to_utc() -> None:
    assert zone_for("Asia/Tokyo", "Europe/Berlin").key == "Asia/Tokyo"
    assert zone_for(None, "Europe/Berlin").key == "Europe/Berlin"
    assert zone_for("Not/AZone", "Europe/Berlin").key == "Europe/Berlin"
    assert zone_for(None, None).key == "UTC"


# -- rotation, ids, statuses ----------------------------------------------------------------
def test_rotation_is_deterministic_and_spreads() -> None:
    templates = ["t1", "t2", "t3"]
    picks = [pick_for(templates, f"c_{i:032x}", "cmp_1:main") for i in range(300)]
    assert picks == [pick_for(templates, f"c_{i:032x}", "cmp_1:main") for i in range(300)]
    assert all(picks.count(t) > 60 for t in templates)


def test_rotation_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        pick_for([], "c_1", "salt")


def test_message_id_round_trips_and_is_a_valid_tag() -> None:
    value = message_id("main", "c_" + "a" * 32, "email")
    assert parse_message_id(value) == ("main", "c_" + "a" * 32, "email")
    assert tag_value(value) == value


@pytest.mark.parametrize("bad", ["x", "m_", "m_!!!", "m_" + "YQ"])
def test_parse_message_id_refuses_foreign_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_message_id(bad)


def test_tag_value_replaces_forbidden_characters() -> None:
    assert tag_value("a.b@c d") == "a_b_c_d"
    assert len(tag_value("x" * 300)) == 256
    assert tag_value("") == "_"


def test_contact_status_decides_skips() -> None:
    assert status_skip("subscribed") is None
    assert status_skip("unsubscribed") is SkipReason.UNSUBSCRIBED
    assert status_skip("bounced") is SkipReason.BOUNCED
    assert status_skip("complained") is SkipReason.COMPLAINED


def test_backoff_is_bounded() -> None:
    assert all(0 <= backoff_seconds(n) <= 5.0 for n in range(1, 20))


# -- the clock ------------------------------------------------------------------------------
def test_frozen_clock_moves_only_when_told() -> None:
    start = at("2026-06-01T12:00:00+00:00")
    with clock.frozen(start) as frozen:
        assert clock.now() == start
        clock.sleep(30)
        assert clock.now() == start + timedelta(seconds=30)
        frozen.advance(timedelta(hours=1))
        assert clock.now() == start + timedelta(hours=1, seconds=30)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)  # real time again
