"""The feedback loop in moto: real-format SES/SNS events through the SNS topics and the
feedback queue into the real worker, then read back through the API.

Campaigns are sent by the real pipeline; their events come from the SES simulator (which
watches moto's SES/SNS calls) or are built from AWS's published samples with the tags
Herald set. Nothing of Herald's is stubbed.
"""

from __future__ import annotations

import email
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.domain import clock
from chalicelib.domain.delivery import message_id
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT
from chalicelib.local.poller import drain, invoke_handler
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings
from chalicelib.store.counters import read_counts
from chalicelib.store.suppression import is_suppressed
from tests.aws_events import (
    eventbridge_envelope,
    logs_subscription_event,
    ses_record,
    sms_status,
)
from tests.conftest import Tenant, body_of
from tests.feedback_kit import (
    Shop,
    dead_letters,
    log_sms_statuses,
    publish,
    put_on_feedback_queue,
    release_delayed_messages,
    tags_of,
)

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SIM = "simulator.amazonses.com"


@pytest.fixture(autouse=True)
def fresh_settings(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000", simulator_delay_seconds="0")


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(START) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def feedback(simulator: FeedbackSimulator) -> None:
    """Let the simulator publish what it saw, then run the feedback worker."""
    simulator.flush()
    drain()


def sent_to() -> list[str]:
    messages = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [email.message_from_string(m.raw_data)["To"] for m in messages]


# -- the simulator scenario ---------------------------------------------------------------
def test_campaign_to_simulator_addresses_shows_exact_stats_and_suppresses(
    shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock
) -> None:
    addresses = [
        f"success@{SIM}",
        f"success+2@{SIM}",
        f"bounce@{SIM}",
        f"complaint@{SIM}",
        f"ooto@{SIM}",
        f"suppressionlist@{SIM}",
        "reader@example.com",
    ]
    shop.contacts(addresses)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    feedback(simulator)

    stats = shop.stats(campaign_id)
    assert {k: stats[k] for k in ("total_recipients", "sent", "failed")} == {
        "total_recipients": 7,
        "sent": 7,
        "failed": 0,
    }
    assert {k: stats[k] for k in ("delivered", "bounced", "complained", "opened", "clicked")} == {
        "delivered": 5,  # success, success+2, complaint, ooto, reader
        "bounced": 2,  # bounce, suppressionlist
        "complained": 1,
        "opened": 0,  # open and click rates are 0 in tests
        "clicked": 0,
    }
    assert stats["delivery_rate"] == round(5 / 7, 4)
    assert stats["bounce_rate"] == round(2 / 7, 4)
    assert stats["unsubscribed"] == 0 and stats["unsubscribe_rate"] == 0.0

    statuses = {a: r.status for a, r in shop.messages(campaign_id).items()}
    assert statuses == {
        f"success@{SIM}": "delivered",
        f"success+2@{SIM}": "delivered",
        f"bounce@{SIM}": "bounced",
        f"complaint@{SIM}": "complained",
        f"ooto@{SIM}": "delivered",
        f"suppressionlist@{SIM}": "bounced",
        "reader@example.com": "delivered",
    }
    suppressed = {a for a in addresses if is_suppressed(shop.tenant.id, a)}
    assert suppressed == {f"bounce@{SIM}", f"complaint@{SIM}", f"suppressionlist@{SIM}"}

    # The next campaign skips them.
    before = len(sent_to())
    second = shop.campaign()
    shop.send(second)
    newly_sent = sent_to()[before:]
    assert sorted(newly_sent) == sorted(set(addresses) - suppressed)
    detail = shop.ok("GET", f"/v1/campaigns/{second}")
    assert detail["skipped"] == {"suppressed": 3}


def test_open_and_click_rates_make_demo_numbers(
    shop: Shop, simulator: FeedbackSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SIMULATOR_OPEN_RATE", "1")
    monkeypatch.setenv("HERALD_SIMULATOR_CLICK_RATE", "1")
    get_settings.cache_clear()
    shop.contacts(["a@example.com", "b@example.com"])
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    feedback(simulator)
    stats = shop.stats(campaign_id)
    assert (stats["delivered"], stats["opened"], stats["clicked"]) == (2, 2, 2)
    assert (stats["open_rate"], stats["click_rate"]) == (1.0, 1.0)
    record = shop.messages(campaign_id)["a@example.com"]
    assert record.status == "clicked"
    assert record.model_extra and record.model_extra["clicked_link"] == (
        "https://shop.example.com/sale"
    )


def test_a_campaign_that_does_not_track_opens_records_no_opens(
    shop: Shop, simulator: FeedbackSimulator, herald_env: Callable[..., None]
) -> None:
    herald_env(simulator_open_rate="1")  # every reader whose mail can be tracked opens
    shop.contacts(["a@example.com", "b@example.com"])
    tracked, untracked = shop.campaign(), shop.campaign(track_opens=False)
    for campaign_id in (tracked, untracked):
        shop.send(campaign_id)
    feedback(simulator)

    counts = {
        campaign_id: {k: shop.stats(campaign_id)[k] for k in ("delivered", "opened")}
        for campaign_id in (tracked, untracked)
    }
    assert counts == {
        tracked: {"delivered": 2, "opened": 2},
        untracked: {"delivered": 2, "opened": 0},
    }
    assert {r.status for r in shop.messages(tracked).values()} == {"opened"}
    assert {r.status for r in shop.messages(untracked).values()} == {"delivered"}


def test_a_campaign_that_does_not_track_clicks_records_no_clicks(
    shop: Shop, simulator: FeedbackSimulator, herald_env: Callable[..., None]
) -> None:
    """Its links go out marked ``ses:no-track``, which SES leaves alone: the simulator too."""
    herald_env(simulator_open_rate="1", simulator_click_rate="1")
    shop.contacts(["a@example.com", "b@example.com"])
    tracked, untracked = shop.campaign(), shop.campaign(track_clicks=False)
    for campaign_id in (tracked, untracked):
        shop.send(campaign_id)
    feedback(simulator)

    clicks = {c: shop.stats(c)["clicked"] for c in (tracked, untracked)}
    assert clicks == {tracked: 2, untracked: 0}
    assert {r.status for r in shop.messages(untracked).values()} == {"opened"}


# -- duplicates, late and out-of-order events ---------------------------------------------
def _events_for(shop: Shop, campaign_id: str) -> list[dict[str, Any]]:
    """A realistic mess: a message clicked before its open and delivery arrive, one opened
    twice, one bounced after it was delivered (an asynchronous bounce)."""
    records = shop.messages(campaign_id)
    one, two, three = (records[f"{n}@example.com"] for n in ("one", "two", "three"))
    t = START

    def event(kind: str, record: Any, seconds: int, **section: Any) -> dict[str, Any]:
        return ses_record(
            kind,
            tags=tags_of(shop.tenant.id, record),
            ses_message_id=record.provider_message_id,
            recipient=record.address,
            at=t + timedelta(seconds=seconds),
            **section,
        )

    return [
        event("Click", one, 30),
        event("Open", one, 20),
        event("Delivery", one, 5),
        event("Send", one, 1),
        event("Delivery", two, 5),
        event("Open", two, 10),
        event("Open", two, 50),  # a second open of the same message
        event("Delivery", three, 5),
        event("Bounce", three, 60),
        event("DeliveryDelay", three, 3),  # late: the message is already further
    ]


def _snapshot(shop: Shop, campaign_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    statuses = {a: r.status for a, r in shop.messages(campaign_id).items()}
    return shop.stats(campaign_id), statuses


def test_duplicate_and_out_of_order_events_leave_stats_unchanged(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    shop.contacts(["one@example.com", "two@example.com", "three@example.com"])
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    events = _events_for(shop, campaign_id)
    publish(events[:5])
    put_on_feedback_queue(eventbridge_envelope(e) for e in events[5:])  # the EventBridge route
    drain()

    stats, statuses = _snapshot(shop, campaign_id)
    assert statuses == {
        "one@example.com": "clicked",
        "two@example.com": "opened",
        "three@example.com": "bounced",
    }
    counted = {k: stats[k] for k in ("delivered", "opened", "clicked", "bounced")}
    assert counted == {"delivered": 3, "opened": 2, "clicked": 1, "bounced": 1}
    assert read_counts(shop.tenant.id, campaign_id)["delayed"] == 1

    # Every event again, twice, in a shuffled order, through both routes.
    replay = events * 2
    random.Random(7).shuffle(replay)
    publish(replay[:10])
    put_on_feedback_queue(eventbridge_envelope(e) for e in replay[10:])
    drain()
    assert _snapshot(shop, campaign_id) == (stats, statuses)


def test_message_api_filters_by_status_and_shows_the_timeline(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    shop.contacts(["one@example.com", "two@example.com", "three@example.com"])
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    publish(_events_for(shop, campaign_id))
    drain()

    opened = shop.ok("GET", f"/v1/campaigns/{campaign_id}/messages?status=opened")
    assert [m["address"] for m in opened["items"]] == ["two@example.com"]
    assert opened["next_cursor"] is None
    everything = shop.ok("GET", f"/v1/campaigns/{campaign_id}/messages?limit=500")
    assert len(everything["items"]) == 3
    one = shop.messages(campaign_id)["one@example.com"]
    message = shop.ok("GET", f"/v1/campaigns/{campaign_id}/messages/{one.message_id}")
    assert message["status"] == "clicked"
    timeline = message["timeline"]
    assert timeline[0]["event"] == "sent" and timeline[0]["at"].startswith("2026-06-01T12:00:00")
    assert [(e["event"], e["at"]) for e in timeline[1:]] == [
        ("delivered", "2026-06-01T12:00:05Z"),
        ("opened", "2026-06-01T12:00:20Z"),
        ("clicked", "2026-06-01T12:00:30Z"),
    ]
    bounced = shop.ok(
        "GET",
        f"/v1/campaigns/{campaign_id}/messages/"
        f"{shop.messages(campaign_id)['three@example.com'].message_id}",
    )
    assert (bounced["bounce_type"], bounced["bounce_subtype"]) == ("Permanent", "General")
    missing = shop.tenant.call("GET", f"/v1/campaigns/{campaign_id}/messages/m_bm9uZQ")
    assert missing.status_code == 404


def test_stats_and_messages_of_another_tenant_are_not_found(
    shop: Shop, other_tenant: Tenant
) -> None:
    shop.contacts(["one@example.com"])
    campaign_id = shop.campaign()
    for path in ("stats", "messages"):
        response = other_tenant.call("GET", f"/v1/campaigns/{campaign_id}/{path}")
        assert response.status_code == 404
        assert body_of(response)["error"]["field"] == "campaign_id"


# -- suppression --------------------------------------------------------------------------
def test_permanent_bounce_and_complaint_suppress_and_transient_bounce_does_not(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    shop.contacts(["hard@example.com", "soft@example.com", "angry@example.com"])
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    records = shop.messages(campaign_id)

    def event(kind: str, address: str, **section: Any) -> dict[str, Any]:
        record = records[address]
        return ses_record(
            kind,
            tags=tags_of(shop.tenant.id, record),
            ses_message_id=record.provider_message_id,
            recipient=address,
            **section,
        )

    publish(
        [
            event("Bounce", "hard@example.com"),
            event(
                "Bounce", "soft@example.com", bounceType="Transient", bounceSubType="MailboxFull"
            ),
            event("Delivery", "angry@example.com"),
            event("Complaint", "angry@example.com"),
        ]
    )
    drain()
    assert is_suppressed(shop.tenant.id, "hard@example.com")
    assert is_suppressed(shop.tenant.id, "angry@example.com")
    assert not is_suppressed(shop.tenant.id, "soft@example.com")
    reasons = {s["address"]: s["reason"] for s in shop.ok("GET", "/v1/suppressions")["items"]}
    assert reasons == {"hard@example.com": "bounced", "angry@example.com": "complained"}
    stats = shop.stats(campaign_id)
    assert (stats["bounced"], stats["soft_bounced"], stats["complained"]) == (1, 1, 1)
    assert shop.messages(campaign_id)["soft@example.com"].status == "soft_bounced"


# -- SMS ----------------------------------------------------------------------------------
def test_sms_status_maps_to_delivered_bounced_and_soft_bounced(
    shop: Shop, simulator: FeedbackSimulator
) -> None:
    """The simulator logs what SNS would and delivers it as a subscription filter does: to
    the forwarder, then the feedback queue and worker (the path an AWS deployment runs)."""
    failing = get_settings().simulator_failing_numbers[0]
    invalid = get_settings().simulator_invalid_numbers[0]
    shop.contacts(["+4915112345678", failing, invalid])
    campaign_id = shop.campaign("sms")
    shop.send(campaign_id)
    feedback(simulator)
    stats = shop.stats(campaign_id)
    assert (stats["sent"], stats["delivered"], stats["bounced"]) == (3, 1, 1)
    assert (stats["soft_bounced"], stats["opened"], stats["complained"]) == (1, 0, 0)
    statuses = {a: r.status for a, r in shop.messages(campaign_id).items()}
    assert statuses == {
        "+4915112345678": "delivered",
        failing: "soft_bounced",
        invalid: "bounced",
    }
    # "Unknown error attempting to reach phone" may pass: counted, not suppressed.
    assert not is_suppressed(shop.tenant.id, failing)
    assert is_suppressed(shop.tenant.id, invalid)  # "Invalid phone number" is permanent
    assert dead_letters("feedback") == []


def test_temporary_sms_failure_soft_bounces_and_keeps_the_number(shop: Shop) -> None:
    """AWS's failure sample ("Unknown error attempting to reach phone") for a sent SMS, as
    the subscription on the Failure log group delivers it."""
    shop.contacts(["+4915112345678", "+4915187654321"])
    campaign_id = shop.campaign("sms")
    shop.send(campaign_id)
    messages = shop.messages(campaign_id)
    soft, hard = messages["+4915112345678"], messages["+4915187654321"]
    at = datetime.now(UTC)
    lines = [
        json.dumps(
            sms_status(
                success=False,
                sns_message_id=str(soft.provider_message_id),
                phone=soft.address,
                at=at,
            )
        ),
        json.dumps(
            sms_status(
                success=False,
                sns_message_id=str(hard.provider_message_id),
                phone=hard.address,
                at=at,
                response="Phone number is opted out",
            )
        ),
    ]
    assert log_sms_statuses(lines, failures=True) == {"forwarded": 2}
    assert drain() == 2
    stats = shop.stats(campaign_id)
    assert (stats["soft_bounced"], stats["bounced"], stats["delivered"]) == (1, 1, 0)
    after = shop.messages(campaign_id)
    assert (after[soft.address].status, after[hard.address].status) == ("soft_bounced", "bounced")
    assert not is_suppressed(shop.tenant.id, soft.address)
    assert is_suppressed(shop.tenant.id, hard.address)
    # A second delivery of the same log lines (Lambda retried the forwarder) counts nothing.
    log_sms_statuses(lines, failures=True)
    drain()
    assert shop.stats(campaign_id) == stats


def test_forwarder_ignores_control_messages_and_dead_letters_lines_that_are_no_status(
    shop: Shop,
) -> None:
    """CloudWatch Logs checks a new subscription with a CONTROL_MESSAGE: nothing to forward.
    A line that is no status record fails in the worker and waits in the feedback DLQ."""
    settings = get_settings()
    spec = herald_resources(settings).sms_status_logs
    control = logs_subscription_event(
        "sns/x/y/DirectPublishToPhoneNumber", ["CWL CONTROL MESSAGE"], "CONTROL_MESSAGE"
    )
    assert invoke_handler(spec.handler, control, spec.timeout_seconds) == {"forwarded": 0}
    assert drain() == 0
    assert log_sms_statuses(["not a status record"]) == {"forwarded": 1}
    drain()  # fails maxReceiveCount times, then the queue moves it to its DLQ
    assert dead_letters("feedback") == [{"kind": "sms.status", "status": "not a status record"}]


def test_sms_status_for_no_herald_message_is_retried_while_young_then_dropped(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    """Young: queued again (it may be a send still being recorded). Old: dropped (another
    application's SMS). Neither ends in the DLQ."""
    young = sms_status(success=True, sns_message_id="young", phone="+4915100000001", at=START)
    old = sms_status(
        success=True, sns_message_id="old", phone="+4915100000002", at=START - timedelta(days=1)
    )
    log_sms_statuses([json.dumps(young), json.dumps(old)])
    assert drain() == 2
    release_delayed_messages()
    assert drain() == 1  # the young one came back once
    frozen.advance(timedelta(minutes=11))
    release_delayed_messages()
    assert drain() == 1  # and now is dropped
    release_delayed_messages()
    assert drain() == 0
    assert dead_letters("feedback") == []


def test_event_that_beats_the_ledger_write_is_applied_once_the_record_exists(
    shop: Shop,
) -> None:
    (contact_id,) = shop.contacts(["early@example.com"])
    campaign_id = shop.campaign()
    early = ses_record(
        "Delivery",
        tags={
            TAG_TENANT: shop.tenant.id,
            TAG_CAMPAIGN: campaign_id,
            TAG_MESSAGE: message_id("main", contact_id, "email"),
        },
        recipient="early@example.com",
        at=clock.now(),
    )
    early["mail"]["timestamp"] = early["delivery"]["timestamp"]
    publish([early])
    drain()  # no record yet: queued again with a delay
    assert shop.stats(campaign_id)["delivered"] == 0
    shop.send(campaign_id)
    release_delayed_messages()
    drain()
    assert shop.stats(campaign_id)["delivered"] == 1
    assert shop.messages(campaign_id)["early@example.com"].status == "delivered"
    assert dead_letters("feedback") == []


# -- unsubscribes -------------------------------------------------------------------------
def test_unsubscribe_link_counts_once_on_the_campaign(shop: Shop) -> None:
    shop.contacts(["leaver@example.com", "stayer@example.com"])
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    raw = next(
        m.raw_data
        for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
        if "leaver@example.com" in m.raw_data
    )
    link = email.message_from_string(raw)["List-Unsubscribe"].strip("<>")
    path = urlsplit(link).path
    for _ in range(2):
        response = shop.tenant.client.http.post(
            path, headers={}, body=b"List-Unsubscribe=One-Click"
        )
        assert response.status_code == 200
    stats = shop.stats(campaign_id)
    assert (stats["unsubscribed"], stats["unsubscribe_rate"]) == (1, 0.0)  # nothing delivered
    assert shop.messages(campaign_id)["leaver@example.com"].status == "unsubscribed"
    assert shop.messages(campaign_id)["stayer@example.com"].status == "sent"


def test_untagged_email_events_are_dropped_not_retried(shop: Shop) -> None:
    """Identity notifications and other applications' mail carry no Herald tags."""
    record = ses_record("Bounce", at=clock.now())
    record["notificationType"] = record.pop("eventType")
    record["mail"]["timestamp"] = record["bounce"]["timestamp"]
    publish([record])
    drain()
    assert dead_letters("feedback") == []
    assert not is_suppressed(shop.tenant.id, "recipient@example.com")
