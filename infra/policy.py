"""Least-privilege IAM for Herald's functions and for the role EventBridge Scheduler assumes.

Chalice gives every function its own execution role (``autogen_policy`` is off), holding only
``.chalice/policy-baseline.json``: logs, traces and metrics, which name no Herald resource.
Everything that does name one is granted here, by ARN from this stack's own resources:

* ``FunctionAccessPolicy``, on every role: the table and its indexes, sending to Herald's
  queues, SES sending through Herald's configuration set, PutEvents on Herald's bus, schedules
  in Herald's group (and passing the scheduler role to them), and SNS publishing.
* ``<Function>ConsumePolicy``, on a queue consumer's role only: receiving and deleting from
  its own queue.

The one resource wildcard is ``sns:Publish``: an SMS sent to a phone number has no ARN to name.
"""

from __future__ import annotations

from chalicelib.resources import QueueSpec
from infra.naming import (
    EVENT_BUS,
    FUNCTION_POLICY,
    SCHEDULER_ROLE,
    TABLE,
    Json,
    Stack,
    arn,
    get_att,
    sub,
)

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


def iam_resources(stack: Stack) -> Json:
    """The function policies and the scheduler role, keyed by logical id."""
    rendered: Json = {
        FUNCTION_POLICY: _policy(
            "functions", [stack.role_id(h) for h in stack.handlers], _function_statements(stack)
        ),
        SCHEDULER_ROLE: _scheduler_role(stack),
    }
    for spec in stack.resources.queues:
        rendered[consume_policy_id(stack, spec)] = _policy(
            "consume",
            [stack.role_id(spec.handler)],
            [_allow("ConsumeOwnQueue", CONSUME_ACTIONS, [stack.queue_arn(spec.role)])],
        )
    return rendered


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


def _function_statements(stack: Stack) -> list[Json]:
    resources = stack.resources
    configuration_set = arn("ses", f"configuration-set/{resources.configuration_set.name}")
    any_identity = arn("ses", "identity/*")
    return [
        _allow(
            "ReadWriteTable",
            TABLE_ACTIONS,
            [get_att(TABLE, "Arn"), sub(f"${{{TABLE}.Arn}}/index/*")],
        ),
        _allow("EnqueueWork", ENQUEUE_ACTIONS, [stack.queue_arn(q.role) for q in resources.queues]),
        # A webhook out of retries is moved to the callbacks DLQ by hand: letting SQS redrive
        # it would POST it again on every receive.
        _allow(
            "DeadLetterExhaustedCallbacks",
            ENQUEUE_ACTIONS,
            [stack.dead_letter_queue_arn("callbacks")],
        ),
        # SES authorizes a send against the sending identity and the configuration set.
        _allow(
            "SendEmail",
            ("ses:SendEmail", "ses:SendRawEmail"),
            [any_identity, configuration_set],
        ),
        _allow(
            "ReadAndVerifySendingIdentities",
            ("ses:GetEmailIdentity", "ses:CreateEmailIdentity"),
            [any_identity],
        ),
        _allow("PublishEvents", ("events:PutEvents",), [get_att(EVENT_BUS, "Arn")]),
        _allow(
            "ManageSchedules",
            SCHEDULE_ACTIONS,
            [arn("scheduler", f"schedule/{resources.schedule_group}/*")],
        ),
        {
            **_allow("PassSchedulerRole", ("iam:PassRole",), [get_att(SCHEDULER_ROLE, "Arn")]),
            "Condition": {"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
        },
        # Direct-to-phone SMS has no resource ARN; this also covers Herald's topics.
        _allow("PublishSmsAndNotifications", ("sns:Publish",), "*"),
    ]


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
