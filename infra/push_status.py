"""Push delivery status: each platform application's status logs → the status forwarder.

SNS logs a push's delivery status to CloudWatch Logs, per platform application, once the
application's attributes name a role it may log with. Herald makes the applications at
run time (one per push sender), so their log groups (``sns/<region>/<account>/app/
<platform>/<application>`` and ``…/Failure``) cannot be resources of this stack: the API
makes them and their subscription filters when it makes an application
(chalicelib/channels/push.py; its grants are ``manage_push`` in ``infra.policy``). This
stack adds what that needs:

* the role the applications name (``Settings.push_status_role_name``; the app builds its
  ARN from the name): SNS may write only to the log groups of Herald's applications
  (``herald-<stage>-…``) in this account and region;
* the permission for CloudWatch Logs to invoke the forwarder (the SMS status forwarder,
  ``pipeline.status_logs``) from those log groups, which CloudWatch Logs checks when a
  subscription filter is put;
* ``HERALD_PUSH_DELIVERY_STATUS=true`` for the functions (``infra.functions``), which turns
  the logging on when an application is made.

An account-level subscription filter policy (``PutAccountPolicy``) is no alternative: its
selection can only exclude log groups by name, so it would subscribe every log group of
the account, Herald's own function logs included.
"""

from __future__ import annotations

from chalicelib.resources import SmsStatusLogsSpec
from infra.naming import Json, Stack, arn, get_att, ref
from infra.sms_status import LOGS_SERVICE, sns_logging_role

PUSH_STATUS_ROLE = "PushDeliveryStatusRole"


def push_status_log_groups_arn(stack: Stack) -> Json:
    """The status log groups (and their streams) of every Herald platform application."""
    prefix = SmsStatusLogsSpec.log_group_prefix("${AWS::Region}", "${AWS::AccountId}")
    return arn("logs", f"log-group:{prefix}app/*/{stack.settings.prefix}-*")


def push_status_resources(stack: Stack) -> Json:
    function_id = stack.function_id(stack.resources.sms_status_logs.handler)
    return {
        PUSH_STATUS_ROLE: _delivery_status_role(stack),
        f"{function_id}PushLogsPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": get_att(function_id, "Arn"),
                "Action": "lambda:InvokeFunction",
                "Principal": LOGS_SERVICE,
                "SourceAccount": ref("AWS::AccountId"),
                "SourceArn": push_status_log_groups_arn(stack),
            },
        },
    }


def _delivery_status_role(stack: Stack) -> Json:
    """The role Herald's platform applications name: SNS logs push status with it.
    Named: the app builds its ARN from the name (Settings.push_status_role_arn)."""
    return sns_logging_role(
        "push",
        push_status_log_groups_arn(stack),
        name=stack.resources.push_status_logs.role_name,
    )
