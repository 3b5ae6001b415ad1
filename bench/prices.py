"""us-east-1 list prices the cost figures use, each with where it comes from and when.

On-demand list prices, without free tiers or volume discounts (both would only lower the
figures). SES's own $0.10 per 1,000 emails is left out of every Herald figure: it is the
price of sending at all, the same with or without Herald.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKED = "2026-11-23"


@dataclass(frozen=True)
class Price:
    usd: float  # per ``unit``
    unit: str
    source: str
    note: str = ""


PRICES: dict[str, Price] = {
    "dynamodb_write_unit": Price(
        0.625 / 1e6,
        "write request unit (on-demand)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "after the 50% on-demand price cut of 2024-11-01; a transactional write is 2 units "
        "per KB, each GSI write 1 more per KB",
    ),
    "dynamodb_read_unit": Price(
        0.125 / 1e6,
        "read request unit (on-demand)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "1 unit = one strongly consistent read of up to 4 KB, or two eventually consistent",
    ),
    "sqs_request": Price(
        0.40 / 1e6,
        "request (standard queue, per 64 KB chunk)",
        "https://aws.amazon.com/sqs/pricing/",
        "Lambda's event source mapping polls with ReceiveMessage and deletes with "
        "DeleteMessageBatch: both are billed requests; SNS's deliveries to SQS are not",
    ),
    "sns_publish": Price(
        0.50 / 1e6,
        "publish (standard topic, per 64 KB chunk)",
        "https://aws.amazon.com/sns/pricing/",
        "SES's event publishing to our topic counts as publishes; deliveries to SQS are free",
    ),
    "firehose_gb": Price(
        0.029,
        "GB ingested (Direct PUT, first 500 TB a month), each record rounded up to 5 KB",
        "https://aws.amazon.com/firehose/pricing/",
        "checked 2026-12-06 (against stored copies of the page; not fetched live): the "
        "rounding is per record, not per PutRecordBatch call (two "
        "1 KB records in one call bill 10 KB); 1 GB = 1,024 x 1,024 KB as the page's own "
        "examples count; delivery to S3 costs nothing more without format conversion. "
        "SES's sending events are ~1-3 KB each: 5 KB billed, $0.138 per million",
    ),
    "s3_put": Price(
        0.005 / 1000,
        "PUT, COPY, POST or LIST request (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        "checked 2026-12-06 (stored copies, as above): Firehose's object writes, one per "
        "buffer (1 MiB or 60 s)",
    ),
    "s3_get": Price(
        0.0004 / 1000,
        "GET, SELECT and all other requests (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        "checked 2026-12-06 (stored copies): the feedback worker's GetObject per object or "
        "continuation; "
        "transfer to Lambda in the same region is free",
    ),
    "lambda_request": Price(
        0.20 / 1e6,
        "invocation",
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "lambda_gb_second": Price(
        0.0000166667,
        "GB-second (x86)",
        "https://aws.amazon.com/lambda/pricing/",
        "billed per ms of duration times the configured memory (.chalice/config.json)",
    ),
    "eventbridge_event": Price(
        1.00 / 1e6,
        "custom event published (per 64 KB chunk)",
        "https://aws.amazon.com/eventbridge/pricing/",
        "checked again 2026-12-06: SES's sending events through a configuration set's "
        "EventBridge destination are 'AWS opt-in data events' (data plane, published once "
        "an account opts in), billed as custom events are; only AWS management (control "
        "plane) events are free. Twice an SNS publish: SES publishes to SNS (bench/README.md)",
    ),
    "scheduler_invocation": Price(
        1.00 / 1e6,
        "schedule invocation",
        "https://aws.amazon.com/eventbridge/pricing/#Scheduler",
        "one per campaign start; creating and deleting schedules is free",
    ),
    "ses_email": Price(
        0.10 / 1000,
        "email sent (outbound)",
        "https://aws.amazon.com/ses/pricing/",
        "shown for scale only: never part of Herald's overhead",
    ),
}


def usd(name: str, quantity: float) -> float:
    """What ``quantity`` of ``name`` costs at list price."""
    return PRICES[name].usd * quantity
