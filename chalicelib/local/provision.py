"""Create Herald's resources in moto (or any endpoint) from chalicelib.resources.

The same definitions infra/ renders into CloudFormation. Running it twice is fine: every
step either creates or finds what is already there. Used by the local runner, by the test
fixtures and by the benchmarks.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.resources import (
    HeraldResources,
    QueueSpec,
    SesEventsStreamSpec,
    herald_resources,
)
from chalicelib.settings import QueueRole, Settings, get_settings


def provision(settings: Settings | None = None) -> HeraldResources:
    """Create (or find) every resource Herald needs; returns their definition."""
    settings = settings or get_settings()
    resources = herald_resources(settings)
    _table(resources)
    queue_arns = {spec.role: _queue(spec) for spec in resources.queues}
    topic_arns = {t.name: _topic(t.name, queue_arns[t.delivers_to]) for t in resources.topics}
    _event_bus(resources, queue_arns)
    _schedule_group(resources)
    _configuration_set(resources, _event_destination(resources, settings, topic_arns, queue_arns))
    _bucket(resources.inbound.bucket, settings.region)
    if settings.push_delivery_status:
        status_forwarder(settings)
    return resources


def status_forwarder(settings: Settings | None = None) -> str:
    """The status forwarder as a Lambda function (its ARN), for push applications' log
    subscriptions to name: CloudWatch Logs, and moto, refuse a subscription to a function
    that does not exist. Its code is a stub: the embedded stack runs app.py's handler
    in-process (the feedback simulator invokes it as a subscription would)."""
    settings = settings or get_settings()
    handler = herald_resources(settings).sms_status_logs.handler
    name = settings.function_name(handler)
    functions = client("lambda")
    try:
        return str(functions.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except ClientError as error:
        if not _exists(error, "ResourceNotFoundException"):
            raise
    iam = client("iam")
    role_name = f"{name}-role"
    try:
        role = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except ClientError as error:
        if not _exists(error, "NoSuchEntity"):
            raise
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")
    made = functions.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler=f"app.{handler}",
        Code={"ZipFile": code.getvalue()},
    )
    return str(made["FunctionArn"])


def _bucket(name: str, region: str) -> None:
    """A bucket: SES inbound's for received mail, or Firehose's for SES's events."""
    s3 = client("s3")
    where = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    try:
        s3.create_bucket(Bucket=name, **where)
    except ClientError as error:
        if not _exists(error, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _event_destination(
    resources: HeraldResources,
    settings: Settings,
    topic_arns: dict[str, str],
    queue_arns: dict[QueueRole, str],
) -> dict[str, Any]:
    """Where the configuration set publishes: its topic, or its Firehose stream (made here
    with its bucket, which notifies the feedback queue of each object)."""
    spec = resources.configuration_set
    if spec.stream is None:
        assert spec.topic_name is not None  # one or the other (ConfigurationSetSpec)
        return {"SNSDestination": {"TopicARN": topic_arns[spec.topic_name]}}
    stream = spec.stream
    _bucket(stream.bucket, settings.region)
    _notify_queue_of_objects(stream, queue_arns[stream.delivers_to])
    return {
        "KinesisFirehoseDestination": {
            "IAMRoleARN": _role_arn(settings, stream.publisher_role),
            "DeliveryStreamARN": _delivery_stream(stream, settings),
        }
    }


def _role_arn(settings: Settings, name: str) -> str:
    """The ARN of a role the stack makes (moto assumes no roles: it is never created here)."""
    return f"arn:aws:iam::{settings.account_id}:role/{name}"


def _notify_queue_of_objects(stream: SesEventsStreamSpec, queue_arn: str) -> None:
    """S3 notifies the queue of each object the stream writes. Set once: S3 sends the queue
    a test event (``s3:TestEvent``) whenever the configuration is put."""
    s3 = client("s3")
    configured = s3.get_bucket_notification_configuration(Bucket=stream.bucket)
    if any(q["QueueArn"] == queue_arn for q in configured.get("QueueConfigurations", [])):
        return
    s3.put_bucket_notification_configuration(
        Bucket=stream.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": stream.object_prefix}]}
                    },
                }
            ]
        },
    )


