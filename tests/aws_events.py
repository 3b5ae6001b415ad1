"""AWS's published sample events (tests/data/aws-events, copied from the AWS docs) and the
envelopes they travel in, for tests that need real-format feedback.

Nothing here invents a format: each builder starts from a sample file and changes only
the values a test needs (tags, ids, times, recipients).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "aws-events"
SES_SAMPLES = {
    "Send": "ses_event_send.json",
    "Delivery": "ses_event_delivery.json",
    "Bounce": "ses_event_bounce.json",
    "Complaint": "ses_event_complaint.json",
    "Reject": "ses_event_reject.json",
    "Open": "ses_event_open.json",
    "Click": "ses_event_click.json",
    "DeliveryDelay": "ses_event_delivery_delay.json",
    "Rendering Failure": "ses_event_rendering_failure.json",
    "Subscription": "ses_event_subscription.json",
}
# The section of each record that carries the event's own timestamp.
SECTIONS = {
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Open": "open",
    "Click": "click",
    "DeliveryDelay": "deliveryDelay",
    "Subscription": "subscription",
}
# SNS's SMS delivery-status log records (tests/data/sns-sms/README.md names the source).
SMS_DATA = Path(__file__).resolve().parent / "data" / "sns-sms"
SMS_SUCCESS: dict[str, Any] = json.loads((SMS_DATA / "sms_status_success.json").read_text())
SMS_FAILURE: dict[str, Any] = json.loads((SMS_DATA / "sms_status_failure.json").read_text())
# SNS's push delivery-status log records (tests/data/sns-push/README.md names the format).
PUSH_DATA = Path(__file__).resolve().parent / "data" / "sns-push"
PUSH_SUCCESS: dict[str, Any] = json.loads((PUSH_DATA / "push_status_success.json").read_text())
PUSH_FAILURE: dict[str, Any] = json.loads((PUSH_DATA / "push_status_failure.json").read_text())
EVENTBRIDGE_DETAIL_TYPES = {
    "Send": "Email Sent",
    "Delivery": "Email Delivered",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
    "Open": "Email Opened",
    "Click": "Email Clicked",
    "DeliveryDelay": "Email Delivery Delayed",
    "Rendering Failure": "Email Rendering Failed",
    "Subscription": "Email Subscribed",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def ses_sample(event_type: str) -> dict[str, Any]:
    return load(SES_SAMPLES[event_type])


def ses_record(
    event_type: str,
    *,
    tags: dict[str, str] | None = None,
    ses_message_id: str | None = None,
    recipient: str | None = None,
    at: datetime | None = None,
    **section: Any,
) -> dict[str, Any]:
    """The AWS sample of ``event_type`` with Herald's tags, ids, recipient and time set."""
    record = copy.deepcopy(ses_sample(event_type))
    mail = record["mail"]
    if ses_message_id:
        mail["messageId"] = ses_message_id
    if tags:
        mail["tags"].update({name: [value] for name, value in tags.items()})
    if recipient:
        mail["destination"] = [recipient]
        _set_recipient(record, recipient)
    key = SECTIONS.get(event_type)
    if key:
        record[key].update(section)
        if at is not None:
            record[key]["timestamp"] = at.isoformat().replace("+00:00", "Z")
    elif at is not None:
        mail["timestamp"] = at.isoformat().replace("+00:00", "Z")
    return record


def _set_recipient(record: dict[str, Any], recipient: str) -> None:
    for key, field in (
        ("bounce", "bouncedRecipients"),
        ("complaint", "complainedRecipients"),
        ("deliveryDelay", "delayedRecipients"),
    ):
        if key in record:
            for entry in record[key][field]:
                entry["emailAddress"] = recipient
    if "delivery" in record:
        record["delivery"]["recipients"] = [recipient]


def sns_envelope(
    record: dict[str, Any], topic_arn: str = "arn:aws:sns:us-east-1:123456789012:t"
) -> dict[str, Any]:
    """The SQS body SNS delivers (no raw delivery): the Lambda SNS sample's notification
    with ``Message`` = the record as a string."""
    notification = copy.deepcopy(load("lambda_sns_event.json")["Records"][0]["Sns"])
    notification.update(MessageId=str(uuid.uuid4()), Message=json.dumps(record), TopicArn=topic_arn)
    notification.pop("MessageAttributes", None)
    return notification


