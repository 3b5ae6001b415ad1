"""What EventBridge Scheduler does with Herald's one-time schedules, done by hand.

moto stores schedules but never fires them. ``ScheduleEmulator.fire_due_schedules`` looks
at every schedule in Herald's group and, for each enabled ``at(...)`` schedule whose time
has come (read in its ``ScheduleExpressionTimezone``), sends its ``Target.Input`` to the
target queue, then deletes the schedule when ``ActionAfterCompletion`` is ``DELETE``. A
schedule kept after firing (``NONE``) is remembered and never fires again unless it is
updated. The local runner calls it every second; tests call it with any ``now``.

Only SQS targets are emulated (Herald schedules nothing else); recurring ``rate``/``cron``
schedules, retries and the target's dead-letter queue are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.observability import logger
from chalicelib.settings import get_settings

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RECURRING = re.compile(r"^(rate|cron)\(.*\)$")


def fire_time(expression: str, timezone: str = "UTC") -> datetime | None:
    """When an ``at(yyyy-mm-ddThh:mm:ss)`` expression fires, in UTC.

    Returns None for ``rate(...)``/``cron(...)`` (recurring, not emulated); raises
    ValueError for anything else or an unknown timezone, as CreateSchedule would.
    """
    match = _AT.match(expression.strip())
    if match is None:
        if _RECURRING.match(expression.strip()):
            return None
        raise ValueError(f"not a schedule expression: {expression!r}")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown timezone {timezone!r}") from error
    local = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=zone)
    return local.astimezone(UTC)


def is_due(schedule: Mapping[str, Any], now: datetime) -> bool:
    """Whether a GetSchedule response describes an enabled one-time schedule due by ``now``."""
    if schedule.get("State", "ENABLED") != "ENABLED":
        return False
    when = fire_time(
        schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC"
    )
    return when is not None and when <= now


class ScheduleEmulator:
    """Fires due schedules of one group; remembers what it fired or gave up on."""

    def __init__(self, group_name: str | None = None) -> None:
        self._group_name = group_name
        # A schedule version (ARN + LastModificationDate) that needs no more attention:
        # fired and kept, or impossible to fire. Updating a schedule makes a new version.
        self._settled: set[tuple[str, str]] = set()
        self._details: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def group_name(self) -> str:
        return self._group_name or get_settings().schedule_group_name

    def fire_due_schedules(self, now: datetime | None = None) -> list[str]:
        """Fire every schedule of the group due by ``now``; returns the names fired."""
        moment = now or datetime.now(UTC)
        fired: list[str] = []
        current: set[tuple[str, str]] = set()
        for summary in self._summaries():
            version = (summary["Arn"], str(summary.get("LastModificationDate")))
            current.add(version)
            if version in self._settled or summary.get("State") == "DISABLED":
                continue
            schedule = self._detail(version, summary["Name"])
            if schedule is None or not self._ready(version, schedule, moment):
                continue
            self._settled.add(version)
            if self._deliver(schedule):
                fired.append(schedule["Name"])
            # Like AWS, the one invocation is over (delivered or dropped): complete it.
            if schedule.get("ActionAfterCompletion") == "DELETE":
                self._delete(schedule["Name"])
        # Forget versions that no longer exist, so memory follows the schedules.
        self._settled &= current
        self._details = {v: d for v, d in self._details.items() if v in current}
        return fired

    def _summaries(self) -> list[dict[str, Any]]:
        pages = (
            client("scheduler").get_paginator("list_schedules").paginate(GroupName=self.group_name)
        )
        return [
            s
            for page in pages
            for s in page.get("Schedules", [])
            if s.get("GroupName") == self.group_name  # moto matches the group by substring
        ]

    def _detail(self, version: tuple[str, str], name: str) -> dict[str, Any] | None:
        """GetSchedule once per version: ListSchedules returns no expression or input."""
        if version not in self._details:
            try:
                self._details[version] = client("scheduler").get_schedule(
                    Name=name, GroupName=self.group_name
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ResourceNotFoundException":
                    return None  # deleted between the listing and now
                raise
        return self._details[version]

    def _ready(self, version: tuple[str, str], schedule: dict[str, Any], now: datetime) -> bool:
        """Whether to fire now; settles (and logs once) schedules that can never fire here."""
        name = schedule["Name"]
        try:
            when = fire_time(
                schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC"
            )
        except ValueError as error:
            logger.warning("schedule cannot fire", extra={"schedule": name, "reason": str(error)})
            self._settled.add(version)
            return False
        if when is None:
            logger.warning("recurring schedules do not fire locally", extra={"schedule": name})
            self._settled.add(version)
            return False
        return is_due(schedule, now)

    def _deliver(self, schedule: dict[str, Any]) -> bool:
        """Send the schedule's input to its SQS target; logs and gives up on anything else."""
        target = schedule["Target"]
        name = schedule["Name"]
        arn_parts = str(target["Arn"]).split(":")
        if len(arn_parts) != 6 or arn_parts[2] != "sqs":
            logger.warning("only SQS targets fire locally", extra={"schedule": name})
            return False
        if "Input" not in target:
            logger.warning("schedule has no Input; not fired locally", extra={"schedule": name})
            return False
        sqs = client("sqs")
        message: dict[str, Any] = {"MessageBody": target["Input"]}
        group_id = target.get("SqsParameters", {}).get("MessageGroupId")
        if group_id:
            message["MessageGroupId"] = group_id
        try:
            url = sqs.get_queue_url(QueueName=arn_parts[5], QueueOwnerAWSAccountId=arn_parts[4])
            sqs.send_message(QueueUrl=url["QueueUrl"], **message)
        except ClientError:
            logger.exception("schedule target refused the message", extra={"schedule": name})
            return False
        logger.info("schedule fired", extra={"schedule": name, "target": target["Arn"]})
        return True

    def _delete(self, name: str) -> None:
        try:
            client("scheduler").delete_schedule(Name=name, GroupName=self.group_name)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
