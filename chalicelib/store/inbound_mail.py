"""Received mails too large for an SNS notification, read back from the S3 object SES
inbound's receipt rule stored them in (docs/api-seed-001.md, "Stop on reply")."""

from __future__ import annotations

from chalicelib.aws import client
from chalicelib.domain.replies import S3Location

MAX_MAIL_BYTES = 40 * 1024 * 1024  # SES inbound's own limit on a received mail


def read_mail(location: S3Location) -> bytes:
    """The raw mail; a larger object than SES can receive is cut at the limit."""
    response = client("s3").get_object(
        Bucket=location.bucket, Key=location.key, Range=f"bytes=0-{MAX_MAIL_BYTES - 1}"
    )
    body: bytes = response["Body"].read()
    return body
