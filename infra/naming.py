"""CloudFormation logical ids, physical names and intrinsic functions for Herald's stack.

The merge template only lands on chalice's resources if it uses chalice's own logical ids,
so ids of generated resources are computed with chalice's ``to_cfn_resource_name`` from the
handler names in ``chalicelib.resources`` (``control_worker`` → ``ControlWorker``), never typed
in. Ids of the resources infra adds are derived the same way from their specs, stage-free, so
a template diff between stages shows only names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalice.utils import to_cfn_resource_name

from chalicelib.resources import HeraldResources, QueueSpec
from chalicelib.settings import ENV_PREFIX, QueueRole, Settings

Json = dict[str, Any]

# Chalice renames the REST handler's function and names the API itself with these ids.
API_FUNCTION = "APIHandler"
REST_API = "RestAPI"

TABLE = "Table"
EVENT_BUS = "EventBus"
SCHEDULE_GROUP = "ScheduleGroup"
SCHEDULER_ROLE = "SchedulerRole"
SMS_STATUS_DEAD_LETTER_QUEUE = "SmsStatusDeadLetterQueue"
CONFIGURATION_SET = "ConfigurationSet"
ALARM_TOPIC = "AlarmTopic"
DASHBOARD = "Dashboard"

SETTINGS_ENV_PREFIX = ENV_PREFIX

# Stack parameters and the conditions derived from them.
PUBLIC_BASE_URL = "PublicBaseUrl"
HAS_PUBLIC_BASE_URL = "HasPublicBaseUrl"
ALARM_EMAIL = "AlarmEmail"
SES_MAX_SEND_RATE = "SesMaxSendRate"
HAS_ALARM_EMAIL = "HasAlarmEmail"


def setting_variable(field: str) -> str:
    """The environment variable that sets ``Settings.<field>`` (``HERALD_ACCOUNT_ID``)."""
    if field not in Settings.model_fields:
        raise KeyError(f"Settings has no field {field!r}")
    return f"{SETTINGS_ENV_PREFIX}{field}".upper()


def ref(logical_id: str) -> Json:
    return {"Ref": logical_id}


def get_att(logical_id: str, attribute: str) -> Json:
    return {"Fn::GetAtt": [logical_id, attribute]}


def sub(text: str) -> Json:
    return {"Fn::Sub": text}


def arn(service: str, resource: str) -> Json:
    """An ARN in this stack's partition, region and account."""
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


@dataclass(frozen=True)
class Stack:
    """One stage's stack: its settings, its resources and the ids everything is known by."""

    settings: Settings
    resources: HeraldResources
    api_gateway_stage: str

    @property
    def handlers(self) -> tuple[str, ...]:
        """Every Lambda function chalice generates, by its handler name in app.py."""
        return self.resources.handlers

    def function_id(self, handler: str) -> str:
        if handler == self.resources.api_handler:
            return API_FUNCTION
        return to_cfn_resource_name(handler)

    def function_name(self, handler: str) -> str:
        """The Lambda function's name: fixed, so logs and integrations can be found by name."""
        return self.settings.function_name(handler)

    def role_id(self, handler: str) -> str:
        """The execution role chalice makes per function when ``autogen_policy`` is off."""
        return to_cfn_resource_name(f"{handler}_role")

    def sqs_event_id(self, spec: QueueSpec) -> str:
        """The SQS event (the event source mapping) chalice adds to a consumer function."""
        return to_cfn_resource_name(f"{spec.handler}-sqs-event-source")

    def queue_id(self, role: QueueRole) -> str:
        return f"{to_cfn_resource_name(role)}Queue"

    def dead_letter_queue_id(self, role: QueueRole) -> str:
        return f"{to_cfn_resource_name(role)}DeadLetterQueue"

    def topic_id(self, topic_name: str) -> str:
        return f"{self._stage_free(topic_name)}Topic"

    def rule_id(self, rule_name: str) -> str:
        return f"{self._stage_free(rule_name)}Rule"

    def queue_arn(self, role: QueueRole) -> Json:
        return get_att(self.queue_id(role), "Arn")

    def dead_letter_queue_arn(self, role: QueueRole) -> Json:
        return get_att(self.dead_letter_queue_id(role), "Arn")

    def public_base_url(self) -> Json:
        """The API's public URL: the stack parameter when given, else API Gateway's own."""
        api_url = sub(
            f"https://${{{REST_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
            f"/{self.api_gateway_stage}"
        )
        return {"Fn::If": [HAS_PUBLIC_BASE_URL, ref(PUBLIC_BASE_URL), api_url]}

    def _stage_free(self, name: str) -> str:
        return to_cfn_resource_name(name.removeprefix(f"{self.settings.prefix}-"))
