"""The AWS stack as rendered by ``python -m infra.render``: valid, wired, and least-privilege.

The template is rendered once for the module (``chalice package`` builds the deployment zip,
~15 s) and every test reads the final ``sam.json``, finding things by what they are (a queue by
its ``QueueName``, a function by its ``Handler``) rather than by the ids infra chose, so the
tests check the stack, not the renderer's bookkeeping.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from chalicelib.resources import HeraldResources, QueueSpec, herald_resources
from chalicelib.settings import Settings
from infra.naming import Stack, setting_variable
from infra.render import lint, render
from infra.replies import reply_resources
from infra.sms_status import SMS_STATUS_ROLE
from infra.template import merge_template

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent.parent
STAGE = "dev"
# Rendered as a deployer would with SES's events through Firehose; the SNS choice's
# resources are checked from the merge template (test_with_sns_ses_publishes_to_its_topic).
TRANSPORT = "firehose"
SETTINGS = Settings(stage=STAGE, ses_events_transport=TRANSPORT)
RESOURCES: HeraldResources = herald_resources(SETTINGS)


@pytest.fixture(scope="module")
def template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(setting_variable("ses_events_transport"), TRANSPORT)
        return render(STAGE, tmp_path_factory.mktemp("infra"), region="us-east-1")


@pytest.fixture(scope="module")
def template(template_path: Path) -> Json:
    return json.loads(template_path.read_text())


def of_type(template: Json, kind: str) -> dict[str, Json]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def queue_id(template: Json, name: str) -> str:
    [found] = [
        k
        for k, v in of_type(template, "AWS::SQS::Queue").items()
        if v["Properties"]["QueueName"] == name
    ]
    return found


def function_of(template: Json, handler: str) -> tuple[str, Json]:
    """The function running ``handler`` from app.py (the REST API runs the app itself)."""
    entry_point = "app.app" if handler == RESOURCES.api_handler else f"app.{handler}"
    [found] = [
        (k, v)
        for k, v in of_type(template, "AWS::Serverless::Function").items()
        if v["Properties"]["Handler"] == entry_point
    ]
    return found


def references(value: Any) -> set[str]:
    """Logical ids ``value`` refers to through Ref, GetAtt and Sub."""
    if isinstance(value, list):
        return set().union(*(references(v) for v in value))
    if not isinstance(value, dict):
        return set()
    if set(value) == {"Ref"}:
        return {value["Ref"]}
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return {target[0] if isinstance(target, list) else target.split(".")[0]}
    if set(value) == {"Fn::Sub"}:
        text, variables = (
            (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
        )
        names = {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
        return (names - set(variables)) | references(variables)
    return set().union(*(references(v) for v in value.values()))


def dependency_graph(template: Json) -> nx.DiGraph:
    resources = template["Resources"]
    graph = nx.DiGraph()
    for name, resource in resources.items():
        depends_on = resource.get("DependsOn", [])
        targets = references(resource.get("Properties", {})) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
        graph.add_node(name)
        graph.add_edges_from((name, t) for t in targets if t in resources)
    return graph


def statements_for_role(template: Json, role_id: str) -> list[Json]:
    role = template["Resources"][role_id]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(statements: list[Json], action: str, resource: Any) -> bool:
    return any(
        s["Effect"] == "Allow"
        and action in as_list(s["Action"])
        and resource in as_list(s["Resource"])
        for s in statements
    )


def test_cfn_lint_finds_no_errors_or_warnings(template_path: Path) -> None:
    findings = lint(template_path, "us-east-1")
    serious = [str(f) for f in findings if f.rule.id[0] in "EW"]
    assert serious == []


def test_template_has_no_dependency_cycle(template: Json) -> None:
    # cfn-lint does not follow references inside SAM resources; CloudFormation refuses cycles.
    graph = dependency_graph(template)
    assert nx.is_directed_acyclic_graph(graph), nx.find_cycle(graph)


@pytest.mark.parametrize("spec", RESOURCES.queues, ids=lambda s: s.role)
def test_queue_has_a_dead_letter_queue_and_outlasts_its_consumer(
    template: Json, spec: QueueSpec
) -> None:
    queue = template["Resources"][queue_id(template, spec.name)]["Properties"]
    dead_letter_id = queue_id(template, spec.dead_letter_name)
    _, consumer = function_of(template, spec.handler)
    timeout = consumer["Properties"]["Timeout"]
    assert timeout == spec.consumer_timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["MessageRetentionPeriod"] == spec.retention_seconds
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter_id, "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5


def test_the_planner_gets_a_full_vcpu_and_the_other_functions_the_app_default(
    template: Json,
) -> None:
    """The planner is one CPU-bound chain of pages: its memory sets the planning rate."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for spec in RESOURCES.queues:
        _, function = function_of(template, spec.handler)
        expected = 1769 if spec.role == "control" else config["lambda_memory_size"]
        assert function["Properties"]["MemorySize"] == expected, spec.role