def eventbridge_envelope(record: dict[str, Any]) -> dict[str, Any]:
    """SES's EventBridge event: the record under ``detail``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENTBRIDGE_DETAIL_TYPES[record["eventType"]],
        "source": "aws.ses",
        "account": "123456789012",
        "time": record["mail"]["timestamp"],
        "region": "us-east-1",
        "resources": [],
        "detail": record,
    }


def sms_status(
    *, success: bool, sns_message_id: str, phone: str, at: datetime, response: str | None = None
) -> dict[str, Any]:
    """An SNS SMS delivery-status record (tests/data/sns-sms) for one message."""
    record = copy.deepcopy(SMS_SUCCESS if success else SMS_FAILURE)
    record["notification"]["messageId"] = sns_message_id
    record["notification"]["timestamp"] = at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    record["delivery"]["destination"] = phone
    if response is not None:
        record["delivery"]["providerResponse"] = response
    return record


def push_status(
    *, success: bool, sns_message_id: str, endpoint_arn: str, at: datetime
) -> dict[str, Any]:
    """An SNS push delivery-status record (tests/data/sns-push) for one message."""
    record = copy.deepcopy(PUSH_SUCCESS if success else PUSH_FAILURE)
    record["notification"]["messageId"] = sns_message_id
    record["notification"]["timestamp"] = at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-4]
    record["delivery"]["destination"] = endpoint_arn
    return record


def logs_subscription_event(
    log_group: str, messages: list[str], message_type: str = "DATA_MESSAGE"
) -> dict[str, Any]:
    """CloudWatch Logs' event to a subscription's Lambda function (CloudWatch Logs user
    guide, "Subscription filters with AWS Lambda"): the JSON below, gzipped, base64'd, under
    ``awslogs.data``. Built here, not with Herald's simulator, so the two are checked
    against each other."""
    payload = {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": "1f9a6f3e0f6d4c4a9a1c8f0b7e2d5c3a",
        "subscriptionFilters": ["herald-test-sms-status"],
        "logEvents": [
            {
                "id": f"3195310660696698337880902507980421114328961542429822{i:04d}",
                "timestamp": 1432826855000 + i,
                "message": message,
            }
            for i, message in enumerate(messages)
        ],
    }
    data = gzip.compress(json.dumps(payload).encode())
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def inbound_reply(
    *,
    sender: str,
    recipient: str,
    subject: str,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra_headers: dict[str, str] | None = None,
    ses_message_id: str | None = None,
) -> dict[str, Any]:
    """AWS's SES inbound sample (an SNS action's ``Received`` notification) rewritten as a
    reply: its From, To, Subject and threading headers set in both the raw ``content`` and
    the ``headers`` list, the rest of the sample kept."""
    record = load("ses_inbound_sns_action.json")
    head, _, body = record["content"].partition("\r\n\r\n")
    values = {"From": sender, "To": recipient, "Subject": subject}
    lines = []
    for line in head.split("\r\n"):
        name, _, value = line.partition(": ")
        lines.append((name, values.pop(name, value)))
    threading = {"In-Reply-To": in_reply_to, "References": references}
    lines += [(n, v) for n, v in threading.items() if v] + list((extra_headers or {}).items())
    record["content"] = "\r\n".join(f"{n}: {v}" for n, v in lines) + "\r\n\r\n" + body
    mail = record["mail"]
    mail["headers"] = [{"name": n, "value": v} for n, v in lines]
    mail["commonHeaders"].update(from_=[sender], to=[recipient], subject=subject)
    mail["commonHeaders"]["from"] = mail["commonHeaders"].pop("from_")
    mail["destination"] = [recipient]
    mail["messageId"] = ses_message_id or uuid.uuid4().hex[:28]
    record["receipt"]["recipients"] = [recipient]
    return record
