"""The merge template: everything Herald's stack has that ``chalice package`` does not make.

``chalice package --merge-template`` deep-merges it onto chalice's own template: dicts merge
key by key, anything else (lists included) replaces chalice's value. Resources chalice does not
generate are added whole; for chalice's functions and API only the keys to add are given.
"""

from __future__ import annotations

from chalicelib.settings import Settings
from infra.functions import function_overrides
from infra.gateway import api_overrides
from infra.monitoring import monitoring_resources
from infra.naming import (
    ALARM_EMAIL,
    ALARM_TOPIC,
    CONFIGURATION_SET,
    DASHBOARD,
    EVENT_BUS,
    HAS_ALARM_EMAIL,
    HAS_PUBLIC_BASE_URL,
    PUBLIC_BASE_URL,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE,
    SES_MAX_SEND_RATE,
    TABLE,
    Json,
    Stack,
    get_att,
    ref,
)
from infra.policy import iam_resources
from infra.push_status import push_status_resources
from infra.replies import reply_resources
from infra.services import service_resources
from infra.ses_events import SES_EVENTS_BUCKET, SES_EVENTS_STREAM, ses_events_resources
from infra.sms_status import (
    SMS_STATUS_ROLE,
    sms_status_conditions,
    sms_status_parameters,
    sms_status_resources,
)


def merge_template(stack: Stack) -> Json:
    resources: Json = {}
    for part in (
        service_resources(stack),
        iam_resources(stack),
        function_overrides(stack),
        api_overrides(stack),
        monitoring_resources(stack),
        sms_status_resources(stack),
        push_status_resources(stack),
        reply_resources(stack),
        ses_events_resources(stack),
    ):
        clashes = resources.keys() & part.keys()
        if clashes:
            raise ValueError(f"two definitions of {sorted(clashes)}")
        resources.update(part)
    return {
        "Description": f"Herald ({stack.settings.stage}): email and SMS campaigns on SES and SNS",
        "Parameters": _parameters(),
        "Conditions": {
            HAS_PUBLIC_BASE_URL: _not_empty(PUBLIC_BASE_URL),
            HAS_ALARM_EMAIL: _not_empty(ALARM_EMAIL),
            **sms_status_conditions(),
        },
        "Resources": resources,
        "Outputs": _outputs(stack),
    }


def _parameters() -> Json:
    return {
        PUBLIC_BASE_URL: {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^(https://[^/\s]+(/[^\s]*[^/\s])?)?$",
            "Description": "The API's URL as recipients see it in unsubscribe links, e.g. a "
            "custom domain (https://mail.example.com, no trailing slash). Empty: the API "
            "Gateway URL.",
        },
        ALARM_EMAIL: {
            "Type": "String",
            "Default": "",
            "Description": "Where alarms are mailed (the address must confirm the "
            "subscription). Empty: alarms only go to the AlarmTopic SNS topic.",
        },
        SES_MAX_SEND_RATE: {
            "Type": "Number",
            "Default": Settings.model_fields["ses_max_send_rate"].default,
            "MinValue": 1,
            "Description": "Your SES account's maximum send rate (emails per second, "
            "aws sesv2 get-account): Herald paces sending to stay under it.",
        },
        **sms_status_parameters(),
    }


def _not_empty(parameter: str) -> Json:
    return {"Fn::Not": [{"Fn::Equals": [ref(parameter), ""]}]}


def _outputs(stack: Stack) -> Json:
    values: dict[str, tuple[str, Json | str]] = {
        "Stage": ("Herald stage (HERALD_STAGE)", stack.settings.stage),
        "ApiUrl": ("Base URL of Herald's API", stack.public_base_url()),
        "TableName": ("DynamoDB table", ref(TABLE)),
        "EventBusName": ("EventBridge bus for Herald's events", ref(EVENT_BUS)),
        "ScheduleGroupName": ("EventBridge Scheduler group", ref(SCHEDULE_GROUP)),
        "SchedulerRoleArn": ("Role schedules run as", get_att(SCHEDULER_ROLE, "Arn")),
        "ConfigurationSetName": ("SES configuration set every email uses", ref(CONFIGURATION_SET)),
        "AlarmTopicArn": ("SNS topic alarms notify", ref(ALARM_TOPIC)),
        "DashboardName": ("CloudWatch dashboard", ref(DASHBOARD)),
        "SmsDeliveryStatusRoleArn": (
            "Role SNS logs SMS delivery status with (aws sns set-sms-attributes "
            "DeliveryStatusIAMRole, docs/deploy.md)",
            get_att(SMS_STATUS_ROLE, "Arn"),
        ),
    }
    if stack.resources.configuration_set.stream is not None:
        values["SesEventsStreamName"] = (
            "Firehose stream SES publishes its sending events to",
            ref(SES_EVENTS_STREAM),
        )
        values["SesEventsBucketName"] = (
            "Bucket of SES's sending events (objects expire after 3 days)",
            ref(SES_EVENTS_BUCKET),
        )
    return {
        name: {"Description": description, "Value": value}
        for name, (description, value) in values.items()
    }