@pytest.mark.parametrize("spec", RESOURCES.queues, ids=lambda s: s.role)
def test_consumer_reports_batch_item_failures_from_its_own_queue(
    template: Json, spec: QueueSpec
) -> None:
    function_id, function = function_of(template, spec.handler)
    [event] = [e for e in function["Properties"]["Events"].values() if e["Type"] == "SQS"]
    properties = event["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # chalice's reference, by name, to the queue this template creates with that name.
    assert properties["Queue"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{spec.name}"
    }
    assert properties["BatchSize"] == spec.batch_size
    # ... and the function (so its event source mapping) is created after the queue exists.
    assert nx.has_path(dependency_graph(template), function_id, queue_id(template, spec.name))


def test_send_workers_are_capped_so_their_paced_rates_sum_to_the_ses_rate(
    template: Json,
) -> None:
    _, sender = function_of(template, RESOURCES.queue("send").handler)
    assert sender["Properties"]["ReservedConcurrentExecutions"] == SETTINGS.send_workers
    # ... the workers pace to that number, and the queue's mapping never invokes past it.
    variables = sender["Properties"]["Environment"]["Variables"]
    assert variables["HERALD_SEND_WORKERS"] == str(SETTINGS.send_workers)
    [event] = [e for e in sender["Properties"]["Events"].values() if e["Type"] == "SQS"]
    assert event["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": max(2, SETTINGS.send_workers)
    }
    for spec in RESOURCES.queues:
        if spec.role != "send":
            _, other = function_of(template, spec.handler)
            assert "ReservedConcurrentExecutions" not in other["Properties"]


def test_only_the_queue_consumers_have_sqs_event_sources(template: Json) -> None:
    functions = of_type(template, "AWS::Serverless::Function").values()
    sqs_events = [
        e
        for f in functions
        for e in f["Properties"].get("Events", {}).values()
        if e["Type"] == "SQS"
    ]
    assert len(sqs_events) == len(RESOURCES.queues)


def test_table_has_ttl_indexes_backups_and_encryption(template: Json) -> None:
    [table] = of_type(template, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    spec = RESOURCES.table
    assert properties["TableName"] == spec.name
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [i["IndexName"] for i in properties["GlobalSecondaryIndexes"]] == [
        i.name for i in spec.indexes
    ]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_no_wildcard_resource_for_table_queue_or_topic_actions(template: Json) -> None:
    roles = of_type(template, "AWS::IAM::Role")
    statements = [s for role_id in roles for s in statements_for_role(template, role_id)]
    wildcard_actions = {
        action
        for s in statements
        if s["Effect"] == "Allow" and "*" in as_list(s["Resource"])
        for action in as_list(s["Action"])
    }
    # X-Ray and PutMetricData have no resources; an SMS to a phone number has no ARN.
    assert wildcard_actions == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "cloudwatch:PutMetricData",
        "sns:Publish",
    }
    assert not [a for s in statements for a in as_list(s["Action"]) if a.endswith("*")]


@pytest.mark.parametrize("spec", RESOURCES.queues, ids=lambda s: s.role)
def test_consumer_may_receive_only_from_its_own_queue(template: Json, spec: QueueSpec) -> None:
    _, function = function_of(template, spec.handler)
    statements = statements_for_role(template, function["Properties"]["Role"]["Fn::GetAtt"][0])
    for other in RESOURCES.queues:
        arn = {"Fn::GetAtt": [queue_id(template, other.name), "Arn"]}
        assert grants(statements, "sqs:ReceiveMessage", arn) == (other == spec)
        # Work may be queued anywhere, except by the callbacks worker (its own queue only).
        sends = spec.role != "callbacks" or other == spec
        assert grants(statements, "sqs:SendMessage", arn) == sends


def role_statements(template: Json, handler: str) -> list[Json]:
    _, function = function_of(template, handler)
    return statements_for_role(template, function["Properties"]["Role"]["Fn::GetAtt"][0])


def test_the_api_may_use_the_table_the_bus_schedules_and_send(template: Json) -> None:
    statements = role_statements(template, RESOURCES.api_handler)
    [table_id] = of_type(template, "AWS::DynamoDB::Table")
    [bus_id] = of_type(template, "AWS::Events::EventBus")
    [scheduler_role_id] = [
        k
        for k, v in of_type(template, "AWS::IAM::Role").items()
        if v["Properties"].get("RoleName") == SETTINGS.scheduler_role_name
    ]
    assert grants(statements, "dynamodb:PutItem", {"Fn::GetAtt": [table_id, "Arn"]})
    assert grants(statements, "dynamodb:Query", {"Fn::Sub": f"${{{table_id}.Arn}}/index/*"})
    assert grants(statements, "events:PutEvents", {"Fn::GetAtt": [bus_id, "Arn"]})
    assert grants(statements, "iam:PassRole", {"Fn::GetAtt": [scheduler_role_id, "Arn"]})
    assert grants(
        statements,
        "scheduler:CreateSchedule",
        {
            "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:"
            f"schedule/{RESOURCES.schedule_group}/*"
        },
    )
    assert grants(
        statements,
        "ses:SendRawEmail",
        {
            "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
            f"configuration-set/{RESOURCES.configuration_set.name}"
        },
    )


def test_each_function_has_its_own_access_policy(template: Json) -> None:
    """Not one policy attached to every role: each role's grants are its function's."""
    for policy_id, policy in of_type(template, "AWS::IAM::Policy").items():
        assert len(policy["Properties"]["Roles"]) == 1, policy_id
    handlers = [
        RESOURCES.api_handler,
        RESOURCES.tick_handler,
        *(q.handler for q in RESOURCES.queues),
    ]
    for handler in handlers:
        function_id, function = function_of(template, handler)
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert f"{function_id}AccessPolicy" in function["DependsOn"]
        assert template["Resources"][f"{function_id}AccessPolicy"]["Properties"]["Roles"] == [
            {"Ref": role_id}
        ]


def test_the_callbacks_worker_holds_no_sending_and_only_its_own_items(template: Json) -> None:
    """It talks to URLs tenants choose: nothing of SES, SNS, the bus or the scheduler, and
    the table only under a leading-keys condition naming callback and webhook items."""
    statements = role_statements(template, RESOURCES.queue("callbacks").handler)
    actions = {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    assert not {
        a for a in actions if a.split(":")[0] in {"ses", "sns", "events", "scheduler", "iam"}
    }
    table_statements = [
        s for s in statements if any(a.startswith("dynamodb:") for a in s["Action"])
    ]
    assert table_statements
    for statement in table_statements:
        keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        assert keys and all("CALLBACK" in k or "WEBHOOK" in k or "DELIVERY" in k for k in keys)
        assert all("/index/" not in json.dumps(r) for r in as_list(statement["Resource"]))
    queues = [r for s in statements if "sqs:SendMessage" in s["Action"] for r in s["Resource"]]
    assert queues == [
        {"Fn::GetAtt": [queue_id(template, name), "Arn"]}
        for name in (
            RESOURCES.queue("callbacks").name,
            RESOURCES.queue("callbacks").dead_letter_name,
        )
    ]


def test_only_the_senders_publish_sms_and_no_function_publishes_to_a_topic(template: Json) -> None:
    senders = {
        RESOURCES.api_handler,
        RESOURCES.queue("send").handler,
        RESOURCES.queue("flows").handler,  # a flow's send step sends from its worker
    }
    email_only = {RESOURCES.queue("replies").handler}  # forwards a reply to a person
    handlers = [
        RESOURCES.api_handler,
        RESOURCES.tick_handler,
        *(q.handler for q in RESOURCES.queues),
    ]
    for handler in handlers:
        statements = role_statements(template, handler)
        publishes = grants(statements, "sns:Publish", "*")
        assert publishes == (handler in senders), handler
        sends_email = any("ses:SendEmail" in as_list(s["Action"]) for s in statements)
        assert sends_email == (handler in senders | email_only), handler
        if publishes:  # "*" is for phone numbers (no ARN); every topic/endpoint ARN is denied
            [deny] = [s for s in statements if s["Effect"] == "Deny"]
            assert deny["Action"] == ["sns:Publish"]
            assert deny["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:*"}


def test_the_api_stage_is_throttled(template: Json) -> None:
    [setting] = template["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == SETTINGS.api_throttle_rate
    assert setting["ThrottlingBurstLimit"] == SETTINGS.api_throttle_burst
    responses = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"
    ]
    assert responses["THROTTLED"]["statusCode"] == "429"


def test_scheduler_role_may_only_put_work_on_the_control_queue(template: Json) -> None:
    [role] = [
        v
        for v in of_type(template, "AWS::IAM::Role").values()
        if v["Properties"].get("RoleName") == SETTINGS.scheduler_role_name
    ]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    [statement] = [
        s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
    ]
    control = RESOURCES.queue("control")
    assert statement["Action"] == ["sqs:SendMessage"]
    assert statement["Resource"] == [
        {"Fn::GetAtt": [queue_id(template, name), "Arn"]}
        for name in (control.name, control.dead_letter_name)
    ]


def test_every_function_gets_its_settings_from_the_stack(template: Json) -> None:
    for function in of_type(template, "AWS::Serverless::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["HERALD_STAGE"] == STAGE
        assert variables["HERALD_ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}
        assert variables["HERALD_REGION"] == {"Ref": "AWS::Region"}
        [_, custom, api_url] = variables["HERALD_PUBLIC_BASE_URL"]["Fn::If"]
        assert custom == {"Ref": "PublicBaseUrl"}
        assert api_url == {
            "Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
        }
        assert variables["HERALD_SES_MAX_SEND_RATE"] == {"Ref": "SesMaxSendRate"}
        assert variables["POWERTOOLS_SERVICE_NAME"] == "herald"
        assert function["Properties"]["Tracing"] == "Active"


def test_topics_deliver_sns_envelopes_to_their_queues(template: Json) -> None:
    topics = {
        v["Properties"]["TopicName"]: k
        for k, v in of_type(template, "AWS::SNS::Topic").items()
        if "TopicName" in v["Properties"]
    }
    for spec in RESOURCES.topics:
        queue_ref = queue_id(template, RESOURCES.queue(spec.delivers_to).name)
        [queue_policy] = [
            v["Properties"]
            for v in of_type(template, "AWS::SQS::QueuePolicy").values()
            if v["Properties"]["Queues"] == [{"Ref": queue_ref}]
        ]
        topic_id = topics[spec.name]
        [subscription] = [
            v["Properties"]
            for v in of_type(template, "AWS::SNS::Subscription").values()
            if v["Properties"]["TopicArn"] == {"Ref": topic_id}
        ]
        assert subscription["Endpoint"] == {"Fn::GetAtt": [queue_ref, "Arn"]}
        assert subscription["RawMessageDelivery"] is False
        assert {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}} in [
            s["Condition"] for s in queue_policy["PolicyDocument"]["Statement"]
        ]
        [topic_policy] = [
            v["Properties"]
            for v in of_type(template, "AWS::SNS::TopicPolicy").values()
            if v["Properties"]["Topics"] == [{"Ref": topic_id}]
        ]
        [publisher] = topic_policy["PolicyDocument"]["Statement"]
        assert publisher["Principal"] == {"Service": spec.published_by}


# not "send": the ledger records that SES accepted a message, so the event is only cost
PUBLISHED_EVENT_TYPES = {
    "reject",
    "bounce",
    "complaint",
    "delivery",
    "open",
    "click",
    "renderingFailure",
    "deliveryDelay",
    "subscription",
}


def test_ses_publishes_every_event_type_herald_acts_on_to_its_stream(template: Json) -> None:
    spec = RESOURCES.configuration_set
    [configuration_set] = of_type(template, "AWS::SES::ConfigurationSet").values()
    assert configuration_set["Properties"]["Name"] == spec.name
    [destination] = of_type(template, "AWS::SES::ConfigurationSetEventDestination").values()
    event_destination = destination["Properties"]["EventDestination"]
    assert set(event_destination["MatchingEventTypes"]) == PUBLISHED_EVENT_TYPES
    assert "SnsDestination" not in event_destination
    firehose = event_destination["KinesisFirehoseDestination"]
    [stream_id] = references(firehose["DeliveryStreamARN"])
    stream = template["Resources"][stream_id]
    assert stream["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    assert spec.stream is not None
    assert stream["Properties"]["DeliveryStreamName"] == spec.stream.stream
    # SES may only put records on this stream, and only for this account's set.
    [role_id] = references(firehose["IAMRoleARN"])
    role = template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ses.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert references(trust["Condition"]["ArnLike"]["aws:SourceArn"]) == {
        "AWS::Partition",
        "AWS::Region",
        "AWS::AccountId",
    }
    assert spec.name in trust["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    [put] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert put["Action"] == ["firehose:PutRecordBatch"]
    assert put["Resource"] == [{"Fn::GetAtt": [stream_id, "Arn"]}]
    # No SES events topic: SES publishes nothing to SNS.
    topic_names = {
        t["Properties"].get("TopicName") for t in of_type(template, "AWS::SNS::Topic").values()
    }
    assert SETTINGS.ses_events_topic_name not in topic_names


def test_the_stream_buffers_events_into_the_bucket_with_its_own_role(template: Json) -> None:
    spec = RESOURCES.configuration_set.stream
    assert spec is not None
    [(stream_id, stream)] = of_type(template, "AWS::KinesisFirehose::DeliveryStream").items()
    properties = stream["Properties"]
    assert properties["DeliveryStreamType"] == "DirectPut"
    s3 = properties["ExtendedS3DestinationConfiguration"]
    assert s3["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 60}
    assert s3["CompressionFormat"] == "UNCOMPRESSED"
    assert s3["Prefix"] == spec.object_prefix == "ses-events/"
    [bucket_id] = references(s3["BucketARN"])
    bucket = template["Resources"][bucket_id]["Properties"]
    assert bucket["BucketName"] == spec.bucket
    [role_id] = references(s3["RoleARN"])
    role = template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
    [delivery] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert set(delivery["Action"]) == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
    }
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::{spec.bucket}"
    assert delivery["Resource"] == [{"Fn::Sub": bucket_arn}, {"Fn::Sub": f"{bucket_arn}/*"}]
    # Events stuck in the stream (a role or bucket problem) stall feedback: an alarm says so.
    [stalled] = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/Firehose"
    ]
    assert stalled["MetricName"] == "DeliveryToS3.DataFreshness"
    assert stalled["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": stream_id}}]
    assert stalled["Threshold"] > s3["BufferingHints"]["IntervalInSeconds"]


def test_the_events_bucket_is_private_expires_objects_and_notifies_the_feedback_queue(
    template: Json,
) -> None:
    spec = RESOURCES.configuration_set.stream
    assert spec is not None
    [(bucket_id, bucket)] = [
        (k, v)
        for k, v in of_type(template, "AWS::S3::Bucket").items()
        if v["Properties"]["BucketName"] == spec.bucket
    ]
    properties = bucket["Properties"]
    assert all(properties["PublicAccessBlockConfiguration"].values())
    [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    [rule] = properties["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 3
    feedback = queue_id(template, RESOURCES.queue("feedback").name)
    [notification] = properties["NotificationConfiguration"]["QueueConfigurations"]
    assert notification == {
        "Event": "s3:ObjectCreated:*",
        "Queue": {"Fn::GetAtt": [feedback, "Arn"]},
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "ses-events/"}]}},
    }
    # S3 checks it may send when the notification is saved: the queue's policy comes first,
    # and it lets this bucket of this account (and no other bucket) send.
    [(policy_id, queue_policy)] = [
        (k, v)
        for k, v in of_type(template, "AWS::SQS::QueuePolicy").items()
        if v["Properties"]["Queues"] == [{"Ref": feedback}]
    ]
    assert bucket["DependsOn"] == [policy_id]
    [from_s3] = [
        s
        for s in queue_policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Principal"] == {"Service": "s3.amazonaws.com"}
    ]
    assert from_s3["Action"] == "sqs:SendMessage"
    assert from_s3["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{spec.bucket}"}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    outputs = template["Outputs"]
    assert outputs["SesEventsBucketName"]["Value"] == {"Ref": bucket_id}


