"""When the local EventBridge Scheduler emulator considers a one-time schedule due.

Pure: expressions and GetSchedule-shaped dicts in, times and decisions out. Firing into
SQS is tested against moto in tests/integration/test_scheduler_emulator.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.local.scheduler import fire_time, is_due


def schedule(expression: str, timezone: str | None = None, state: str = "ENABLED") -> dict:
    found = {"Name": "s", "ScheduleExpression": expression, "State": state}
    if timezone:
        found["ScheduleExpressionTimezone"] = timezone
    return found


def test_at_is_read_in_the_schedule_timezone():
    assert fire_time("at(2026-01-15T09:30:00)", "Asia/Tokyo") == datetime(
        2026, 1, 15, 0, 30, tzinfo=UTC
    )


def test_at_follows_daylight_saving_time():
    winter = fire_time("at(2026-01-15T09:00:00)", "America/New_York")
    summer = fire_time("at(2026-07-15T09:00:00)", "America/New_York")
    assert (winter, summer) == (
        datetime(2026, 1, 15, 14, 0, tzinfo=UTC),
        datetime(2026, 7, 15, 13, 0, tzinfo=UTC),
    )


def test_timezone_defaults_to_utc():
    assert fire_time("at(2026-01-15T09:30:00)") == datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["rate(5 minutes)", "cron(0 12 * * ? *)"])
def test_recurring_expressions_have_no_single_fire_time(expression):
    assert fire_time(expression) is None


@pytest.mark.parametrize(
    "expression", ["at(2026-01-15 09:30:00)", "at(2026-01-15T09:30)", "tomorrow", ""]
)
def test_malformed_expressions_are_refused(expression):
    with pytest.raises(ValueError, match="not a schedule expression"):
        fire_time(expression)


def test_unknown_timezone_is_refused():
    with pytest.raises(ValueError, match="unknown timezone"):
        fire_time("at(2026-01-15T09:30:00)", "Mars/Olympus_Mons")


def test_due_from_its_moment_on_and_not_before():
    due = schedule("at(2026-01-15T10:00:00)", "Europe/Paris")  # 09:00 UTC
    moment = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert not is_due(due, moment - timedelta(seconds=1))
    assert is_due(due, moment)
    assert is_due(due, moment + timedelta(days=3))


def test_disabled_schedule_is_never_due():
    assert not is_due(
        schedule("at(2026-01-15T10:00:00)", state="DISABLED"), datetime(2027, 1, 1, tzinfo=UTC)
    )


def test_recurring_schedule_is_never_due():
    assert not is_due(schedule("rate(1 minute)"), datetime(2027, 1, 1, tzinfo=UTC))
