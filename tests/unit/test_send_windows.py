"""Seed 001's allowed_windows: a flow's send windows defer a message to the next opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from chalicelib.domain.flows.policy import Allow, Defer, SendPolicy, decide_send, next_opening
from chalicelib.domain.flows.windows import SendWindow, next_open

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="17:00")
SATURDAY = SendWindow(days=["sat"], start="10:00", end="12:00")
# Friday 4 December 2026, 18:00 in Berlin (CET, UTC+1)
FRIDAY_EVENING = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)


def test_inside_a_window_a_message_goes_now():
    assert next_open(datetime(2026, 12, 4, 9, 0, tzinfo=UTC), BERLIN, [WEEKDAYS]) is None
    assert next_open(FRIDAY_EVENING, BERLIN, []) is None


def test_outside_it_waits_for_the_next_opening_on_a_listed_day():
    assert next_open(FRIDAY_EVENING, BERLIN, [WEEKDAYS]) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert next_open(FRIDAY_EVENING, BERLIN, [WEEKDAYS, SATURDAY]) == datetime(
        2026, 12, 5, 9, 0, tzinfo=UTC
    )
    early = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday 07:00 local
    assert next_open(early, BERLIN, [WEEKDAYS]) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_the_end_is_exclusive_and_may_be_midnight():
    at_end = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # 17:00 local
    assert next_open(at_end, BERLIN, [WEEKDAYS]) is not None
    late = SendWindow(days=["fri"], start="20:00", end="24:00")
    assert next_open(datetime(2026, 12, 4, 22, 59, tzinfo=UTC), BERLIN, [late]) is None


def test_an_opening_in_the_spring_forward_gap_is_late_not_early():
    window = SendWindow(days=["sun"], start="02:30", end="04:00")  # 29 March 2026: 02:00→03:00
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    opening = next_open(before, BERLIN, [window])
    assert opening == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST


@pytest.mark.parametrize(
    "window",
    [
        {"days": [], "start": "09:00", "end": "17:00"},
        {"days": ["mon", "mon"], "start": "09:00", "end": "17:00"},
        {"days": ["monday"], "start": "09:00", "end": "17:00"},
        {"days": ["mon"], "start": "17:00", "end": "09:00"},
        {"days": ["mon"], "start": "9:00", "end": "17:00"},
        {"days": ["mon"], "start": "09:00", "end": "17:00", "tz": "UTC"},
    ],
)
def test_malformed_windows_are_refused(window):
    with pytest.raises(ValidationError):
        SendWindow.model_validate(window)


def test_the_policy_defers_outside_the_windows_and_after_quiet_hours():
    policy = SendPolicy(send_windows=(WEEKDAYS,))
    decision = decide_send(
        policy,
        now=FRIDAY_EVENING,
        due_at=FRIDAY_EVENING,
        zone=BERLIN,
        tenant_counts={},
        campaign_counts={},
    )
    assert decision == Defer(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
    inside = FRIDAY_EVENING - timedelta(hours=3)
    allowed = decide_send(
        policy, now=inside, due_at=inside, zone=BERLIN, tenant_counts={}, campaign_counts={}
    )
    assert isinstance(allowed, Allow)


def test_a_window_opening_inside_quiet_hours_waits_for_both():
    class Quiet:
        start, end = "08:00", "10:00"

    both = SendPolicy(quiet_hours=Quiet(), send_windows=(WEEKDAYS,))
    # Monday 09:00 local opens the window but quiet hours run to 10:00
    assert next_opening(both, FRIDAY_EVENING, BERLIN) == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
