"""The send pipeline end to end in moto: planner, sender, ledger, counters, completion.

Every test drives the real handlers through the local poller (``drain``) and reads the
result where a recipient would see it: moto's SES store of sent raw messages. Failures
are injected only at the AWS boundary (botocore event hooks on the SES client), never by
stubbing Herald's code.
"""

from __future__ import annotations

import email
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields
from chalicelib.domain.feedback import TAG_CAMPAIGN
from chalicelib.domain.flows.policy import hour_bucket
from chalicelib.domain.limits import LimitChanges
from chalicelib.local.poller import drain
from chalicelib.pipeline.send.pacing import Pacer, worker_rate
from chalicelib.pipeline.send.policy import Allow, admit
from chalicelib.pipeline.send.trial import send_test
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as campaign_store
from chalicelib.store.contacts import create_contact, get_contacts, set_status
from chalicelib.store.counters import read_counts
from chalicelib.store.enrolments import cap_counts
from chalicelib.store.ledger import get_message, list_messages
from chalicelib.store.lists import add_members, create_list
from chalicelib.store.provider_messages import find_provider_message
from chalicelib.store.quotas import set_limits
from chalicelib.store.suppression import suppress
from tests.flow_kit import put_flow
from tests.send_kit import (
    FROM,
    REGION,
    START,
    Shop,
    assert_books_balance,
    crash,
    drain_all,
    drain_delivering_twice,
    recipients_of,
    release_delayed_messages,
    sent_mail,
)

pytestmark = pytest.mark.usefixtures("fast_sends")


# -- the broadcast ------------------------------------------------------------------------
def test_broadcast_sends_exactly_once_per_eligible_contact(shop: Shop) -> None:
    everyone = shop.contacts(100)  # (several planner pages: test_watchdog.py's 1,200)
    unsubscribed, bounced, suppressed = everyone[:4], everyone[4:6], everyone[6:9]
    for contact_id in unsubscribed:
        set_status(shop.tenant.id, contact_id, "unsubscribed", START)
    for contact_id in bounced:
        set_status(shop.tenant.id, contact_id, "bounced", START)
    for n in range(6, 9):
        suppress(shop.tenant.id, f"person{n}@example.com", "complained", START)
    phone_only = create_contact(shop.tenant.id, ContactFields(phone="+4915112345678")).id
    first = create_list(shop.tenant.id, "Customers")
    second = create_list(shop.tenant.id, "Newsletter")
    add_members(shop.tenant.id, first.id, [*everyone[:60], phone_only], [])
    add_members(shop.tenant.id, second.id, everyone[40:], [])  # 20 in both lists
    campaign_id = shop.campaign({"list_ids": [first.id, second.id]})

    shop.send(campaign_id)
    drain()

    excluded = {*unsubscribed, *bounced, *suppressed}
    eligible = [c for c in everyone if c not in excluded]
    delivered = recipients_of(sent_mail())
    assert len(delivered) == len(eligible) == 91
    assert set(delivered.values()) == {1}
    assert all(f"person{n}@example.com" not in delivered for n in range(9))
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["total_recipients"] == 101
    assert detail["sent"] == 91
    assert detail["failed"] == 0
    assert detail["skipped"] == {
        "unsubscribed": 4,
        "bounced": 2,
        "suppressed": 3,
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


def test_sms_to_a_country_the_tenant_may_not_reach_is_skipped_with_its_reason(
    shop: Shop,
) -> None:
    set_limits(shop.tenant.id, LimitChanges(sms_countries=["DE"]))
    sender = shop.ok("POST", "/v1/senders", {"channel": "sms", "sender_id": "Herald"})
    template = shop.ok("POST", "/v1/templates", {"name": "P", "channel": "sms", "body": "Hi"})
    for phone in ("+4915112345670", "+14155550123", "+447911123456"):
        create_contact(shop.tenant.id, ContactFields(phone=phone))
    campaign_id = shop.campaign(
        channel="sms", template_ids=[template["id"]], sender_ids=[sender["id"]]
    )
    shop.send(campaign_id)
    drain()

    sms = sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages
    assert [number for number, _ in sms.values()] == ["+4915112345670"]
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["skipped"]) == (
        "sent",
        1,
        {"country_not_allowed": 2},
    )


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
def test_every_queue_message_delivered_twice_still_sends_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")  # two batches, as 160 in 100s
    get_settings.cache_clear()
    contacts = shop.contacts(16)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain_delivering_twice()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 16
    assert set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["sent"] == len(contacts)


