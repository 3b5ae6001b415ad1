"""Least-privilege IAM for Herald's functions and for the role EventBridge Scheduler assumes.

Chalice gives every function its own execution role (``autogen_policy`` is off), holding only
``.chalice/policy-baseline.json``: logs, traces and metrics, which name no Herald resource.
Everything that does name one is granted here, by ARN from this stack's own resources, and
each function gets its own policy (``<Function>AccessPolicy``) with only what it does:
``FUNCTION_NEEDS`` says what that is, and tests/integration/test_function_permissions.py
runs a day of Herald in moto, records every AWS call with the function making it, and
fails when a call is not granted to that function. A queue consumer also gets
``<Function>ConsumePolicy``: receiving and deleting from its own queue.

The callbacks worker talks to URLs tenants choose, so it holds the least: the table items
of callbacks and webhooks only (a ``dynamodb:LeadingKeys`` condition on the partition
keys), sending to its own queue and dead-letter queue, and nothing of SES, SNS, the bus or
the scheduler. The SMS status forwarder (``infra.sms_status``) holds less still: sending to
the feedback queue and to its own dead-letter queue, nothing of the table.

``sns:Publish`` (SMS, by the send worker and the API's test sends) needs ``Resource: "*"``:
an SMS to a phone number has no ARN to name. A function that sends SMS but no push is
therefore denied ``sns:Publish`` on every ARN (``arn:<partition>:sns:*:*:*``): topics and
platform endpoints are refused, and only the ARN-less phone-number publish stays allowed.
(No function publishes to a topic: SES and SNS themselves publish Herald's feedback
topics.) A function that also sends push (the send and flow workers, the API's test
sends) publishes to Herald's platform endpoints, which that deny would refuse, and IAM has
no way to deny topics while allowing endpoints and the ARN-less publish. For those the
deny is narrowed to other accounts' ARNs: they may publish to this account's topics too,
which Herald's code never does (docs/channels.md). The platform applications are
Herald's by name (``herald-<stage>-…``): managing them and their endpoints is granted on
that prefix only, and so are their delivery-status log groups (``infra.push_status``).

SES sending is granted on this account's identities and Herald's configuration set. IAM
cannot tell which tenant owns an identity (``ses:FromAddress`` conditions are per policy,
not per tenant), so the ownership of identities is Herald's own check before a send
(docs/architecture.md, "Security model").
"""

from __future__ import annotations

from typing import Literal

from chalicelib.resources import QueueSpec
from chalicelib.settings import QueueRole
from infra.buckets import bucket_arn
from infra.naming import (
    EVENT_BUS,
    SCHEDULER_ROLE,
    SMS_STATUS_DEAD_LETTER_QUEUE,
    TABLE,
    Json,
    Stack,
    arn,
    get_att,
    sub,
)
from infra.push_status import PUSH_STATUS_ROLE, push_status_log_groups_arn
from infra.sms_status import SNS_SERVICE

SCHEDULER_SERVICE = "scheduler.amazonaws.com"

TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
)
ENQUEUE_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes")
CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
SCHEDULE_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
)
# The partitions the callbacks worker reads and writes (chalicelib.store.callbacks and
# chalicelib.store.webhooks): ``T#<32 hex tenant id>#<kind>…`` and the due-window pointers.
_TENANT = "T#" + "?" * 32
CALLBACK_PARTITIONS = (
    f"{_TENANT}#CALLBACK#*",
    f"{_TENANT}#CALLBACKSECRET",
    f"{_TENANT}#WEBHOOK",
    f"{_TENANT}#DELIVERYLOG#*",
    f"{_TENANT}#DELIVERYDONE#*",
    "SYS#CALLBACKDUE",
)

Need = Literal[
    "table",  # every item and index of the table
    "callback_items",  # only the items of CALLBACK_PARTITIONS
    "enqueue",  # send to every Herald queue
    "enqueue_callbacks",  # send to the callbacks queue and, by hand, its dead-letter queue
    "forward_sms_status",  # send to the feedback queue and the forwarder's dead-letter queue
    "read_inbound_mail",  # read received mail SES inbound stored in the inbound bucket
    "read_ses_events",  # read the objects Firehose wrote SES's events to (transport firehose)
    "send_email",
    "send_sms",
    "send_push",  # publish to Herald's platform endpoints, delete a dead one
    "manage_push",  # Herald's platform applications (with their status logs) and endpoints
    "read_identities",
    "create_identities",
    "bus",
    "schedules",
]
# What each function does with AWS (by queue role; "api", "tick" and "sms_status" for the
# other three).
FUNCTION_NEEDS: dict[QueueRole | Literal["api", "tick", "sms_status"], frozenset[Need]] = {
    # Routes: everything a tenant can ask for, test sends (email and SMS) included.
    "api": frozenset(
        {
            "table",
            "enqueue",
            "send_email",
            "send_sms",
            "send_push",
            "manage_push",
            "read_identities",
            "create_identities",
            "bus",
            "schedules",
        }
    ),
    # Planner, imports (which publish contact.saved to the bus), list purges, and a
    # flow's schedules firing (a flow's end disarms its schedules; a cron trigger re-arms).
    "control": frozenset({"table", "enqueue", "bus", "schedules"}),
    "send": frozenset(
        {"table", "enqueue", "send_email", "send_sms", "send_push", "read_identities"}
    ),
    "feedback": frozenset({"table", "enqueue", "read_ses_events"}),
    "triggers": frozenset({"table", "enqueue"}),
    "callbacks": frozenset({"callback_items", "enqueue_callbacks"}),
    # The flow runtime: steps (contact changes, sends, webhooks via the callbacks queue).
    "flows": frozenset(
        {"table", "enqueue", "send_email", "send_sms", "send_push", "read_identities", "bus"}
    ),
    # Replies (pipeline.replies): match, count, exit, webhook, forward the mail to a person.
    "replies": frozenset(
        {"table", "enqueue", "send_email", "read_identities", "read_inbound_mail"}
    ),
    "tick": frozenset({"table", "enqueue"}),
    # The status forwarder (pipeline.status_logs): a log record in, a feedback message out.
    "sms_status": frozenset({"forward_sms_status"}),
}


