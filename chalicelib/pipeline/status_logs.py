"""The status forwarder: SNS's SMS and push delivery-status logs → the feedback queue.

SNS reports what became of an SMS or a push only by writing a record to CloudWatch Logs:
an SMS to ``sns/<region>/<account>/DirectPublishToPhoneNumber`` (``…/Failure``), a push
to ``sns/<region>/<account>/app/<platform>/<application>`` (``…/Failure``). A subscription
filter on each group (the SMS ones in infra/sms_status.py, each application's made with it
by chalicelib/channels/push.py) invokes this function with CloudWatch Logs' subscription
event, ``{"awslogs": {"data": <base64 of gzipped JSON>}}``, whose ``logEvents`` carry one
status record each in ``message``. Each record goes to the feedback queue as ``{"kind":
"sms.status" | "push.status", "status": <record>}`` (ten per SendMessageBatch), the kind
named by the log group, where the feedback worker reads it like any provider event.

Nothing is judged here: a log line that is not a status record is forwarded as it is and
fails in the feedback worker, which sends it to the feedback DLQ (one bad line must not
take a whole delivery of good ones with it). If the queue refuses, the invocation fails and
Lambda retries it (an asynchronous invocation: twice, then the function's dead-letter
queue); the records it had already queued come again, which the worker's conditional
updates make harmless.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.observability import logger, metrics
from chalicelib.pipeline.messages import PUSH_STATUS, SMS_STATUS
from chalicelib.pipeline.queues import enqueue
from chalicelib.resources import PushStatusLogsSpec

# CloudWatch Logs checks a new subscription's destination with a CONTROL_MESSAGE.
DATA_MESSAGE = "DATA_MESSAGE"


class UnreadableLogDelivery(ValueError):
    """Not a CloudWatch Logs subscription event: the invocation fails (and is dead-lettered)."""


def log_delivery(event: Mapping[str, Any]) -> dict[str, Any]:
    """The decoded payload of a CloudWatch Logs subscription event."""
    try:
        data = base64.b64decode(event["awslogs"]["data"], validate=True)
        payload = json.loads(gzip.decompress(data))
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise UnreadableLogDelivery(f"not a CloudWatch Logs subscription event: {error}") from error
    if not isinstance(payload, dict):
        raise UnreadableLogDelivery("CloudWatch Logs payload is not a JSON object")
    return payload


def _status_of(message: str) -> Any:
    """The log event's record (JSON), or the line itself for the worker to refuse."""
    try:
        return json.loads(message)
    except ValueError:
        return message


def forward_status_logs(event: Mapping[str, Any]) -> int:
    """Put every status record of one log delivery on the feedback queue; returns how many."""
    payload = log_delivery(event)
    if payload.get("messageType") != DATA_MESSAGE:
        return 0
    log_group = str(payload.get("logGroup", ""))
    push = PushStatusLogsSpec.is_push_log_group(log_group)
    kind = PUSH_STATUS if push else SMS_STATUS
    messages = [
        {"kind": kind, "status": _status_of(str(log_event.get("message", "")))}
        for log_event in payload.get("logEvents", [])
    ]
    forwarded = enqueue("feedback", messages)
    metric = "push_statuses_forwarded" if push else "sms_statuses_forwarded"
    metrics.add_metric(name=metric, unit="Count", value=forwarded)
    logger.info("forwarded delivery statuses", extra={"log_group": log_group, "records": forwarded})
    return forwarded
