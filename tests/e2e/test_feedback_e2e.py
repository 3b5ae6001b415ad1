"""The feedback loop on the embedded stack, over HTTP: a campaign to the SES mailbox
simulator's addresses, its stats, suppression, the seed's aggregated callbacks and a signed
webhook, each received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import boto3
import pytest

from chalicelib.aws import client
from chalicelib.local.runner import EmbeddedStack
from chalicelib.local.ses_simulator import publish_ses_events
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings
from tests.aws_events import ses_record
from tests.e2e.kit import Api, eventually
from tests.feedback_kit import Received, Receiver, receiver

pytestmark = pytest.mark.e2e

SIM = "simulator.amazonses.com"
FROM = "news@acme.example.com"
WINDOW_SECONDS = 3
ADDRESSES = [
    f"success@{SIM}",
    f"success+2@{SIM}",
    f"bounce@{SIM}",
    f"complaint@{SIM}",
    f"ooto@{SIM}",
    f"suppressionlist@{SIM}",
    "reader@example.com",
]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HERALD_CALLBACK_WINDOW_SECONDS", str(WINDOW_SECONDS))
        running = EmbeddedStack(port=0).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, Receiver]]:
    with receiver() as callbacks, receiver() as webhooks:
        yield callbacks, webhooks


def carries(stack: EmbeddedStack, body: str, provider_message_id: str) -> bool:
    """Whether a feedback-queue message carries the SES event of ``provider_message_id``:
    in itself (transport sns) or in the S3 object it names (transport firehose)."""
    if provider_message_id in body:
        return True
    records = json.loads(body).get("Records") or []
    s3 = outside(stack, "s3")
    return any(
        provider_message_id
        in s3.get_object(
            Bucket=record["s3"]["bucket"]["name"], Key=unquote_plus(record["s3"]["object"]["key"])
        )["Body"]
        .read()
        .decode()
        for record in records
        if record.get("eventSource") == "aws:s3"
    )


def outside(stack: EmbeddedStack, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.aws_endpoint,
        region_name=get_settings().region,
        aws_access_key_id="outside",
        aws_secret_access_key="outside",
    )


def campaign(api: Api, **fields: Any) -> str:
    sender = api.ok("POST", "/v1/senders", {"channel": "email", "from_email": FROM})["id"]
    template = api.ok(
        "POST",
        "/v1/templates",
        {"name": "News", "channel": "email", "subject": "News", "html": "<p>Hello</p>"},
    )["id"]
    created = api.ok(
        "POST",
        "/v1/campaigns",
        {
            "name": "Launch",
            "channel": "email",
            "audience": {"all_contacts": True},
            "template_ids": [template],
            "sender_ids": [sender],
            **fields,
        },
    )
    api.ok("POST", f"/v1/campaigns/{created['id']}/send")
    return str(created["id"])


def verified(secret: str, request: Received) -> dict[str, Any]:
    """Standard Webhooks verification, as a receiver would write it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
        + request.body
    )
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == expected
    return dict(json.loads(request.body))