def iam_resources(stack: Stack) -> Json:
    """The function policies and the scheduler role, keyed by logical id."""
    rendered: Json = {SCHEDULER_ROLE: _scheduler_role(stack)}
    for handler in stack.handlers:
        rendered[access_policy_id(stack, handler)] = _policy(
            handler, [stack.role_id(handler)], _statements(stack, needs_of(stack, handler))
        )
    for spec in stack.resources.queues:
        rendered[consume_policy_id(stack, spec)] = _policy(
            f"{spec.handler}-consume",
            [stack.role_id(spec.handler)],
            [_allow("ConsumeOwnQueue", CONSUME_ACTIONS, [stack.queue_arn(spec.role)])],
        )
    return rendered


def needs_of(stack: Stack, handler: str) -> frozenset[Need]:
    resources = stack.resources
    if handler == resources.api_handler:
        return FUNCTION_NEEDS["api"]
    if handler == resources.tick_handler:
        return FUNCTION_NEEDS["tick"]
    if handler == resources.sms_status_logs.handler:
        return FUNCTION_NEEDS["sms_status"]
    [spec] = [q for q in resources.queues if q.handler == handler]
    return FUNCTION_NEEDS[spec.role]


def access_policy_id(stack: Stack, handler: str) -> str:
    return f"{stack.function_id(handler)}AccessPolicy"


def consume_policy_id(stack: Stack, spec: QueueSpec) -> str:
    return f"{stack.function_id(spec.handler)}ConsumePolicy"


def _policy(name: str, role_ids: list[str], statements: list[Json]) -> Json:
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": f"herald-{name}",
            "Roles": [{"Ref": role_id} for role_id in role_ids],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }


def _allow(sid: str, actions: tuple[str, ...], resources: list[Json] | str) -> Json:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resources}


