"""SMS delivery status: SNS's delivery-status logs → the forwarder → the feedback queue.

SNS writes each SMS's status to CloudWatch Logs, and only there, once the account's SMS
attributes name a role it may log with (``DeliveryStatusIAMRole``; CloudFormation has no
resource for those attributes, so docs/deploy.md sets them with one CLI call using the
``SmsDeliveryStatusRoleArn`` output). This stack adds:

* that role: SNS may write only to its two SMS log groups of this account and region;
* the two log groups themselves (unless ``SmsStatusLogGroupsExist`` says SNS or another
  stack made them: a subscription filter needs its group to exist), with a retention;
* a subscription filter on each, invoking the forwarder function (``pipeline.status_logs``),
  and the permission for CloudWatch Logs to invoke it from those groups only;
* the forwarder's dead-letter queue, where Lambda puts a log delivery it failed three times
  to forward (the alarm is in ``infra.monitoring``, with the other dead-letter queues).

The forwarder's policy is made like every function's, in ``infra.policy``
(``FUNCTION_NEEDS["sms_status"]``): sending to the feedback queue and to that dead-letter
queue, nothing else.
"""

from __future__ import annotations

from chalicelib.resources import SmsStatusLogsSpec
from infra.naming import SMS_STATUS_DEAD_LETTER_QUEUE, Json, Stack, arn, get_att, ref, sub

SMS_STATUS_ROLE = "SmsDeliveryStatusRole"
SMS_STATUS_LOG_GROUPS_EXIST = "SmsStatusLogGroupsExist"
CREATE_SMS_STATUS_LOG_GROUPS = "CreateSmsStatusLogGroups"
LOGS_SERVICE = "logs.amazonaws.com"
SNS_SERVICE = "sns.amazonaws.com"
# What SNS needs to log SMS delivery status (SNS developer guide, "SMS delivery status").
SNS_LOGGING_ACTIONS = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:PutMetricFilter",
    "logs:PutRetentionPolicy",
)


def _spec(stack: Stack) -> SmsStatusLogsSpec:
    return stack.resources.sms_status_logs


def _log_group_name(suffix: str) -> Json:
    return sub(SmsStatusLogsSpec.log_group_prefix("${AWS::Region}", "${AWS::AccountId}") + suffix)


def _sms_log_groups_arn() -> Json:
    """Both SMS log groups and their streams (``…/DirectPublishToPhoneNumber[/Failure]:*``)."""
    prefix = SmsStatusLogsSpec.log_group_prefix("${AWS::Region}", "${AWS::AccountId}")
    return arn("logs", f"log-group:{prefix}DirectPublishToPhoneNumber*")


def log_group_id(suffix: str) -> str:
    """``DirectPublishToPhoneNumber/Failure`` → ``SmsStatusFailureLogGroup``."""
    tail = suffix.removeprefix("DirectPublishToPhoneNumber").strip("/")
    return f"SmsStatus{tail.capitalize()}LogGroup"


def sms_status_parameters() -> Json:
    return {
        SMS_STATUS_LOG_GROUPS_EXIST: {
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["false", "true"],
            "Description": "true if the account already has SNS's SMS delivery-status log "
            "groups (sns/<region>/<account>/DirectPublishToPhoneNumber[/Failure]), e.g. "
            "made by SNS or by another Herald stage: the stack then subscribes to them "
            "instead of creating them.",
        }
    }


def sms_status_conditions() -> Json:
    return {
        CREATE_SMS_STATUS_LOG_GROUPS: {"Fn::Equals": [ref(SMS_STATUS_LOG_GROUPS_EXIST), "false"]}
    }


def sms_status_resources(stack: Stack) -> Json:
    spec = _spec(stack)
    function_id = stack.function_id(spec.handler)
    permission_id = f"{function_id}LogsPermission"
    rendered: Json = {
        SMS_STATUS_ROLE: _delivery_status_role(),
        SMS_STATUS_DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": spec.dead_letter_name,
                "MessageRetentionPeriod": spec.dead_letter_retention_seconds,
                "SqsManagedSseEnabled": True,
            },
        },
        permission_id: {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": get_att(function_id, "Arn"),
                "Action": "lambda:InvokeFunction",
                "Principal": LOGS_SERVICE,
                "SourceAccount": ref("AWS::AccountId"),
                "SourceArn": _sms_log_groups_arn(),
            },
        },
    }
    for suffix in spec.log_group_suffixes:
        group_id = log_group_id(suffix)
        rendered[group_id] = {
            "Type": "AWS::Logs::LogGroup",
            "Condition": CREATE_SMS_STATUS_LOG_GROUPS,
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "LogGroupName": _log_group_name(suffix),
                "RetentionInDays": spec.log_retention_days,
            },
        }
        rendered[f"{group_id}Subscription"] = {
            "Type": "AWS::Logs::SubscriptionFilter",
            # CloudWatch Logs tests the destination when the filter is created.
            "DependsOn": [permission_id],
            "Properties": {
                # The group this stack made (and so after it), or the existing one by name.
                "LogGroupName": {
                    "Fn::If": [CREATE_SMS_STATUS_LOG_GROUPS, ref(group_id), _log_group_name(suffix)]
                },
                "FilterPattern": "",
                "DestinationArn": get_att(function_id, "Arn"),
            },
        }
    return rendered


def forwarder_overrides(stack: Stack) -> Json:
    """What the forwarder's function gets on top of every function's settings."""
    return {
        "Timeout": _spec(stack).timeout_seconds,
        "DeadLetterQueue": {
            "Type": "SQS",
            "TargetArn": get_att(SMS_STATUS_DEAD_LETTER_QUEUE, "Arn"),
        },
    }


def _delivery_status_role() -> Json:
    """The role the account's SMS attributes name: SNS logs SMS status with it."""
    return sns_logging_role("sms", _sms_log_groups_arn())


def sns_logging_role(channel: str, log_groups_arn: Json, *, name: str | None = None) -> Json:
    """A role SNS assumes (for this account only) to write a channel's delivery-status
    logs into ``log_groups_arn``: the SMS account attributes and each push platform
    application name one. ``name`` fixes the role's name when the app builds its ARN."""
    named = {"RoleName": name} if name else {}
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            **named,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": SNS_SERVICE},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}},
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": f"log-{channel}-delivery-status",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": f"Write{channel.capitalize()}StatusLogs",
                                "Effect": "Allow",
                                "Action": list(SNS_LOGGING_ACTIONS),
                                "Resource": [log_groups_arn],
                            }
                        ],
                    },
                }
            ],
        },
    }