def test_with_sns_ses_publishes_to_its_topic_and_no_stream_exists() -> None:
    settings = Settings(stage=STAGE, ses_events_transport="sns")
    stack = Stack(settings, herald_resources(settings), "api")
    rendered = merge_template(stack)
    resources = rendered["Resources"]
    [destination] = [
        v
        for v in resources.values()
        if v.get("Type") == "AWS::SES::ConfigurationSetEventDestination"
    ]
    event_destination = destination["Properties"]["EventDestination"]
    assert set(event_destination["MatchingEventTypes"]) == PUBLISHED_EVENT_TYPES
    topic_id = event_destination["SnsDestination"]["TopicARN"]["Ref"]
    assert resources[topic_id]["Properties"]["TopicName"] == settings.ses_events_topic_name
    assert destination["DependsOn"] == [f"{topic_id}Policy"]  # SES checks it may publish
    assert "KinesisFirehoseDestination" not in event_destination
    kinds = {v.get("Type") for v in resources.values()}
    assert "AWS::KinesisFirehose::DeliveryStream" not in kinds
    buckets = [
        v["Properties"]["BucketName"]
        for v in resources.values()
        if v.get("Type") == "AWS::S3::Bucket"
    ]
    assert buckets == [settings.inbound_bucket_name]
    feedback_policy = resources[f"{stack.queue_id('feedback')}Policy"]["Properties"]
    [statement] = feedback_policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    # The feedback worker reads no bucket, and the functions are told the transport.
    feedback = stack.function_id(stack.resources.queue("feedback").handler)
    statements = resources[f"{feedback}AccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert not any("s3:GetObject" in as_list(s["Action"]) for s in statements)
    variables = resources[feedback]["Properties"]["Environment"]["Variables"]
    assert variables["HERALD_SES_EVENTS_TRANSPORT"] == "sns"


def test_bus_rules_deliver_to_their_queue_which_lets_them(template: Json) -> None:
    [bus_id] = of_type(template, "AWS::Events::EventBus")
    rules = of_type(template, "AWS::Events::Rule")
    for spec in RESOURCES.rules:
        [(rule_id, rule)] = [
            (k, v) for k, v in rules.items() if v["Properties"]["Name"] == spec.name
        ]
        assert rule["Properties"]["EventBusName"] == {"Ref": bus_id}
        assert rule["Properties"]["EventPattern"] == spec.event_pattern
        [target] = rule["Properties"]["Targets"]
        target_id = queue_id(template, RESOURCES.queue(spec.delivers_to).name)
        assert target["Arn"] == {"Fn::GetAtt": [target_id, "Arn"]}
        [policy] = [
            v["Properties"]["PolicyDocument"]
            for v in of_type(template, "AWS::SQS::QueuePolicy").values()
            if v["Properties"]["Queues"] == [{"Ref": target_id}]
        ]
        assert {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}} in [
            s["Condition"] for s in policy["Statement"]
        ]


