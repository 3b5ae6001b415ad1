"""SES's sending events through Firehose to S3 (``ses_events_transport`` "firehose") in moto.

The provisioner makes the stream, its bucket and the bucket's notification to the feedback
queue, as the stack does; moto's Firehose writes one object per ``PutRecordBatch`` and
moto's S3 tells the queue of it in S3's own format. The simulator puts a send's events on
the stream as SES does (one JSON a line). What the feedback worker does with the object is
``pipeline.feedback``'s (its own tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import pytest

from chalicelib.aws import client
from chalicelib.local.provision import provision
from chalicelib.local.ses_simulator import FeedbackSimulator, publish_ses_events
from chalicelib.resources import HeraldResources, SesEventsStreamSpec, herald_resources
from chalicelib.settings import Settings, get_settings

SIM = "simulator.amazonses.com"
FROM = "news@example.com"


@pytest.fixture(autouse=True)
def firehose_transport(herald_env: Callable[..., None]) -> None:
    # Before the aws fixture provisions: it makes what these settings name.
    herald_env(ses_events_transport="firehose", simulator_delay_seconds="0")


@pytest.fixture
def resources(aws: None) -> HeraldResources:
    return herald_resources(get_settings())


@pytest.fixture
def stream(resources: HeraldResources) -> SesEventsStreamSpec:
    spec = resources.configuration_set.stream
    assert spec is not None
    return spec


def feedback_messages() -> list[dict[str, Any]]:
    """Everything on the feedback queue (received and deleted: nobody else reads it here)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().queue_name("feedback"))["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def objects(stream: SesEventsStreamSpec) -> dict[str, bytes]:
    """The bucket's objects under the stream's prefix, by key."""
    s3 = client("s3")
    listed = s3.list_objects_v2(Bucket=stream.bucket, Prefix=stream.object_prefix)
    return {
        item["Key"]: s3.get_object(Bucket=stream.bucket, Key=item["Key"])["Body"].read()
        for item in listed.get("Contents", [])
    }


@pytest.fixture
def put_record_batches() -> Iterator[list[int]]:
    """The record count of each PutRecordBatch made from now on."""
    calls: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Records"]))

    events = client("firehose").meta.events
    events.register("provide-client-params.firehose.PutRecordBatch", count)
    yield calls
    events.unregister("provide-client-params.firehose.PutRecordBatch", count)


def test_a_record_put_on_the_stream_lands_as_an_object_the_feedback_queue_is_told_of(
    stream: SesEventsStreamSpec,
) -> None:
    records = [b'{"eventType":"Delivery"}\n', b'{"eventType":"Bounce"}\n']
    client("firehose").put_record_batch(
        DeliveryStreamName=stream.stream, Records=[{"Data": r} for r in records]
    )
    [(key, body)] = objects(stream).items()
    assert body == b"".join(records)
    [notification] = feedback_messages()
    [record] = notification["Records"]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == stream.bucket
    assert unquote_plus(record["s3"]["object"]["key"]) == key  # S3 URL-encodes the key
    assert record["s3"]["object"]["size"] == len(body)


def test_an_object_outside_the_prefix_is_not_notified(stream: SesEventsStreamSpec) -> None:
    client("s3").put_object(Bucket=stream.bucket, Key="elsewhere/x", Body=b"{}\n")
    assert feedback_messages() == []


def test_provisioning_again_adds_no_stream_notification_or_test_event(
    stream: SesEventsStreamSpec,
) -> None:
    # (The aws fixture let the worker take the test event of the first provisioning.)
    provision()
    assert client("firehose").list_delivery_streams()["DeliveryStreamNames"] == [stream.stream]
    configured = client("s3").get_bucket_notification_configuration(Bucket=stream.bucket)
    [queue] = configured["QueueConfigurations"]
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "ses-events/"}]
    assert feedback_messages() == []
    # Without the notification (someone removed it), provisioning sets it again, and S3
    # tests the queue with a test event as it does whenever a queue configuration is saved.
    client("s3").put_bucket_notification_configuration(
        Bucket=stream.bucket, NotificationConfiguration={}
    )
    provision()
    [test_event] = feedback_messages()
    assert test_event["Event"] == "s3:TestEvent" and test_event["Bucket"] == stream.bucket


