"""The local EventBridge Scheduler emulator against moto: schedules made through the
Scheduler API fire into Herald's control queue exactly once, when due, and only then."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.pipeline.queues import queue_url
from chalicelib.settings import get_settings

# at(2026-03-01T10:00:00) in Asia/Tokyo (UTC+9, no DST) is 01:00 UTC.
TOKYO_TEN = "at(2026-03-01T10:00:00)"
DUE = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def create_schedule(
    name: str,
    *,
    expression: str = TOKYO_TEN,
    timezone: str = "Asia/Tokyo",
    after: str = "DELETE",
    state: str = "ENABLED",
    group: str | None = None,
) -> None:
    settings = get_settings()
    client("scheduler").create_schedule(
        Name=name,
        GroupName=group or settings.schedule_group_name,
        ScheduleExpression=expression,
        ScheduleExpressionTimezone=timezone,
        FlexibleTimeWindow={"Mode": "OFF"},
        State=state,
        ActionAfterCompletion=after,
        Target={
            "Arn": settings.queue_arn("control"),
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps({"kind": "campaign.step", "schedule": name}),
        },
    )


def control_messages() -> list[dict[str, Any]]:
    """Everything on the control queue (received once, so it stays out of the next read)."""
    bodies: list[dict[str, Any]] = []
    while True:
        received = (
            client("sqs")
            .receive_message(
                QueueUrl=queue_url("control"), MaxNumberOfMessages=10, VisibilityTimeout=600
            )
            .get("Messages", [])
        )
        if not received:
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in received)


def schedule_exists(name: str) -> bool:
    try:
        client("scheduler").get_schedule(Name=name, GroupName=get_settings().schedule_group_name)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


@pytest.fixture
def emulator(aws: None) -> ScheduleEmulator:
    return ScheduleEmulator()


def test_due_schedule_fires_its_input_into_the_control_queue_once_and_is_deleted(emulator):
    create_schedule("step-1")

    assert emulator.fire_due_schedules(DUE - timedelta(seconds=1)) == []  # 09:59:59 in Tokyo
    assert control_messages() == []
    assert emulator.fire_due_schedules(DUE) == ["step-1"]

    assert control_messages() == [{"kind": "campaign.step", "schedule": "step-1"}]
    assert not schedule_exists("step-1")
    assert emulator.fire_due_schedules(DUE + timedelta(minutes=5)) == []
    assert control_messages() == []


def test_schedule_kept_after_completion_never_fires_twice(emulator):
    create_schedule("kept", after="NONE")

    assert emulator.fire_due_schedules(DUE + timedelta(hours=1)) == ["kept"]
    assert emulator.fire_due_schedules(DUE + timedelta(hours=2)) == []

    assert control_messages() == [{"kind": "campaign.step", "schedule": "kept"}]
    assert schedule_exists("kept")


def test_kept_schedule_fires_again_once_moved_to_a_new_time(emulator):
    create_schedule("moved", after="NONE")
    assert emulator.fire_due_schedules(DUE) == ["moved"]
    settings = get_settings()
    current = client("scheduler").get_schedule(Name="moved", GroupName=settings.schedule_group_name)
    client("scheduler").update_schedule(
        Name="moved",
        GroupName=settings.schedule_group_name,
        ScheduleExpression="at(2026-03-02T10:00:00)",
        ScheduleExpressionTimezone="Asia/Tokyo",
        FlexibleTimeWindow={"Mode": "OFF"},
        State="ENABLED",
        Target=current["Target"],
    )

    assert emulator.fire_due_schedules(DUE + timedelta(hours=1)) == []
    assert emulator.fire_due_schedules(DUE + timedelta(days=1)) == ["moved"]
    assert len(control_messages()) == 2


def test_future_schedule_waits(emulator):
    create_schedule("later", expression="at(2026-03-01T10:00:01)")

    assert emulator.fire_due_schedules(DUE) == []
    assert control_messages() == []
    assert schedule_exists("later")


def test_disabled_schedule_does_not_fire(emulator):
    create_schedule("off", state="DISABLED")

    assert emulator.fire_due_schedules(DUE + timedelta(days=30)) == []
    assert control_messages() == []
    assert schedule_exists("off")


def test_schedules_outside_heralds_group_are_left_alone(emulator):
    client("scheduler").create_schedule_group(Name="someone-else")
    create_schedule("theirs", group="someone-else")

    assert emulator.fire_due_schedules(DUE) == []
    assert control_messages() == []


def test_recurring_schedule_is_skipped_without_stopping_the_others(emulator):
    create_schedule("every-minute", expression="rate(1 minute)", after="NONE")
    create_schedule("step-2")

    assert emulator.fire_due_schedules(DUE) == ["step-2"]
    assert control_messages() == [{"kind": "campaign.step", "schedule": "step-2"}]
    assert schedule_exists("every-minute")