def test_api_gateway_errors_have_heralds_error_shape(template: Json) -> None:
    definition = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = definition["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "UNAUTHORIZED", "MISSING_AUTHENTICATION_TOKEN"} <= set(
        responses
    )
    for response in responses.values():
        body = response["responseTemplates"]["application/json"]
        rendered = json.loads(body.replace("$context.error.messageString", '"API Gateway says"'))
        assert set(rendered) == {"error"}
        assert set(rendered["error"]) == {"code", "message"}
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"


def test_alarms_watch_dead_letters_function_errors_and_ses_reputation(template: Json) -> None:
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()]
    # (metric, what it is about, fires above) for every alarm
    watched = {
        (a["MetricName"], json.dumps([d["Value"] for d in a.get("Dimensions", [])]), a["Threshold"])
        for a in alarms
        if a["ComparisonOperator"] == "GreaterThanThreshold"
    }
    for spec in RESOURCES.queues:
        dead_letters = [{"Fn::GetAtt": [queue_id(template, spec.dead_letter_name), "QueueName"]}]
        assert ("ApproximateNumberOfMessagesVisible", json.dumps(dead_letters), 0) in watched
    for function_id in of_type(template, "AWS::Serverless::Function"):
        assert ("Errors", json.dumps([{"Ref": function_id}]), 0) in watched
    reputation = {a["MetricName"]: a["Threshold"] for a in alarms if a["Namespace"] == "AWS/SES"}
    assert reputation == {"Reputation.BounceRate": 0.05, "Reputation.ComplaintRate": 0.001}
    # The watchdog's metric, with the namespace and dimensions Powertools emits it under.
    assert ("stuck_campaigns", json.dumps(["herald"]), 0) in watched
    stuck = next(a for a in alarms if a["MetricName"] == "stuck_campaigns")
    assert (stuck["Namespace"], stuck["Dimensions"][0]["Name"]) == ("Herald", "service")
    assert all(a["AlarmActions"] for a in alarms)


