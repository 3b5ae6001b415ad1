"""What the send pipeline's tests share: a shop that campaigns, ways to drain the queues
(twice, with delays released), and hooks at the AWS boundary (botocore events on the SES
client) that inject faults without stubbing any of Herald's code.
"""

from __future__ import annotations

import email
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields, new_contact
from chalicelib.domain.imports import ChunkPlan
from chalicelib.local.poller import SQS_RECEIVE_LIMIT, drain, invoke, sqs_event
from chalicelib.pipeline.flows.sending import forget_pacers
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.send.compose import forget_cached_content
from chalicelib.resources import herald_resources
from chalicelib.settings import QUEUE_ROLES, get_settings
from chalicelib.store.contacts import write_import_plan
from tests.conftest import Tenant, body_of, own

REGION = "us-east-1"
FROM = "news@acme.com"
START = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)  # Tokyo 21:30, Berlin 14:30, LA 05:30


@pytest.fixture
def fast_sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pacing off (its arithmetic has its own test) and no content cached across tests."""
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "1000000")
    get_settings.cache_clear()
    forget_cached_content()
    forget_pacers()
    yield
    get_settings.cache_clear()
    forget_cached_content()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(START) as frozen_clock:
        yield frozen_clock


def sent_mail() -> list[Any]:
    """Raw messages moto's SES accepted, in order."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def recipients_of(messages: list[Any]) -> Counter[str]:
    return Counter(email.message_from_string(m.raw_data)["To"] for m in messages)


def release_delayed_messages() -> None:
    """Make every delayed SQS message visible now (moto keeps delays in real time)."""
    for queue in sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues.values():
        for message in queue._messages:
            message.delayed_until = 0


def drain_all(rounds: int = 5) -> int:
    """Drain, including messages delayed for later (pauses, leases, quiet hours).

    Bounded: a batch not yet due on the frozen clock puts itself back with a delay every
    time it is released, so "until nothing is left" would never come.
    """
    handled = 0
    for _ in range(rounds):
        release_delayed_messages()
        round_handled = drain()
        if not round_handled:
            break
        handled += round_handled
    return handled


def drain_delivering_twice(*, release_delays: bool = True) -> int:
    """Like ``drain``, but SQS delivers every message twice: each one received is put back
    once more (marked, so the copy is not copied again) before its handler runs.

    Delayed messages are released every round unless ``release_delays`` is False (a flow
    waiting seconds on the frozen clock would otherwise be woken early for ever)."""
    sqs = client("sqs")
    resources = herald_resources(get_settings())
    handled = 0
    while True:
        if release_delays:
            release_delayed_messages()
        round_handled = 0
        for role in QUEUE_ROLES:
            url = queue_url(role)
            received = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(resources.queue(role).batch_size, SQS_RECEIVE_LIMIT),
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            for message in received:
                if "copy" not in message.get("MessageAttributes", {}):
                    sqs.send_message(
                        QueueUrl=url,
                        MessageBody=message["Body"],
                        MessageAttributes={"copy": {"DataType": "String", "StringValue": "1"}},
                    )
            if not received:
                continue
            response = invoke(role, sqs_event(role, received))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for message in received:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            round_handled += len(received)
        if not round_handled:
            return handled
        handled += round_handled


class SesHook:
    """A botocore hook on the SES client that runs ``action`` on chosen SendEmail calls."""

    def __init__(self, event: str, action: Callable[[int], None]) -> None:
        self.event = event
        self.action = action
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
        self.action(self.calls)


@pytest.fixture
def ses_hooks() -> Iterator[Callable[[str, Callable[[int], None]], SesHook]]:
    events = client("sesv2").meta.events
    installed: list[SesHook] = []

    def install(when: str, action: Callable[[int], None]) -> SesHook:
        hook = SesHook(f"{when}.sesv2.SendEmail", action)
        events.register(hook.event, hook)
        installed.append(hook)
        return hook

    yield install
    for hook in installed:
        events.unregister(hook.event, hook)


@pytest.fixture
def send_requests() -> Iterator[list[dict[str, Any]]]:
    """The parameters of every SES SendEmail call Herald makes, as botocore receives them."""
    events = client("sesv2").meta.events
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    events.register("provide-client-params.sesv2.SendEmail", record)
    yield requests
    events.unregister("provide-client-params.sesv2.SendEmail", record)


def crash(_: int) -> None:
    raise RuntimeError("worker killed")


class Shop:
    """A tenant with a verified sender and an email template, ready to campaign."""

    def __init__(self, tenant: Tenant, from_email: str = FROM) -> None:
        self.tenant = tenant
        client("ses").verify_email_identity(EmailAddress=from_email)
        own(tenant.id, from_email)  # verified out of band: an admin assigns it
        sender = self.ok(
            "POST",
            "/v1/senders",
            {"channel": "email", "from_email": from_email, "from_name": "Herald News"},
        )
        assert sender["usable"], sender
        self.sender_id = sender["id"]
        template = self.ok(
            "POST",
            "/v1/templates",
            {
                "name": "Welcome",
                "channel": "email",
                "subject": "Hello {{ contact.first_name | default('friend') }}",
                "html": (
                    '<p>Hi! <a href="https://shop.example.com/">shop</a>'
                    ' <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'
                ),
            },
        )
        self.template_id = template["id"]
        self.numbers = itertools.count()

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.tenant.call(method, path, body)
        assert response.status_code < 300, response.body
        return body_of(response)

    def contacts(self, count: int, **fields: Any) -> list[str]:
        """``count`` new contacts, written the way a bulk import writes them (batched)."""
        plan = ChunkPlan()
        for _ in range(count):
            n = next(self.numbers)
            contact = new_contact(ContactFields(email=f"person{n}@example.com", **fields), START)
            plan.created[contact.id] = contact
            plan.claimed[("email", str(contact.email))] = contact.id
        write_import_plan(self.tenant.id, plan)
        return list(plan.created)

    def campaign(self, audience: dict[str, Any] | None = None, **fields: Any) -> str:
        created = self.ok(
            "POST",
            "/v1/campaigns",
            {
                "name": "Summer sale",
                "channel": "email",
                "audience": audience or {"all_contacts": True},
                "template_ids": [self.template_id],
                "sender_ids": [self.sender_id],
                **fields,
            },
        )
        return str(created["id"])

    def send(self, campaign_id: str) -> None:
        self.ok("POST", f"/v1/campaigns/{campaign_id}/send")

    def detail(self, campaign_id: str) -> Any:
        return self.ok("GET", f"/v1/campaigns/{campaign_id}")


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def assert_books_balance(shop: Shop, campaign_id: str) -> dict[str, Any]:
    """Every recipient is accounted for exactly once: sent + failed + skipped = total."""
    detail = shop.detail(campaign_id)
    accounted = detail["sent"] + detail["failed"] + sum(detail["skipped"].values())
    assert accounted == detail["total_recipients"], detail
    return dict(detail)
