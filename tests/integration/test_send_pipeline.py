"""The send pipeline end to end in moto: planner, sender, ledger, counters, completion.

Every test drives the real handlers through the local poller (``drain``) and reads the
result where a recipient would see it: moto's SES store of sent raw messages. Failures
are injected only at the AWS boundary (botocore event hooks on the SES client), never by
stubbing Herald's code.
"""

from __future__ import annotations

import email
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields, new_contact
from chalicelib.domain.feedback import TAG_CAMPAIGN
from chalicelib.domain.imports import ChunkPlan
from chalicelib.local.poller import SQS_RECEIVE_LIMIT, drain, invoke, sqs_event
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.sender import Pacer, forget_cached_content, send_test, worker_rate
from chalicelib.resources import herald_resources
from chalicelib.settings import QUEUE_ROLES, get_settings
from chalicelib.store import campaigns as campaign_store
from chalicelib.store.contacts import create_contact, set_status, write_import_plan
from chalicelib.store.counters import read_counts
from chalicelib.store.ledger import get_message, list_messages
from chalicelib.store.lists import add_members, create_list
from chalicelib.store.provider_messages import find_provider_message
from chalicelib.store.suppression import suppress
from tests.conftest import Tenant, body_of, own

REGION = "us-east-1"
FROM = "news@acme.com"
START = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)  # Tokyo 21:30, Berlin 14:30, LA 05:30


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def fast_and_fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pacing off (its arithmetic has its own test) and no content cached across tests."""
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "1000000")
    get_settings.cache_clear()
    forget_cached_content()
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


def drain_delivering_twice() -> int:
    """Like ``drain``, but SQS delivers every message twice: each one received is put back
    once more (marked, so the copy is not copied again) before its handler runs."""
    sqs = client("sqs")
    resources = herald_resources(get_settings())
    handled = 0
    while True:
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

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        client("ses").verify_email_identity(EmailAddress=FROM)
        own(tenant.id, FROM)  # verified out of band: an admin assigns it
        sender = self.ok(
            "POST",
            "/v1/senders",
            {"channel": "email", "from_email": FROM, "from_name": "Herald News"},
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


# -- the broadcast ------------------------------------------------------------------------
def test_broadcast_sends_exactly_once_per_eligible_contact(shop: Shop) -> None:
    everyone = shop.contacts(1000)
    unsubscribed, bounced, suppressed = everyone[:20], everyone[20:30], everyone[30:45]
    for contact_id in unsubscribed:
        set_status(shop.tenant.id, contact_id, "unsubscribed", START)
    for contact_id in bounced:
        set_status(shop.tenant.id, contact_id, "bounced", START)
    for n in range(30, 45):
        suppress(shop.tenant.id, f"person{n}@example.com", "complained", START)
    phone_only = create_contact(shop.tenant.id, ContactFields(phone="+4915112345678")).id
    first = create_list(shop.tenant.id, "Customers")
    second = create_list(shop.tenant.id, "Newsletter")
    add_members(shop.tenant.id, first.id, [*everyone[:600], phone_only], [])
    add_members(shop.tenant.id, second.id, everyone[400:], [])  # 200 in both lists
    campaign_id = shop.campaign({"list_ids": [first.id, second.id]})

    shop.send(campaign_id)
    drain()

    excluded = {*unsubscribed, *bounced, *suppressed}
    eligible = [c for c in everyone if c not in excluded]
    delivered = recipients_of(sent_mail())
    assert len(delivered) == len(eligible) == 955
    assert set(delivered.values()) == {1}
    assert all(f"person{n}@example.com" not in delivered for n in range(45))
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["total_recipients"] == 1001
    assert detail["sent"] == 955
    assert detail["failed"] == 0
    assert detail["skipped"] == {
        "unsubscribed": 20,
        "bounced": 10,
        "suppressed": 15,
        "no_address": 1,
    }
    assert detail["completed_at"] is not None


def test_message_carries_unsubscribe_headers_tags_and_is_findable(shop: Shop) -> None:
    (contact_id,) = shop.contacts(1, first_name="Ann")
    campaign_id = shop.campaign(track_clicks=False, reply_to="help@acme.com")
    shop.send(campaign_id)
    drain()

    (raw,) = sent_mail()
    mime = email.message_from_string(raw.raw_data)
    assert mime["Subject"] == "Hello Ann"
    assert mime["From"] == f"Herald News <{FROM}>"
    assert mime["Reply-To"] == "help@acme.com"
    assert mime["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = next(p for p in mime.walk() if p.get_content_type() == "text/html").get_payload(
        decode=True
    )
    assert b"<a ses:no-track href" in html
    records, cursor = list_messages(shop.tenant.id, campaign_id, ["main"])
    assert cursor is None
    (record,) = records
    assert record.contact_id == contact_id
    assert record.status == "sent"
    assert record.provider_message_id == raw.id
    assert record.template_id == shop.template_id
    found = get_message(shop.tenant.id, campaign_id, record.message_id)
    assert found.address == "person0@example.com"


def test_a_campaign_that_does_not_track_opens_turns_ses_open_tracking_off_per_message(
    shop: Shop, send_requests: list[dict[str, Any]]
) -> None:
    shop.contacts(2)
    tracked, untracked = shop.campaign(), shop.campaign(track_opens=False)
    for campaign_id in (tracked, untracked):
        shop.send(campaign_id)
    drain()

    assert len(sent_mail()) == len(send_requests) == 4
    by_campaign: dict[str, list[dict[str, Any]]] = {tracked: [], untracked: []}
    for request in send_requests:
        tags = {tag["Name"]: tag["Value"] for tag in request["EmailTags"]}
        by_campaign[tags[TAG_CAMPAIGN]].append(request)
        # One configuration set either way: its event destination feeds Herald's feedback.
        assert request["ConfigurationSetName"] == get_settings().ses_configuration_set
    assert [r.get("ConfigurationOverrides") for r in by_campaign[tracked]] == [None, None]
    assert [r.get("ConfigurationOverrides") for r in by_campaign[untracked]] == [
        {"Tracking": {"OpenTrackingEnabled": "DISABLED"}}
    ] * 2


def test_an_empty_audience_is_sent_at_once(shop: Shop) -> None:
    empty = create_list(shop.tenant.id, "Nobody")
    campaign_id = shop.campaign({"list_ids": [empty.id]})
    shop.send(campaign_id)
    drain()
    detail = shop.detail(campaign_id)
    assert detail["status"] == "sent"
    assert detail["total_recipients"] == 0
    assert sent_mail() == []


def test_sms_campaign_reaches_phones_and_leaves_provider_pointers(shop: Shop) -> None:
    sender = shop.ok("POST", "/v1/senders", {"channel": "sms", "sender_id": "Herald"})
    body = "Hi {{ contact.first_name }}"
    template = shop.ok("POST", "/v1/templates", {"name": "Ping", "channel": "sms", "body": body})
    phones = ["+4915112345670", "+4915112345671"]
    for phone in phones:
        create_contact(shop.tenant.id, ContactFields(phone=phone, first_name="Ann"))
    shop.contacts(1)  # email only: no address on this channel
    campaign_id = shop.campaign(
        channel="sms", template_ids=[template["id"]], sender_ids=[sender["id"]]
    )
    shop.send(campaign_id)
    drain()

    sms = sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages
    assert sorted(sms.values()) == [(phones[0], "Hi Ann"), (phones[1], "Hi Ann")]
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["skipped"]) == (
        "sent",
        2,
        {"no_address": 1},
    )
    for provider_id in sms:
        ref = find_provider_message(provider_id)
        assert ref is not None
        assert get_message(shop.tenant.id, ref.campaign_id, ref.message_id).channel == "sms"


def test_pacer_spaces_calls_to_the_worker_share_of_the_account_rate(
    frozen: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "20")
    monkeypatch.setenv("HERALD_SEND_WORKERS", "4")
    get_settings.cache_clear()
    pacer = Pacer(worker_rate("email"))  # 20/s over 4 workers: 5/s each
    for _ in range(6):
        pacer.wait()
    waited = (clock.now() - START).total_seconds()
    assert waited == pytest.approx(1.0, abs=0.001)  # the first call goes at once


# -- duplicates and crashes ---------------------------------------------------------------
def test_every_queue_message_delivered_twice_still_sends_once(shop: Shop) -> None:
    contacts = shop.contacts(160)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain_delivering_twice()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 160
    assert set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["sent"] == len(contacts)


def test_worker_killed_mid_batch_loses_nobody_and_duplicates_nobody(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any
) -> None:
    shop.contacts(120)
    campaign_id = shop.campaign()
    ses_hooks("before-call", lambda n: crash(n) if n == 7 else None)
    shop.send(campaign_id)
    drain()
    # The crashed attempt's message came straight back but found its lease still held:
    # it waits for the lease to run out rather than racing a holder that may be alive.
    assert shop.detail(campaign_id)["status"] == "sending"
    frozen.advance(timedelta(minutes=3))
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 120
    assert set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["sent"] == 120


def test_crash_after_provider_accepted_duplicates_at_most_one_message(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any
) -> None:
    """The crash window: SES took the message, the worker died before the ledger put."""
    shop.contacts(60)
    campaign_id = shop.campaign()
    ses_hooks("after-call", lambda n: crash(n) if n == 10 else None)
    shop.send(campaign_id)
    drain()
    frozen.advance(timedelta(minutes=3))
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 60
    assert sum(delivered.values()) - len(delivered) == 1  # exactly one duplicate, no more
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["sent"] == 60


def test_throttling_is_retried_and_rejections_are_counted_as_failed(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any
) -> None:
    shop.contacts(20)

    def provider_trouble(n: int) -> None:
        if n in (3, 4):
            raise ClientError({"Error": {"Code": "TooManyRequestsException"}}, "SendEmail")
        if n == 9:
            raise ClientError(
                {"Error": {"Code": "MessageRejected", "Message": "Email address is not verified"}},
                "SendEmail",
            )

    ses_hooks("before-call", provider_trouble)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain()

    assert len(recipients_of(sent_mail())) == 19
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["failed"]) == ("sent", 19, 1)
    failed, _ = list_messages(shop.tenant.id, campaign_id, ["main"], status="failed")
    assert len(failed) == 1
    assert failed[0].error is not None
    assert failed[0].error.startswith("MessageRejected")


# -- control ------------------------------------------------------------------------------
def test_cancel_midway_stops_further_sends(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    get_settings.cache_clear()
    shop.contacts(150)
    campaign_id = shop.campaign()

    def cancel_on_the_thirtieth(n: int) -> None:
        if n == 30:
            campaign_store.apply_action(shop.tenant.id, campaign_id, "cancel", clock.now())
            frozen.advance(timedelta(seconds=10))  # the sender re-reads the status every 5 s

    ses_hooks("after-call", cancel_on_the_thirtieth)
    shop.send(campaign_id)
    drain_all()

    assert len(recipients_of(sent_mail())) == 30
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "cancelled"
    assert detail["sent"] == 30
    assert detail["skipped"] == {"cancelled": 120}


def test_pause_and_resume_continue_without_resending(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    get_settings.cache_clear()
    shop.contacts(130)
    campaign_id = shop.campaign()

    def pause_on_the_fortieth(n: int) -> None:
        if n == 40:
            campaign_store.apply_action(shop.tenant.id, campaign_id, "pause", clock.now())
            frozen.advance(timedelta(seconds=10))

    ses_hooks("after-call", pause_on_the_fortieth)
    shop.send(campaign_id)
    drain()
    assert len(sent_mail()) == 40
    release_delayed_messages()
    drain()  # parked batches look again, find the campaign still paused, and wait again
    assert len(sent_mail()) == 40
    assert shop.detail(campaign_id)["status"] == "paused"

    shop.ok("POST", f"/v1/campaigns/{campaign_id}/resume")
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 130
    assert set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 130)


# -- timing rules -------------------------------------------------------------------------
def test_quiet_hours_hold_in_each_contacts_timezone(shop: Shop, frozen: clock.FrozenClock) -> None:
    shop.contacts(3, timezone="Europe/Berlin")  # 14:30: sends now
    shop.contacts(2, timezone="America/Los_Angeles")  # 05:30: waits until 08:00 (15:00Z)
    shop.contacts(2, timezone="Asia/Tokyo")  # 21:30: waits until 08:00 (23:00Z)
    shop.contacts(1)  # no timezone: the campaign's (Tokyo) applies
    campaign_id = shop.campaign(
        quiet_hours={"start": "21:00", "end": "08:00"}, timezone="Asia/Tokyo"
    )
    shop.send(campaign_id)

    def sent_by(at: datetime) -> int:
        frozen.set(at)
        drain_all()
        return len(sent_mail())

    assert sent_by(START) == 3
    assert sent_by(datetime(2026, 6, 1, 14, 59, tzinfo=UTC)) == 3
    assert shop.detail(campaign_id)["status"] == "sending"
    assert sent_by(datetime(2026, 6, 1, 15, 0, tzinfo=UTC)) == 5
    assert sent_by(datetime(2026, 6, 1, 22, 59, tzinfo=UTC)) == 5
    assert sent_by(datetime(2026, 6, 1, 23, 0, tzinfo=UTC)) == 8
    assert set(recipients_of(sent_mail()).values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 8)


def test_frequency_cap_counts_messages_of_every_campaign(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    shop.contacts(10)
    first = shop.campaign()  # no cap of its own, but its messages count against others'
    shop.send(first)
    drain()
    frozen.advance(timedelta(hours=1))
    capped = shop.campaign(frequency_cap={"max_messages": 1})
    shop.send(capped)
    drain()
    detail = assert_books_balance(shop, capped)
    assert (detail["status"], detail["sent"], detail["skipped"]) == (
        "sent",
        0,
        {"frequency_cap": 10},
    )
    roomier = shop.campaign(frequency_cap={"max_messages": 2})
    shop.send(roomier)
    drain()
    assert shop.detail(roomier)["sent"] == 10
    frozen.advance(timedelta(hours=24))  # the first campaign's sends leave the window
    later = shop.campaign(frequency_cap={"max_messages": 2})
    shop.send(later)
    drain()
    assert shop.detail(later)["sent"] == 10
    assert len(sent_mail()) == 30


# -- test sends ---------------------------------------------------------------------------
def test_test_send_reaches_only_the_given_addresses_and_counts_nothing(shop: Shop) -> None:
    shop.contacts(5)
    campaign_id = shop.campaign()
    campaign = campaign_store.get_campaign(shop.tenant.id, campaign_id)
    suppress(shop.tenant.id, "blocked@example.com", "manual", START)

    results = send_test(
        shop.tenant.id, campaign, ["person1@example.com", "qa@example.com", "blocked@example.com"]
    )

    assert [(r.address, r.status) for r in results] == [
        ("person1@example.com", "sent"),
        ("qa@example.com", "sent"),
        ("blocked@example.com", "skipped"),
    ]
    assert sorted(recipients_of(sent_mail())) == ["person1@example.com", "qa@example.com"]
    assert read_counts(shop.tenant.id, campaign_id) == {}
    assert shop.detail(campaign_id)["status"] == "draft"