def test_outputs_name_the_api_table_and_bus(template: Json) -> None:
    assert {"ApiUrl", "TableName", "EventBusName", "EndpointURL"} <= set(template["Outputs"])


def test_package_leaves_boto3_to_the_runtime_and_fits_the_size_budget(template_path: Path) -> None:
    # Issue 7: the zipped package (app and layer) stays within 10 MB; botocore alone is 16 MB.
    zips = {path.name: path for path in template_path.parent.glob("*.zip")}
    assert set(zips) == {"deployment.zip", "layer-deployment.zip"}
    with zipfile.ZipFile(zips["layer-deployment.zip"]) as layer:
        top_level = {name.split("/")[4] for name in layer.namelist() if name.count("/") > 4}
    assert "pydantic" in top_level
    assert top_level & {"boto3", "botocore", "s3transfer", "aws_xray_sdk"} == set()
    assert sum(path.stat().st_size for path in zips.values()) <= 10_000_000


def test_a_cold_start_of_the_package_compiles_nothing(template_path: Path, tmp_path: Path) -> None:
    # Lambda unpacks the package read-only: a module without bytecode is compiled on every
    # cold start. Jinja's sandbox stands for the modules handlers import on first use.
    package = template_path.parent
    app_root, layer_root = tmp_path / "task", tmp_path / "opt"
    for archive, root in (("deployment.zip", app_root), ("layer-deployment.zip", layer_root)):
        with zipfile.ZipFile(package / archive) as unpack:
            unpack.extractall(root)
    [site_packages] = layer_root.glob("python/lib/python3.*/site-packages")
    probe = (
        f"import sys; sys.path[:0] = [{str(app_root)!r}, {str(site_packages)!r}]; "
        "import app, chalicelib.domain.sandbox"
    )
    env = {**os.environ, "HERALD_STAGE": STAGE, "AWS_DEFAULT_REGION": "us-east-1"}
    verbose = subprocess.run(
        [sys.executable, "-I", "-B", "-v", "-c", probe],
        cwd=app_root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    loaded = re.findall(r"^# code object from '?([^'\n]+)'?$", verbose, re.MULTILINE)
    from_package = [path for path in loaded if path.startswith(str(tmp_path))]
    assert any("chalicelib/api/__pycache__/models." in path for path in from_package)
    assert any("jinja2/__pycache__/sandbox." in path for path in from_package)
    assert [path for path in from_package if not path.endswith(".pyc")] == []


# -- SMS delivery status ------------------------------------------------------------------
SMS_LOG_GROUPS = {
    suffix: {"Fn::Sub": f"sns/${{AWS::Region}}/${{AWS::AccountId}}/{suffix}"}
    for suffix in RESOURCES.sms_status_logs.log_group_suffixes
}
SMS_LOGS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
    "log-group:sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber*"
}