def _statements(stack: Stack, needs: frozenset[Need]) -> list[Json]:
    """The statements granting ``needs``, in a fixed order."""
    resources = stack.resources
    table = get_att(TABLE, "Arn")
    any_identity = arn("ses", "identity/*")
    statements: list[Json] = []
    if "table" in needs:
        statements.append(
            _allow("ReadWriteTable", TABLE_ACTIONS, [table, sub(f"${{{TABLE}.Arn}}/index/*")])
        )
    if "callback_items" in needs:
        statements.append(
            {
                **_allow("ReadWriteCallbackItems", TABLE_ACTIONS, [table]),
                "Condition": {
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(CALLBACK_PARTITIONS)}
                },
            }
        )
    if "enqueue" in needs:
        statements.append(
            _allow(
                "EnqueueWork", ENQUEUE_ACTIONS, [stack.queue_arn(q.role) for q in resources.queues]
            )
        )
    if "enqueue_callbacks" in needs:
        # A delivery out of retries is moved to the callbacks DLQ by hand: letting SQS
        # redrive it would POST it again on every receive.
        statements.append(
            _allow(
                "EnqueueCallbacks",
                ENQUEUE_ACTIONS,
                [stack.queue_arn("callbacks"), stack.dead_letter_queue_arn("callbacks")],
            )
        )
    if "forward_sms_status" in needs:
        statements.append(
            _allow("ForwardToFeedbackQueue", ENQUEUE_ACTIONS, [stack.queue_arn("feedback")])
        )
        # Lambda itself (the function's DeadLetterConfig) sends a log delivery it failed to
        # forward, with the function's role.
        statements.append(
            _allow(
                "DeadLetterFailedDeliveries",
                ("sqs:SendMessage",),
                [get_att(SMS_STATUS_DEAD_LETTER_QUEUE, "Arn")],
            )
        )
    if "read_inbound_mail" in needs:
        statements.append(
            _allow(
                "ReadInboundMail", ("s3:GetObject",), [bucket_arn(resources.inbound.bucket, "*")]
            )
        )
    stream = resources.configuration_set.stream
    if "read_ses_events" in needs and stream is not None:  # nothing to read with SNS
        statements.append(
            _allow(
                "ReadSesEvents",
                ("s3:GetObject",),
                [bucket_arn(stream.bucket, f"{stream.object_prefix}*")],
            )
        )
    if "send_email" in needs:
        # SES authorizes a send against the sending identity and the configuration set.
        configuration_set = arn("ses", f"configuration-set/{resources.configuration_set.name}")
        statements.append(
            _allow(
                "SendEmail",
                ("ses:SendEmail", "ses:SendRawEmail"),
                [any_identity, configuration_set],
            )
        )
    statements.extend(_sns_statements(stack, needs))
    identity_actions = (("ses:GetEmailIdentity",) if "read_identities" in needs else ()) + (
        ("ses:CreateEmailIdentity",) if "create_identities" in needs else ()
    )
    if identity_actions:
        statements.append(_allow("SendingIdentities", identity_actions, [any_identity]))
    if "bus" in needs:
        statements.append(
            _allow("PublishEvents", ("events:PutEvents",), [get_att(EVENT_BUS, "Arn")])
        )
    if "schedules" in needs:
        statements.append(
            _allow(
                "ManageSchedules",
                SCHEDULE_ACTIONS,
                [arn("scheduler", f"schedule/{resources.schedule_group}/*")],
            )
        )
        statements.append(
            {
                **_allow("PassSchedulerRole", ("iam:PassRole",), [get_att(SCHEDULER_ROLE, "Arn")]),
                "Condition": {"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
            }
        )
    return statements


def _sns_statements(stack: Stack, needs: frozenset[Need]) -> list[Json]:
    """SMS to phone numbers, push to Herald's endpoints, Herald's platform applications
    (see the module docstring for why the SMS deny is narrower next to push)."""
    statements: list[Json] = []
    herald_apps = f"{stack.settings.prefix}-*"
    if "send_sms" in needs:
        statements.append(_allow("PublishSmsToPhoneNumbers", ("sns:Publish",), "*"))
        deny: Json = {
            "Sid": "NoPublishingToTopicsOrEndpoints",
            "Effect": "Deny",
            "Action": ["sns:Publish"],
            "Resource": sub("arn:${AWS::Partition}:sns:*:*:*"),
        }
        if "send_push" in needs:  # see the module docstring
            deny["Sid"] = "NoPublishingToOtherAccounts"
            deny["Condition"] = {
                "StringNotEquals": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}}
            }
        statements.append(deny)
    if "send_push" in needs:
        statements.append(
            _allow(
                "PublishToHeraldDevices",
                ("sns:Publish", "sns:DeleteEndpoint"),
                [arn("sns", f"endpoint/*/{herald_apps}/*")],
            )
        )
    if "manage_push" in needs:
        # An application's delivery-status log groups and their subscription to the status
        # forwarder (infra.push_status), made and deleted with the application.
        statements.append(
            _allow(
                "ManageHeraldPushStatusLogs",
                (
                    "logs:CreateLogGroup",
                    "logs:PutRetentionPolicy",
                    "logs:PutSubscriptionFilter",
                    "logs:DeleteLogGroup",
                ),
                [push_status_log_groups_arn(stack)],
            )
        )
        statements.append(
            {
                **_allow(
                    "PassPushStatusRole", ("iam:PassRole",), [get_att(PUSH_STATUS_ROLE, "Arn")]
                ),
                "Condition": {"StringEquals": {"iam:PassedToService": SNS_SERVICE}},
            }
        )
        statements.append(
            _allow(
                "ManageHeraldPushApplications",
                (
                    "sns:CreatePlatformApplication",
                    "sns:SetPlatformApplicationAttributes",
                    "sns:DeletePlatformApplication",
                    "sns:CreatePlatformEndpoint",
                ),
                [arn("sns", f"app/*/{herald_apps}")],
            )
        )
        statements.append(
            _allow(
                "ManageHeraldDevices",
                ("sns:SetEndpointAttributes", "sns:DeleteEndpoint"),
                [arn("sns", f"endpoint/*/{herald_apps}/*")],
            )
        )
    return statements


def _scheduler_role(stack: Stack) -> Json:
    """The role schedules run as: it may only put messages on the control queue (or its DLQ)."""
    resources = stack.resources
    control = resources.queue("control")
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            # Named: the app builds its ARN from the name (Settings.scheduler_role_arn).
            "RoleName": resources.scheduler_role,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": SCHEDULER_SERVICE},
                        "Action": "sts:AssumeRole",
                        # Only this account's schedules; only Herald's functions may pass it.
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                        },
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "send-to-control-queue",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            _allow(
                                "SendToControlQueue",
                                ("sqs:SendMessage",),
                                [
                                    stack.queue_arn(control.role),
                                    stack.dead_letter_queue_arn(control.role),
                                ],
                            )
                        ],
                    },
                }
            ],
        },
    }
