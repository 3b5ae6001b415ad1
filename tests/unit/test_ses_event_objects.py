"""Objects of SES events (SES → Firehose → S3): the S3 notification that announces one,
and cutting an object into its records, whatever separates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app as herald
from chalicelib.domain.feedback import (
    EventsObject,
    UnrecognizedNotification,
    parse_notification,
    parse_object_notification,
    split_records,
)
from chalicelib.pipeline import feedback as provider_feedback
from chalicelib.pipeline.dispatch import decode
from tests.aws_events import ses_record

S3_DATA = Path(__file__).resolve().parent.parent / "data" / "s3"


def s3_sample(name: str) -> dict[str, object]:
    return json.loads((S3_DATA / name).read_text())


def test_an_object_created_notification_names_the_bucket_and_the_decoded_key():
    assert parse_object_notification(s3_sample("object_created.json")) == [
        EventsObject(
            bucket="herald-prod-ses-events",
            key="ses-events/2026/12/06/23/"
            "herald-prod-ses-events-1-2026-12-06-23-00-00-a1b2c3d4 e5f6.gz:1",
        )
    ]


def test_s3s_test_event_and_other_events_announce_nothing_to_read():
    assert parse_object_notification(s3_sample("test_event.json")) == []
    removed = s3_sample("object_created.json")
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"  # type: ignore[index]
    assert parse_object_notification(removed) == []


@pytest.mark.parametrize(
    "body",
    [
        {"Records": [{"eventSource": "aws:sqs", "eventName": "x", "s3": {}}]},
        {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]},
        {"Records": "none"},
    ],
)
def test_a_notification_in_no_shape_s3_sends_is_refused(body):
    with pytest.raises(UnrecognizedNotification):
        parse_object_notification(body)


def test_the_feedback_queue_routes_s3_notifications_and_raw_ses_records_by_shape():
    consumer = herald.QUEUE_CONSUMERS["feedback"]
    for sample in ("object_created.json", "test_event.json"):
        handler, _ = decode("feedback", consumer, json.dumps(s3_sample(sample)))
        assert handler is provider_feedback.on_events_object
    handler, _ = decode("feedback", consumer, json.dumps(ses_record("Delivery")))
    assert handler is provider_feedback.on_provider_event


@pytest.mark.parametrize("separator", ["", "\n", "\r\n", " \n"])
def test_records_are_read_back_to_back_or_one_to_a_line(separator):
    records = [ses_record(kind) for kind in ("Delivery", "Open", "Bounce")]
    data = (separator.join(json.dumps(r) for r in records) + separator).encode()

    found = list(split_records(data))

    assert [r.value for r in found] == records
    assert found[-1].end == len(data.rstrip())
    assert [parse_notification(r.value).kind for r in found if r.value] == [
        "delivered",
        "opened",
        "bounced",
    ]


@pytest.mark.parametrize("separator", ["", "\n"])
def test_a_record_that_does_not_parse_sinks_no_other(separator):
    good = [json.dumps(ses_record("Delivery", recipient=f"r{i}@example.com")) for i in range(2)]
    broken = '{"eventType": "Delivery", "mail": {"messageId": '
    data = separator.join([good[0], broken, good[1]]).encode()

    found = list(split_records(data))

    assert [r.value is not None for r in found] == [True, False, True]
    assert found[1].text.rstrip() == broken.rstrip()
    assert found[2].value == json.loads(good[1])


def test_a_record_that_is_json_but_no_object_is_yielded_without_a_value():
    found = list(split_records(b'42 {"a": 1}'))
    assert [(r.value, r.text) for r in found] == [(None, "42"), ({"a": 1}, '{"a": 1}')]


def test_end_counts_bytes_so_the_rest_reads_from_there():
    """A continuation reads the object from a byte offset: multi-byte characters and a
    byte that is no UTF-8 must not shift it."""
    records = [ses_record("Delivery", recipient=f"jörg{i}@exämple.com") for i in range(3)]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    data = data.replace(b"\n", b"\xff\n", 1)  # one undecodable byte between records

    first, *rest = list(split_records(data))

    assert [r.value for r in split_records(data[first.end :])] == [r.value for r in rest]
    assert [r.value for r in rest][-2:] == records[1:]