def test_both_sms_status_log_groups_are_subscribed_by_the_forwarder(template: Json) -> None:
    forwarder_id, forwarder = function_of(template, RESOURCES.sms_status_logs.handler)
    groups = {k: v for k, v in of_type(template, "AWS::Logs::LogGroup").items() if "Condition" in v}
    # Made by the stack unless the SmsStatusLogGroupsExist parameter says they exist.
    assert sorted(g["Properties"]["LogGroupName"]["Fn::Sub"] for g in groups.values()) == sorted(
        n["Fn::Sub"] for n in SMS_LOG_GROUPS.values()
    )
    condition = {g["Condition"] for g in groups.values()}
    assert [template["Conditions"][c] for c in condition] == [
        {"Fn::Equals": [{"Ref": "SmsStatusLogGroupsExist"}, "false"]}
    ]
    filters = [v["Properties"] for v in of_type(template, "AWS::Logs::SubscriptionFilter").values()]
    subscribed = []
    for properties in filters:
        assert properties["DestinationArn"] == {"Fn::GetAtt": [forwarder_id, "Arn"]}
        assert properties["FilterPattern"] == ""  # every record: successes and failures
        [_, made, existing] = properties["LogGroupName"]["Fn::If"]
        assert groups[made["Ref"]]["Properties"]["LogGroupName"] == existing
        subscribed.append(existing)
    assert sorted(s["Fn::Sub"] for s in subscribed) == sorted(
        n["Fn::Sub"] for n in SMS_LOG_GROUPS.values()
    )
    permissions = {
        json.dumps(v["Properties"]["SourceArn"]): v["Properties"]
        for v in of_type(template, "AWS::Lambda::Permission").values()
        if v["Properties"]["FunctionName"] == {"Fn::GetAtt": [forwarder_id, "Arn"]}
    }
    assert permissions.keys() == {json.dumps(SMS_LOGS_ARN), json.dumps(PUSH_LOGS_ARN)}
    permission = permissions[json.dumps(SMS_LOGS_ARN)]
    assert permission["Principal"] == "logs.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "Events" not in forwarder["Properties"]  # invoked by CloudWatch Logs only