def test_feedback_loop_end_to_end(stack: EmbeddedStack, hooks: tuple[Receiver, Receiver]):
    callbacks, webhooks = hooks
    api = Api(stack)
    outside(stack, "ses").verify_email_identity(EmailAddress=FROM)
    api.own(FROM)
    assert api.call("POST", "/v1/webhooks", {"url": "http://169.254.169.254/"}).status_code == 422
    webhook = api.ok(
        "POST",
        "/v1/webhooks",
        {"url": f"{webhooks.url}/hook", "event_types": ["message.bounced"]},
    )
    for address in ADDRESSES:
        api.ok("POST", "/v1/contacts", {"email": address})
    callback_url = f"{callbacks.url}/events?token=abc&list=7"
    first = campaign(api, event_callback=callback_url)

    expected = {"sent": 7, "delivered": 5, "bounced": 2, "complained": 1, "opened": 0}

    def settled() -> dict[str, Any] | None:
        stats = api.ok("GET", f"/v1/campaigns/{first}/stats")
        return stats if all(stats[k] == v for k, v in expected.items()) else None

    stats = eventually(settled)
    assert stats, api.ok("GET", f"/v1/campaigns/{first}/stats")
    assert stats["total_recipients"] == 7 and stats["delivery_rate"] == round(5 / 7, 4)

    # Aggregated callbacks: form POSTs to the URL as given, query string kept. Events of
    # one kind may straddle two windows: then they come in two POSTs.
    def posted(event: str) -> set[str]:
        addresses: set[str] = set()
        for request in callbacks.requests:
            fields = parse_qsl(request.body.decode())
            if fields[0] != ("event", event):
                continue
            assert request.path == "/events?token=abc&list=7"
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
            assert fields[1][0] == "when" and fields[1][1].isdigit()
            assert [k for k, _ in fields[2:]] == [f"email[{i}]" for i in range(len(fields) - 2)]
            addresses.update(v for _, v in fields[2:])
        return addresses

    delivered = {
        f"success@{SIM}",
        f"success+2@{SIM}",
        f"complaint@{SIM}",
        f"ooto@{SIM}",
        "reader@example.com",
    }
    assert eventually(lambda: posted("delivered") == delivered), posted("delivered")
    bounced = {f"bounce@{SIM}", f"suppressionlist@{SIM}"}
    assert eventually(lambda: posted("bounced") == bounced), posted("bounced")

    # The signed webhook: both bounces, each verifiable with the secret shown once.
    eventually(lambda: len(webhooks.requests) >= 2)
    payloads = [verified(webhook["secret"], r) for r in webhooks.requests]
    assert sorted(p["data"]["recipients"][0] for p in payloads) == [
        f"bounce@{SIM}",
        f"suppressionlist@{SIM}",
    ]
    assert {p["type"] for p in payloads} == {"message.bounced"}

    # A duplicate of a delivery, published as SES would: the stats do not move.
    messages = api.ok("GET", f"/v1/campaigns/{first}/messages?status=delivered")["items"]
    again = messages[0]
    duplicate = ses_record(
        "Delivery",
        tags={
            "herald-tenant": stack.tenant_id,
            "herald-campaign": first,
            "herald-message": again["message_id"],
        },
        ses_message_id=again["provider_message_id"],
        recipient=again["address"],
    )
    sqs = outside(stack, "sqs")
    feedback = sqs.get_queue_url(QueueName=get_settings().queue_name("feedback"))["QueueUrl"]
    # What the stack's feedback poller receives from now on (its own SQS client, in this
    # process): the duplicate must be among it, so "the stats did not move" means it was
    # handled and changed nothing, not that it never arrived.
    received: list[str] = []

    def receives(parsed: dict[str, Any], **_: Any) -> None:
        received.extend(m["Body"] for m in parsed.get("Messages", []))

    herald_sqs = client("sqs").meta.events
    herald_sqs.register("after-call.sqs.ReceiveMessage", receives)
    try:
        publish_ses_events([json.dumps(duplicate)], lambda service: outside(stack, service))
        assert eventually(
            lambda: any(carries(stack, body, again["provider_message_id"]) for body in received)
        ), "the duplicate never reached the feedback worker"
    finally:
        herald_sqs.unregister("after-call.sqs.ReceiveMessage", receives)

    def feedback_idle() -> bool:
        attributes = sqs.get_queue_attributes(
            QueueUrl=feedback,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(v == "0" for v in attributes.values())

    assert eventually(feedback_idle)  # handled and deleted: nothing left, nothing in flight
    dead_letters = sqs.get_queue_url(
        QueueName=herald_resources(get_settings()).queue("feedback").dead_letter_name
    )["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=dead_letters)  # not given up on
    assert api.ok("GET", f"/v1/campaigns/{first}/stats") == stats

    # The bounced and complained addresses are suppressed and skipped next time.
    second = campaign(api)

    def skipped() -> dict[str, int] | None:
        detail = api.ok("GET", f"/v1/campaigns/{second}")
        return detail["skipped"] if detail["status"] == "sent" else None

    assert eventually(skipped) == {"suppressed": 3}
    assert api.ok("GET", f"/v1/campaigns/{second}")["sent"] == 4
