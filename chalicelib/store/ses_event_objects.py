"""The S3 objects SES's sending events arrive in when SES publishes through Firehose
(docs/feedback.md, "Events in objects"): read back by the feedback worker."""

from __future__ import annotations

from chalicelib.aws import client
from chalicelib.domain.feedback import EventsObject


def read_events(where: EventsObject) -> bytes:
    """The object's bytes from ``where.start`` on (a continuation reads only the rest)."""
    extra = {"Range": f"bytes={where.start}-"} if where.start else {}
    response = client("s3").get_object(Bucket=where.bucket, Key=where.key, **extra)
    body: bytes = response["Body"].read()
    return body