def test_the_forwarder_may_only_send_to_the_feedback_queue_and_its_dead_letter_queue(
    template: Json,
) -> None:
    _, forwarder = function_of(template, RESOURCES.sms_status_logs.handler)
    role_id = forwarder["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = statements_for_role(template, role_id)
    feedback = {"Fn::GetAtt": [queue_id(template, RESOURCES.queue("feedback").name), "Arn"]}
    dead_letters = {
        "Fn::GetAtt": [queue_id(template, RESOURCES.sms_status_logs.dead_letter_name), "Arn"]
    }
    assert forwarder["Properties"]["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": dead_letters}
    assert grants(statements, "sqs:SendMessage", feedback)
    assert grants(statements, "sqs:SendMessage", dead_letters)
    heralds = {
        json.dumps(r)
        for s in statements
        for r in as_list(s["Resource"])
        if "Fn::GetAtt" in json.dumps(r) or "Fn::Sub" in json.dumps(r)
    }
    # Nothing else of Herald's: no table, no SES, no bus, no other queue.
    assert heralds == {json.dumps(feedback), json.dumps(dead_letters)}
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert not any(a.startswith(("dynamodb:", "ses:", "sns:", "events:")) for a in actions)


def sns_logging_roles(template: Json) -> dict[str, Json]:
    return {
        k: v
        for k, v in of_type(template, "AWS::IAM::Role").items()
        if v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "sns.amazonaws.com"}
    }


