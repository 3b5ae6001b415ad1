"""The AWS resources Herald's code talks to, with the resource policies that let AWS feed them.

Table, queues with their dead-letter queues, SNS topics subscribed to the feedback queue, the
event bus with its rules, the schedule group and the SES configuration set with its event
destination (the SES events topic, or the Firehose stream of ``infra.ses_events``): each
rendered from its spec in ``chalicelib.resources`` with the values the local provisioner uses.
"""

from __future__ import annotations

from collections import defaultdict

from chalicelib.resources import QueueSpec, RuleSpec, TableSpec, TopicSpec
from infra.naming import (
    CONFIGURATION_SET,
    EVENT_BUS,
    SCHEDULE_GROUP,
    TABLE,
    Json,
    Stack,
    arn,
    get_att,
    ref,
)
from infra.ses_events import s3_may_send, stream_destination

# Data outlives a stack update that would replace it, and a stack deletion.
_KEEP = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}


def service_resources(stack: Stack) -> Json:
    """Every data and messaging resource, keyed by logical id."""
    resources = stack.resources
    rendered: Json = {TABLE: _table(resources.table)}
    for spec in resources.queues:
        rendered.update(_queue_pair(stack, spec))
    rendered.update(_queue_policies(stack))
    for topic in resources.topics:
        rendered.update(_topic(stack, topic))
    rendered[EVENT_BUS] = {
        "Type": "AWS::Events::EventBus",
        "Properties": {"Name": resources.event_bus},
    }
    for rule in resources.rules:
        rendered[stack.rule_id(rule.name)] = _rule(stack, rule)
    rendered[SCHEDULE_GROUP] = {
        "Type": "AWS::Scheduler::ScheduleGroup",
        "Properties": {"Name": resources.schedule_group},
    }
    rendered.update(_configuration_set(stack))
    return rendered


def _table(spec: TableSpec) -> Json:
    attributes = {spec.partition_key, spec.sort_key}
    for index in spec.indexes:
        attributes.update({index.partition_key, index.sort_key})
    return {
        "Type": "AWS::DynamoDB::Table",
        **_KEEP,
        "Properties": {
            "TableName": spec.name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
            ],
            "KeySchema": _key_schema(spec.partition_key, spec.sort_key),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": index.name,
                    "KeySchema": _key_schema(index.partition_key, index.sort_key),
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in spec.indexes
            ],
            "TimeToLiveSpecification": {"AttributeName": spec.ttl_attribute, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    }


def _key_schema(partition_key: str, sort_key: str) -> list[Json]:
    return [
        {"AttributeName": partition_key, "KeyType": "HASH"},
        {"AttributeName": sort_key, "KeyType": "RANGE"},
    ]


def _queue_pair(stack: Stack, spec: QueueSpec) -> Json:
    # SSE-SQS (not a KMS key) so SNS, EventBridge and Scheduler can deliver without key grants.
    return {
        stack.dead_letter_queue_id(spec.role): {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": spec.dead_letter_name,
                "MessageRetentionPeriod": spec.dead_letter_retention_seconds,
                "SqsManagedSseEnabled": True,
            },
        },
        stack.queue_id(spec.role): {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": spec.name,
                "VisibilityTimeout": spec.visibility_timeout_seconds,
                "MessageRetentionPeriod": spec.retention_seconds,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": stack.dead_letter_queue_arn(spec.role),
                    "maxReceiveCount": spec.max_receive_count,
                },
            },
        },
    }


def _queue_policies(stack: Stack) -> Json:
    """Let each topic and rule, and the SES events bucket, send to the queue it delivers
    to, and nothing else send (one policy per queue: a second would replace the first)."""
    senders: dict[str, list[Json]] = defaultdict(list)
    for topic in stack.resources.topics:
        senders[stack.queue_id(topic.delivers_to)].append(
            _may_send("sns.amazonaws.com", ref(stack.topic_id(topic.name)))
        )
    for rule in stack.resources.rules:
        rule_arn = get_att(stack.rule_id(rule.name), "Arn")
        # Events EventBridge cannot deliver go to the target queue's dead-letter queue.
        for queue_id in (
            stack.queue_id(rule.delivers_to),
            stack.dead_letter_queue_id(rule.delivers_to),
        ):
            senders[queue_id].append(_may_send("events.amazonaws.com", rule_arn))
    stream = stack.resources.configuration_set.stream
    if stream is not None:
        senders[stack.queue_id(stream.delivers_to)].append(s3_may_send(stream))
    return {
        f"{queue_id}Policy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [ref(queue_id)],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {**statement, "Resource": get_att(queue_id, "Arn")}
                        for statement in statements
                    ],
                },
            },
        }
        for queue_id, statements in senders.items()
    }


def _may_send(service: str, source_arn: Json) -> Json:
    return {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sqs:SendMessage",
        "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
    }


def _topic(stack: Stack, topic: TopicSpec) -> Json:
    topic_id = stack.topic_id(topic.name)
    publish_condition: Json = {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    configuration_set = stack.resources.configuration_set
    if topic.name == configuration_set.topic_name:
        publish_condition["ArnLike"] = {
            "aws:SourceArn": arn("ses", f"configuration-set/{configuration_set.name}")
        }
    return {
        topic_id: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": topic.name}},
        f"{topic_id}Policy": {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {
                "Topics": [ref(topic_id)],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": topic.published_by},
                            "Action": "sns:Publish",
                            "Resource": ref(topic_id),
                            "Condition": publish_condition,
                        }
                    ],
                },
            },
        },
        f"{topic_id}Subscription": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": ref(topic_id),
                "Protocol": "sqs",
                "Endpoint": stack.queue_arn(topic.delivers_to),
                # The feedback worker reads SNS envelopes (Type, Message, TopicArn).
                "RawMessageDelivery": False,
            },
        },
    }


def _rule(stack: Stack, rule: RuleSpec) -> Json:
    return {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Name": rule.name,
            "EventBusName": ref(EVENT_BUS),
            "EventPattern": rule.event_pattern,
            "State": "ENABLED",
            "Targets": [
                {
                    "Id": rule.delivers_to,
                    "Arn": stack.queue_arn(rule.delivers_to),
                    "DeadLetterConfig": {"Arn": stack.dead_letter_queue_arn(rule.delivers_to)},
                }
            ],
        },
    }


def _configuration_set(stack: Stack) -> Json:
    spec = stack.resources.configuration_set
    # SES checks that it may publish when the destination is created.
    if spec.topic_name is not None:
        topic_id = stack.topic_id(spec.topic_name)
        destination: Json = {"SnsDestination": {"TopicARN": ref(topic_id)}}
        depends_on = [f"{topic_id}Policy"]
    else:  # the stream and the publisher role, which the destination refers to
        destination, depends_on = stream_destination(stack), []
    return {
        CONFIGURATION_SET: {
            "Type": "AWS::SES::ConfigurationSet",
            "Properties": {
                "Name": spec.name,
                "ReputationOptions": {"ReputationMetricsEnabled": True},
                "SendingOptions": {"SendingEnabled": True},
                "SuppressionOptions": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
            },
        },
        f"{CONFIGURATION_SET}EventDestination": {
            "Type": "AWS::SES::ConfigurationSetEventDestination",
            **({"DependsOn": depends_on} if depends_on else {}),
            "Properties": {
                "ConfigurationSetName": ref(CONFIGURATION_SET),
                "EventDestination": {
                    "Name": spec.event_destination,
                    "Enabled": True,
                    "MatchingEventTypes": list(spec.camel_case_event_types),
                    **destination,
                },
            },
        },
    }
