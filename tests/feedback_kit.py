"""What the feedback and notification tests share: a tenant ready to send campaigns, a
local HTTP receiver, and helpers to publish provider events the way AWS delivers them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from chalicelib.aws import client
from chalicelib.domain.contacts import ContactFields
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT
from chalicelib.local.poller import drain, invoke_handler
from chalicelib.local.ses_simulator import publish_ses_events
from chalicelib.pipeline.queues import queue_url
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings
from chalicelib.store.contacts import create_contact
from chalicelib.store.ledger import MessageRecord, list_messages
from tests.aws_events import logs_subscription_event
from tests.conftest import Tenant, body_of, own

FROM = "news@acme.example.com"


class Shop:
    """A tenant with an email and an SMS sender and template: campaigns in one call."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        client("ses").verify_email_identity(EmailAddress=FROM)
        own(tenant.id, FROM)  # verified out of band: an admin assigns it
        self.email_sender = self.ok(
            "POST", "/v1/senders", {"channel": "email", "from_email": FROM, "from_name": "News"}
        )["id"]
        self.sms_sender = self.ok("POST", "/v1/senders", {"channel": "sms", "sender_id": "ACME"})[
            "id"
        ]
        self.email_template = self.ok(
            "POST",
            "/v1/templates",
            {
                "name": "News",
                "channel": "email",
                "subject": "News",
                "html": '<p><a href="https://shop.example.com/sale">Sale</a>'
                ' <a href="{{ unsubscribe_url }}">unsubscribe</a></p>',
            },
        )["id"]
        self.sms_template = self.ok(
            "POST", "/v1/templates", {"name": "Sms", "channel": "sms", "body": "Sale today!"}
        )["id"]

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.tenant.call(method, path, body)
        assert response.status_code < 300, response.body
        return body_of(response)

    def contacts(self, addresses: Iterable[str]) -> list[str]:
        return [
            create_contact(
                self.tenant.id,
                ContactFields(**({"phone": a} if a.startswith("+") else {"email": a})),
            ).id
            for a in addresses
        ]

    def campaign(self, channel: str = "email", **fields: Any) -> str:
        email = channel == "email"
        created = self.ok(
            "POST",
            "/v1/campaigns",
            {
                "name": "Launch",
                "channel": channel,
                "audience": {"all_contacts": True},
                "template_ids": [self.email_template if email else self.sms_template],
                "sender_ids": [self.email_sender if email else self.sms_sender],
                **fields,
            },
        )
        return str(created["id"])

    def send(self, campaign_id: str) -> None:
        self.ok("POST", f"/v1/campaigns/{campaign_id}/send")
        drain()

    def stats(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"/v1/campaigns/{campaign_id}/stats"))

    def messages(self, campaign_id: str) -> dict[str, MessageRecord]:
        """The campaign's ledger records by address."""
        records, _ = list_messages(self.tenant.id, campaign_id, ["main"], limit=500)
        return {r.address: r for r in records}


def tags_of(tenant_id: str, record: MessageRecord) -> dict[str, str]:
    """The tags Herald's sender puts on a message (what SES copies onto its events)."""
    return {TAG_TENANT: tenant_id, TAG_CAMPAIGN: record.campaign_id, TAG_MESSAGE: record.message_id}


def publish(records: Iterable[dict[str, Any]]) -> None:
    """Publish provider records as the configuration set does (its topic or its stream)."""
    publish_ses_events([json.dumps(record) for record in records])


def log_sms_statuses(lines: Iterable[str], *, failures: bool = False) -> Any:
    """What a subscription filter on SNS's SMS status log group (the ``/Failure`` one with
    ``failures``) does with these log lines: invoke app.py's forwarder, as Lambda would."""
    settings = get_settings()
    spec = herald_resources(settings).sms_status_logs
    success_group, failure_group = spec.log_group_suffixes
    group = spec.log_group_prefix(settings.region, settings.account_id) + (
        failure_group if failures else success_group
    )
    event = logs_subscription_event(group, list(lines))
    return invoke_handler(spec.handler, event, spec.timeout_seconds)


def log_statuses(log_group: str, lines: Iterable[str]) -> Any:
    """What a subscription filter on ``log_group`` does with these log lines: invoke
    app.py's status forwarder, as Lambda would."""
    spec = herald_resources(get_settings()).sms_status_logs
    event = logs_subscription_event(log_group, list(lines))
    return invoke_handler(spec.handler, event, spec.timeout_seconds)


def put_on_feedback_queue(bodies: Iterable[dict[str, Any]]) -> None:
    """Queue bodies as they are (e.g. EventBridge events a rule delivers)."""
    url = queue_url("feedback")
    for body in bodies:
        client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(body))


def release_delayed_messages() -> None:
    """Make every delayed SQS message visible now (moto keeps delays in real time)."""
    for queue in sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues.values():
        for message in queue._messages:
            message.delayed_until = 0


def dead_letters(role: str) -> list[dict[str, Any]]:
    """The bodies waiting in a queue's DLQ (received and left there)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().dead_letter_queue_name(role))["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


# -- a local HTTP receiver ----------------------------------------------------------------
@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers with ``statuses`` in turn (the last one repeats)."""

    port: int = 0
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status_for_next(self) -> int:
        index = min(len(self.requests) - 1, len(self.statuses) - 1)
        return self.statuses[index]


@contextmanager
def receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for the test's duration."""
    state = Receiver(statuses=statuses or [200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                Received("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            status = state.status_for_next()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{state.url}/elsewhere")
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"private body")

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