def test_worker_killed_mid_batch_loses_nobody_and_duplicates_nobody(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")  # two batches, as 120 in 100s
    get_settings.cache_clear()
    shop.contacts(12)
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
    assert len(delivered) == 12
    assert set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent"
    assert detail["sent"] == 12


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


def test_frequency_cap_counts_messages_of_every_capped_campaign(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    """The tenant-wide cap counts the messages of every campaign that has a cap (a
    campaign without one is not counted: docs/engine.md, frequency caps)."""
    shop.contacts(10)
    first = shop.campaign(frequency_cap={"max_messages": 5})  # roomy, but it counts
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
    frozen.advance(timedelta(hours=24))  # both campaigns' hourly buckets leave the window
    later = shop.campaign(frequency_cap={"max_messages": 2})
    shop.send(later)
    drain()
    assert shop.detail(later)["sent"] == 10
    assert len(sent_mail()) == 30


def test_a_broadcast_and_a_flow_racing_for_the_last_slot_send_once(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    """The flow's send is admitted between the broadcast batch's read of the contact's
    counts and its write: the broadcast's conditional write fails, it reads again, and
    the contact is capped; the uncontested contact gets the broadcast."""
    contested, other = shop.contacts(2)
    broadcast = shop.campaign(frequency_cap={"max_messages": 1})
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {
                    "id": "mail",
                    "kind": "send",
                    "config": {"channel": "email", "template_ids": [shop.template_id]},
                },
            ],
            "edges": [{"source": "start", "target": "mail"}],
        },
        frequency_cap={"max_messages": 1},
    )
    person = get_contacts(shop.tenant.id, [contested])[contested]
    flow_answers: list[object] = []

    def the_flow_sends_first(params: dict[str, Any], **_: Any) -> None:
        if not flow_answers and f"CAPS#{contested}" in str(params.get("Key")):
            flow_answers.append("racing")
            flow_answers[0] = admit(shop.tenant.id, flow, person, clock.now(), due_at=clock.now())

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", the_flow_sends_first)
    try:
        shop.send(broadcast)
        drain()
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", the_flow_sends_first)

    assert flow_answers == [Allow(hour_bucket(clock.now()))]
    detail = assert_books_balance(shop, broadcast)
    assert (detail["sent"], detail["skipped"]) == (1, {"frequency_cap": 1})
    assert list(recipients_of(sent_mail())) == ["person1@example.com"]
    assert cap_counts(shop.tenant.id, contested, broadcast).tenant == {hour_bucket(clock.now()): 1}
    assert cap_counts(shop.tenant.id, other, broadcast).campaign == {hour_bucket(clock.now()): 1}


def test_a_broadcasts_own_cap_skips_contacts_it_already_reached(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    people = shop.contacts(5)
    broadcast = shop.campaign(campaign_frequency_cap={"max_messages": 1, "per_hours": 48})
    stored = campaign_store.get_campaign(shop.tenant.id, broadcast)
    # Two of them already got a message of this campaign (its flow side, say).
    for person in get_contacts(shop.tenant.id, people[:2]).values():
        assert isinstance(admit(shop.tenant.id, stored, person, START, due_at=START), Allow)

    shop.send(broadcast)
    drain()

    detail = assert_books_balance(shop, broadcast)
    assert (detail["sent"], detail["skipped"]) == (3, {"campaign_frequency_cap": 2})
    # It has no tenant-wide cap of its own, but its messages count against others'.
    capped = shop.campaign(frequency_cap={"max_messages": 1})
    shop.send(capped)
    drain()
    assert shop.detail(capped)["skipped"] == {"frequency_cap": 5}
    assert len(sent_mail()) == 3


def test_caps_cost_one_read_per_batch_and_one_write_per_message_and_nothing_uncapped(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")
    get_settings.cache_clear()
    shop.contacts(15)  # two batches of 10
    calls: list[str] = []

    def on_cap_counters(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "CAPS#" in str(params.get("Key") or params.get("RequestItems")):
            calls.append(model.name)

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", on_cap_counters)
    try:
        uncapped = shop.campaign()
        shop.send(uncapped)
        drain()
        assert (shop.detail(uncapped)["sent"], calls) == (15, [])

        capped = shop.campaign(frequency_cap={"max_messages": 5})
        shop.send(capped)
        drain()
    finally:
        events.unregister("provide-client-params.dynamodb", on_cap_counters)
    assert shop.detail(capped)["sent"] == 15
    assert sorted(Counter(calls).items()) == [("BatchGetItem", 2), ("UpdateItem", 15)]


def test_a_message_that_did_not_go_out_gives_its_cap_slot_back(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quota spent mid-batch hands the batch back; the retry sends the recipient whose
    slot was counted and then released, instead of capping it on its own count."""
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    get_settings.cache_clear()
    shop.contacts(4)
    capped = shop.campaign(frequency_cap={"max_messages": 1})

    def quota_spent_on_the_third(call: int) -> None:
        if call == 3:
            raise ClientError(
                {"Error": {"Code": "LimitExceededException", "Message": "quota"}}, "SendEmail"
            )

    ses_hooks("before-call", quota_spent_on_the_third)
    shop.send(capped)
    drain()
    assert shop.detail(capped)["status"] == "paused"
    frozen.advance(timedelta(minutes=61))  # the quota window rolls over, the cap's does not
    drain_all()

    detail = assert_books_balance(shop, capped)
    assert (detail["status"], detail["sent"], detail["skipped"]) == ("sent", 4, {})
    assert set(recipients_of(sent_mail()).values()) == {1}


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