def test_sns_may_log_sms_status_only_to_its_two_groups(template: Json) -> None:
    roles = sns_logging_roles(template)
    role_id, role = SMS_STATUS_ROLE, roles[SMS_STATUS_ROLE]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    [statement] = statements_for_role(template, role_id)
    assert statement["Resource"] == [SMS_LOGS_ARN]
    assert "logs:PutLogEvents" in statement["Action"]
    # The ARN docs/deploy.md passes to `aws sns set-sms-attributes`.
    assert template["Outputs"]["SmsDeliveryStatusRoleArn"]["Value"] == {
        "Fn::GetAtt": [role_id, "Arn"]
    }


# -- push delivery status -----------------------------------------------------------------
PUSH_LOGS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
    f"log-group:sns/${{AWS::Region}}/${{AWS::AccountId}}/app/*/{SETTINGS.prefix}-*"
}


def test_push_status_logs_of_herald_apps_only_reach_the_forwarder(template: Json) -> None:
    """SNS may log push status only to Herald's applications' groups, with the role the app
    names by name; the API may make those groups, subscribe them and pass that role to SNS
    only; every function is told the logging is on."""
    roles = sns_logging_roles(template)
    [push_role_id] = roles.keys() - {SMS_STATUS_ROLE}
    role = roles[push_role_id]["Properties"]
    assert role["RoleName"] == SETTINGS.push_status_role_name
    [statement] = statements_for_role(template, push_role_id)
    assert statement["Resource"] == [PUSH_LOGS_ARN]
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= set(statement["Action"])
    _, api = function_of(template, RESOURCES.api_handler)
    api_statements = statements_for_role(template, api["Properties"]["Role"]["Fn::GetAtt"][0])
    for action in ("logs:CreateLogGroup", "logs:PutSubscriptionFilter", "logs:DeleteLogGroup"):
        assert grants(api_statements, action, PUSH_LOGS_ARN)
    [passing] = [
        s
        for s in api_statements
        if "iam:PassRole" in as_list(s["Action"])
        and s["Resource"] == [{"Fn::GetAtt": [push_role_id, "Arn"]}]
    ]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sns.amazonaws.com"}}
    variables = api["Properties"]["Environment"]["Variables"]
    assert variables["HERALD_PUSH_DELIVERY_STATUS"] == "true"


def test_the_forwarders_dead_letters_alarm(template: Json) -> None:
    dead_letter_id = queue_id(template, RESOURCES.sms_status_logs.dead_letter_name)
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()]
    assert any(
        a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"]
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letter_id, "QueueName"]}}]
        and a["Threshold"] == 0
        for a in alarms
    )


def test_replies_are_received_for_the_reply_domain_into_the_bucket_and_topic() -> None:
    settings = Settings(stage=STAGE, reply_domain="replies.example.com")
    stack = Stack(settings, herald_resources(settings), "api")
    rendered = reply_resources(stack)
    rule = rendered["ReplyReceiptRule"]["Properties"]["Rule"]
    assert rule["Recipients"] == ["replies.example.com"] and rule["ScanEnabled"] is True
    [action] = rule["Actions"]
    inbound = stack.resources.inbound
    assert action["S3Action"]["ObjectKeyPrefix"] == inbound.object_prefix
    assert action["S3Action"]["TopicArn"] == {"Ref": stack.topic_id(inbound.topic_name)}
    [ses_writes, _tls] = rendered["InboundMailBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert ses_writes["Principal"] == {"Service": "ses.amazonaws.com"}
    assert "aws:SourceAccount" in ses_writes["Condition"]["StringEquals"]
    # Without a reply domain there is no rule set, only the (empty) bucket.
    assert "ReplyReceiptRule" not in reply_resources(
        Stack(SETTINGS, RESOURCES, "api")
    ) and "InboundMailBucket" in reply_resources(Stack(SETTINGS, RESOURCES, "api"))


def test_only_the_reply_worker_reads_received_mail_and_the_feedback_worker_ses_events(
    template: Json,
) -> None:
    handlers = [
        RESOURCES.api_handler,
        RESOURCES.tick_handler,
        *(q.handler for q in RESOURCES.queues),
    ]
    stream = RESOURCES.configuration_set.stream
    assert stream is not None
    reads = {
        handler: [
            resource
            for s in role_statements(template, handler)
            if "s3:GetObject" in as_list(s["Action"])
            for resource in as_list(s["Resource"])
        ]
        for handler in handlers
    }
    objects = "arn:${AWS::Partition}:s3:::"
    assert {handler: found for handler, found in reads.items() if found} == {
        RESOURCES.queue("replies").handler: [{"Fn::Sub": f"{objects}{RESOURCES.inbound.bucket}/*"}],
        RESOURCES.queue("feedback").handler: [
            {"Fn::Sub": f"{objects}{stream.bucket}/{stream.object_prefix}*"}
        ],
    }