def _delivery_stream(stream: SesEventsStreamSpec, settings: Settings) -> str:
    """The Firehose stream into the bucket (its ARN). moto writes one object per
    PutRecordBatch, at once: its buffering hints are kept but not applied."""
    firehose = client("firehose")
    try:
        made = firehose.create_delivery_stream(
            DeliveryStreamName=stream.stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": _role_arn(settings, stream.delivery_role),
                "BucketARN": f"arn:aws:s3:::{stream.bucket}",
                "Prefix": stream.object_prefix,
                "BufferingHints": {
                    "SizeInMBs": stream.buffer_mib,
                    "IntervalInSeconds": stream.buffer_seconds,
                },
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
    except ClientError as error:
        if not _exists(error, "ResourceInUseException"):
            raise
        described = firehose.describe_delivery_stream(DeliveryStreamName=stream.stream)
        return str(described["DeliveryStreamDescription"]["DeliveryStreamARN"])
    return str(made["DeliveryStreamARN"])


def _exists(error: ClientError, *codes: str) -> bool:
    return error.response["Error"]["Code"] in codes


def _table(resources: HeraldResources) -> None:
    spec = resources.table
    ddb = client("dynamodb")
    attributes = {spec.partition_key, spec.sort_key}
    for index in spec.indexes:
        attributes.update({index.partition_key, index.sort_key})
    try:
        ddb.create_table(
            TableName=spec.name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
            ],
            KeySchema=[
                {"AttributeName": spec.partition_key, "KeyType": "HASH"},
                {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.partition_key, "KeyType": "HASH"},
                        {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in spec.indexes
            ],
        )
    except ClientError as error:
        if not _exists(error, "ResourceInUseException"):
            raise
    ddb.get_waiter("table_exists").wait(TableName=spec.name, WaiterConfig={"Delay": 1})
    ttl = ddb.describe_time_to_live(TableName=spec.name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=spec.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )


def _queue_arn(url: str) -> str:
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _queue(spec: QueueSpec) -> str:
    sqs = client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=spec.dead_letter_name,
        Attributes={"MessageRetentionPeriod": str(spec.dead_letter_retention_seconds)},
    )["QueueUrl"]
    dlq_arn = _queue_arn(dlq_url)
    attributes = {
        "VisibilityTimeout": str(spec.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(spec.max_receive_count)}
        ),
    }
    url = sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
    # create_queue does not change an existing queue's attributes: make them true anyway.
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return _queue_arn(url)


def _topic(name: str, queue_arn: str) -> str:
    sns = client("sns")
    topic_arn = str(sns.create_topic(Name=name)["TopicArn"])
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Endpoint"] == queue_arn for s in subscriptions):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn


def _event_bus(resources: HeraldResources, queue_arns: dict[QueueRole, str]) -> None:
    events = client("events")
    try:
        events.create_event_bus(Name=resources.event_bus)
    except ClientError as error:
        if not _exists(error, "ResourceAlreadyExistsException"):
            raise
    for rule in resources.rules:
        events.put_rule(
            Name=rule.name,
            EventBusName=resources.event_bus,
            EventPattern=json.dumps(rule.event_pattern),
            State="ENABLED",
        )
        events.put_targets(
            Rule=rule.name,
            EventBusName=resources.event_bus,
            Targets=[{"Id": rule.delivers_to, "Arn": queue_arns[rule.delivers_to]}],
        )


def _schedule_group(resources: HeraldResources) -> None:
    scheduler = client("scheduler")
    try:
        scheduler.create_schedule_group(Name=resources.schedule_group)
    except ClientError as error:
        if not _exists(error, "ConflictException"):
            raise


def _configuration_set(resources: HeraldResources, publishes_to: dict[str, Any]) -> None:
    spec = resources.configuration_set
    # moto's SES v2 has no event destinations; its SES v1 has, and both share one backend.
    ses = client("ses")
    try:
        ses.create_configuration_set(ConfigurationSet={"Name": spec.name})
    except ClientError as error:
        if not _exists(error, "ConfigurationSetAlreadyExists", "AlreadyExists"):
            raise
    destination: dict[str, Any] = {
        "Name": spec.event_destination,
        "Enabled": True,
        "MatchingEventTypes": list(spec.camel_case_event_types),
        **publishes_to,
    }
    try:
        ses.create_configuration_set_event_destination(
            ConfigurationSetName=spec.name, EventDestination=destination
        )
    except ClientError as error:
        if not _exists(error, "EventDestinationAlreadyExists", "AlreadyExists"):
            raise