def test_the_configuration_set_publishes_its_event_types_to_the_stream(
    resources: HeraldResources, stream: SesEventsStreamSpec
) -> None:
    spec = resources.configuration_set
    described = client("ses").describe_configuration_set(
        ConfigurationSetName=spec.name, ConfigurationSetAttributeNames=["eventDestinations"]
    )
    [destination] = described["EventDestinations"]
    assert destination["MatchingEventTypes"] == list(spec.camel_case_event_types)
    firehose = destination["KinesisFirehoseDestination"]
    arn = client("firehose").describe_delivery_stream(DeliveryStreamName=stream.stream)[
        "DeliveryStreamDescription"
    ]["DeliveryStreamARN"]
    assert firehose["DeliveryStreamARN"] == arn
    assert firehose["IAMRoleARN"].endswith(f":role/{stream.publisher_role}")
    assert "SNSDestination" not in destination
    # No SES events topic is made: nothing would publish to it.
    topics = client("sns").list_topics()["Topics"]
    assert not any(t["TopicArn"].endswith(get_settings().ses_events_topic_name) for t in topics)


def test_the_simulator_puts_a_rounds_events_on_the_stream_in_one_call_one_json_a_line(
    simulator: FeedbackSimulator, stream: SesEventsStreamSpec, put_record_batches: list[int]
) -> None:
    client("ses").verify_email_identity(EmailAddress=FROM)
    sent = {}
    for recipient in (f"success@{SIM}", f"bounce@{SIM}"):
        tag = recipient.partition("@")[0]
        answer = client("sesv2").send_email(
            FromEmailAddress=FROM,
            Destination={"ToAddresses": [recipient]},
            Content={"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "Hi"}}}},
            EmailTags=[{"Name": "herald-message", "Value": tag}],
            ConfigurationSetName=get_settings().ses_configuration_set,
        )
        sent[answer["MessageId"]] = tag
    published: list[dict[str, Any]] = []

    def publishes(params: dict[str, Any], **_: Any) -> None:
        published.append(params)

    sns_events = client("sns").meta.events
    sns_events.register("provide-client-params.sns.Publish", publishes)
    try:
        simulator.flush()
    finally:
        sns_events.unregister("provide-client-params.sns.Publish", publishes)

    assert put_record_batches == [2]  # Delivery for one, Bounce for the other; no Send
    assert published == []
    [body] = objects(stream).values()
    *lines, last = body.decode().split("\n")
    assert last == ""  # every record ends with its newline
    events = [json.loads(line) for line in lines]
    assert sorted((sent[e["mail"]["messageId"]], e["eventType"]) for e in events) == [
        ("bounce", "Bounce"),
        ("success", "Delivery"),
    ]
    assert all(
        e["mail"]["tags"]["herald-message"] == [sent[e["mail"]["messageId"]]] for e in events
    )
    [notification] = feedback_messages()
    assert notification["Records"][0]["s3"]["bucket"]["name"] == stream.bucket


def test_a_round_is_split_into_the_batches_firehose_accepts(
    stream: SesEventsStreamSpec, put_record_batches: list[int]
) -> None:
    publish_ses_events([json.dumps({"eventType": "Delivery", "n": n}) for n in range(501)])
    assert put_record_batches == [500, 1]  # at most 500 records a call
    put_record_batches.clear()
    large = json.dumps({"eventType": "Delivery", "padding": "x" * 900_000})
    publish_ses_events([large] * 5)
    assert put_record_batches == [4, 1]  # at most 4 MiB a call
    lines = sorted(body.count(b"\n") for body in objects(stream).values())
    assert lines == [1, 1, 4, 500]


def test_the_events_bucket_is_a_valid_s3_name_for_the_longest_stage_and_region() -> None:
    settings = Settings(
        stage="a" + "-9" * 7 + "z", region="ap-southeast-2", account_id="210987654321"
    )
    name = settings.ses_events_bucket_name
    assert len(settings.stage) == 16 and len(name) <= 63
    assert name == f"herald-{settings.stage}-ses-events-210987654321-ap-southeast-2"
    assert name == name.lower() and name[0].isalnum() and name[-1].isalnum()


def test_each_transport_has_its_own_destination_and_no_other() -> None:
    by_sns = herald_resources(Settings(ses_events_transport="sns"))
    by_firehose = herald_resources(Settings(ses_events_transport="firehose"))
    topic = Settings().ses_events_topic_name
    assert by_sns.configuration_set.topic_name == topic
    assert by_sns.configuration_set.stream is None
    assert topic in {t.name for t in by_sns.topics}
    assert by_firehose.configuration_set.topic_name is None
    assert by_firehose.configuration_set.stream is not None
    assert topic not in {t.name for t in by_firehose.topics}
    # The same events either way.
    assert by_sns.configuration_set.event_types == by_firehose.configuration_set.event_types
