"""Outgoing notifications in moto with a real HTTP receiver on 127.0.0.1: the seed's
aggregated form callbacks, Standard Webhooks signatures, retries, 410, the DLQ, and the
SSRF refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

import app as herald
from chalicelib.domain import clock
from chalicelib.domain.webhooks import MAX_ATTEMPTS, RETRY_SCHEDULE_SECONDS
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.pipeline.feedback import on_messages_sent
from chalicelib.pipeline.tick import run_tick
from chalicelib.settings import get_settings
from chalicelib.store.campaigns import get_campaign
from tests.conftest import Tenant, body_of
from tests.feedback_kit import (
    Received,
    Shop,
    dead_letters,
    receiver,
    release_delayed_messages,
)

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a window boundary for 60 s windows
SIM = "simulator.amazonses.com"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def fresh_settings(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000", simulator_delay_seconds="0")


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the embedded stack sets: callbacks to 127.0.0.1 allowed (and nothing else)."""
    monkeypatch.setenv("HERALD_ALLOW_LOOPBACK_CALLBACKS", "true")
    get_settings.cache_clear()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(START) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def form(request: Received) -> list[tuple[str, str]]:
    assert request.headers["Content-Type"] == FORM
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def by_event(requests: list[Received]) -> dict[str, list[tuple[str, str]]]:
    return {dict(form(r))["event"]: form(r) for r in requests}


def addresses_in(fields: list[tuple[str, str]], name: str = "email") -> set[str]:
    keys = [k for k, _ in fields[2:]]
    assert keys == [f"{name}[{i}]" for i in range(len(keys))]  # numbered from 0, in order
    return {v for _, v in fields[2:]}


# -- aggregated callbacks (seed 003) ------------------------------------------------------
def test_aggregated_callbacks_post_the_seed_form_when_the_window_ends(
    shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock, loopback: None
) -> None:
    with receiver() as hook:
        url = f"{hook.url}/events?token=s3cr%20t&campaign=launch&x[]=1"
        shop.contacts([f"success@{SIM}", f"success+1@{SIM}", f"bounce@{SIM}"])
        campaign_id = shop.campaign(event_callback=url)
        shop.send(campaign_id)
        simulator.flush()
        drain()
        assert hook.requests == []  # the window is still open

        run_tick(herald.TICK_JOBS, START + timedelta(seconds=30))
        drain()
        assert hook.requests == []

        frozen.advance(timedelta(seconds=62))  # the window's delayed flush becomes due
        release_delayed_messages()
        drain()

        assert {r.path for r in hook.requests} == {"/events?token=s3cr%20t&campaign=launch&x[]=1"}
        posts = by_event(hook.requests)
        # The sender reports every accepted message as submitted; SES's events follow.
        assert set(posts) == {"submitted", "delivered", "bounced"}
        assert addresses_in(posts["submitted"]) == {
            f"success@{SIM}",
            f"success+1@{SIM}",
            f"bounce@{SIM}",
        }
        delivered, bounced = posts["delivered"], posts["bounced"]
        assert delivered[:2] == [("event", "delivered"), ("when", str(int(START.timestamp()) + 2))]
        assert addresses_in(delivered) == {f"success@{SIM}", f"success+1@{SIM}"}
        assert bounced[:2] == [("event", "bounced"), ("when", str(int(START.timestamp()) + 2))]
        assert addresses_in(bounced) == {f"bounce@{SIM}"}

        # The tick finds nothing left: each window is posted once.
        run_tick(herald.TICK_JOBS, START + timedelta(minutes=5))
        release_delayed_messages()
        drain()
        assert len(hook.requests) == 3


def test_submitted_comes_from_herald_own_send_and_the_tick_flushes_a_lost_window(
    shop: Shop, frozen: clock.FrozenClock, loopback: None
) -> None:
    with receiver() as hook:
        shop.contacts(["a@example.com", "b@example.com"])
        campaign_id = shop.campaign(event_callback=f"{hook.url}/cb")
        shop.send(campaign_id)
        campaign = get_campaign(shop.tenant.id, campaign_id)
        sent = list(shop.messages(campaign_id).values())
        on_messages_sent(shop.tenant.id, campaign, sent)  # what the sender calls per batch
        on_messages_sent(shop.tenant.id, campaign, sent)  # a retried batch: same chunk
        # The delayed flush message is lost (never released); the tick finds the window.
        run_tick(herald.TICK_JOBS, START + timedelta(seconds=63))
        drain()
        assert len(hook.requests) == 1
        fields = form(hook.requests[0])
        assert fields[:2] == [("event", "submitted"), ("when", str(int(START.timestamp())))]
        assert addresses_in(fields) == {"a@example.com", "b@example.com"}


def test_sms_callbacks_name_telephones_and_only_delivered_and_bounced(
    shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock, loopback: None
) -> None:
    failing = get_settings().simulator_failing_numbers[0]
    invalid = get_settings().simulator_invalid_numbers[0]
    with receiver() as hook:
        shop.contacts(["+4915112345678", failing, invalid])
        campaign_id = shop.campaign("sms", event_callback=f"{hook.url}/sms")
        shop.send(campaign_id)
        simulator.flush()
        drain()
        frozen.advance(timedelta(seconds=62))
        release_delayed_messages()
        drain()
        posts = by_event(hook.requests)
        assert set(posts) == {"delivered", "bounced"}
        assert addresses_in(posts["delivered"], "telephone") == {"+4915112345678"}
        # Only a permanent failure is the seed's bounced; the temporary one is not called back.
        assert addresses_in(posts["bounced"], "telephone") == {invalid}


def test_event_callbacks_carry_a_standard_webhooks_signature(
    shop: Shop, frozen: clock.FrozenClock, loopback: None
) -> None:
    """The seed's form POST, plus webhook-id/-timestamp/-signature a seed client ignores and
    a careful one checks with the tenant's callback secret."""
    secret = shop.ok("GET", "/v1/callbacks/signing-secret")["secret"]
    assert secret.startswith("whsec_")
    assert shop.ok("GET", "/v1/callbacks/signing-secret")["secret"] == secret  # stable
    with receiver() as hook:
        shop.contacts(["a@example.com"])
        campaign_id = shop.campaign(event_callback=f"{hook.url}/cb")
        shop.send(campaign_id)
        run_tick(herald.TICK_JOBS, START + timedelta(seconds=63))
        drain()
    assert len(hook.requests) == 1
    request = hook.requests[0]
    assert dict(form(request))["event"] == "submitted"  # still the seed's form body
    check_signature(secret, request)
    assert int(request.headers["webhook-timestamp"]) == int(START.timestamp())


# -- signed webhooks ----------------------------------------------------------------------
def verify(secret: str, request: Received) -> dict[str, Any]:
    """A receiver's check of a webhook: signature, then the JSON payload."""
    check_signature(secret, request)
    return dict(json.loads(request.body))


def check_signature(secret: str, request: Received) -> None:
    """A receiver's check, written from the Standard Webhooks spec (not Herald's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in request.headers["webhook-signature"].split(" ")]
    assert any(hmac.compare_digest(expected, o) for o in offered), "bad signature"


def register(shop: Shop, url: str, **fields: Any) -> dict[str, Any]:
    response = shop.tenant.call("POST", "/v1/webhooks", {"url": url, **fields})
    assert response.status_code == 201, response.body
    return dict(body_of(response))


def test_webhooks_are_signed_and_filtered_by_event_type(
    shop: Shop, simulator: FeedbackSimulator, loopback: None
) -> None:
    with receiver() as hook:
        created = register(shop, f"{hook.url}/hook", event_types=["message.delivered"])
        assert created["secret"].startswith("whsec_")
        listed = shop.ok("GET", "/v1/webhooks")["items"]
        assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
        shop.contacts([f"success@{SIM}", f"bounce@{SIM}"])
        campaign_id = shop.campaign()
        shop.send(campaign_id)
        simulator.flush()
        drain()

        assert len(hook.requests) == 1  # the bounce is not subscribed
        request = hook.requests[0]
        assert request.path == "/hook"
        assert request.headers["Content-Type"] == "application/json"
        payload = verify(created["secret"], request)
        assert payload["type"] == "message.delivered"
        record = shop.messages(campaign_id)[f"success@{SIM}"]
        assert payload["data"]["message_id"] == record.message_id
        assert payload["data"]["campaign_id"] == campaign_id
        assert payload["data"]["recipients"] == [f"success@{SIM}"]
        assert shop.ok("GET", f"/v1/webhooks/{created['id']}/deliveries")["items"] == []


def test_410_disables_the_endpoint(
    shop: Shop, simulator: FeedbackSimulator, loopback: None
) -> None:
    with receiver([410]) as hook:
        created = register(shop, f"{hook.url}/gone")
        shop.contacts([f"success@{SIM}"])
        shop.send(shop.campaign())
        simulator.flush()
        drain()
        endpoint = shop.ok("GET", f"/v1/webhooks/{created['id']}")
        assert endpoint["enabled"] is False
        assert "410" in endpoint["disabled_reason"]
        attempts = shop.ok("GET", f"/v1/webhooks/{created['id']}/deliveries")["items"]
        assert [(a["outcome"], a["status"]) for a in attempts] == [("gone", 410)]
        posted = len(hook.requests)
        assert posted == 1  # Delivery only: Send and delivered... a single subscribed event

        shop.send(shop.campaign())
        simulator.flush()
        drain()
        assert len(hook.requests) == posted  # disabled: nothing more

        enabled = shop.ok("PATCH", f"/v1/webhooks/{created['id']}", {"enabled": True})
        assert enabled["enabled"] is True and enabled["disabled_reason"] is None


def test_failures_retry_with_backoff_then_end_in_the_dlq(
    shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock, loopback: None
) -> None:
    with receiver([500]) as hook:
        created = register(shop, f"{hook.url}/down", event_types=["message.delivered"])
        shop.contacts([f"success@{SIM}"])
        shop.send(shop.campaign())
        simulator.flush()
        drain()
        assert len(hook.requests) == 1
        for attempt, delay in enumerate(RETRY_SCHEDULE_SECONDS, start=1):
            release_delayed_messages()
            drain()  # too early: the message hops on, nothing is posted
            assert len(hook.requests) == attempt
            frozen.advance(timedelta(seconds=delay))
            release_delayed_messages()
            drain()
        assert len(hook.requests) == MAX_ATTEMPTS == 8
        ids = {r.headers["webhook-id"] for r in hook.requests}
        assert len(ids) == 1  # the same delivery id on every attempt
        stamps = [int(r.headers["webhook-timestamp"]) for r in hook.requests]
        gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        assert gaps == list(RETRY_SCHEDULE_SECONDS)
        for request in hook.requests:
            verify(created["secret"], request)  # each attempt signed afresh

        stranded = dead_letters("callbacks")
        assert len(stranded) == 1
        assert stranded[0]["delivery_id"] == ids.pop()
        assert stranded[0]["failure"] == "HTTP 500"
        attempts = shop.ok("GET", f"/v1/webhooks/{created['id']}/deliveries")["items"]
        assert [a["outcome"] for a in attempts] == ["dead_lettered"] + ["retrying"] * 7
        assert all(a["status"] == 500 for a in attempts)
        assert "private body" not in json.dumps(attempts)  # responses are never echoed


def test_redirects_are_not_followed(
    shop: Shop, simulator: FeedbackSimulator, loopback: None
) -> None:
    with receiver([302]) as hook:
        created = register(shop, f"{hook.url}/moved", event_types=["message.delivered"])
        shop.contacts([f"success@{SIM}"])
        shop.send(shop.campaign())
        simulator.flush()
        drain()
        assert [r.path for r in hook.requests] == ["/moved"]
        attempts = shop.ok("GET", f"/v1/webhooks/{created['id']}/deliveries")["items"]
        assert [(a["outcome"], a["status"]) for a in attempts] == [("retrying", 302)]


# -- SSRF ---------------------------------------------------------------------------------
PRIVATE_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:8000/v1/admin/tenants",
    "http://localhost/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::]/",
    "http://0.0.0.0/",
    "http://10.0.0.8/",
    "http://172.16.3.4/",
    "http://192.168.0.1/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "ftp://example.com/",
]


def test_webhook_urls_aimed_at_private_or_metadata_addresses_are_refused(
    tenant: Tenant,
) -> None:
    for url in PRIVATE_URLS:
        response = tenant.call("POST", "/v1/webhooks", {"url": url})
        assert response.status_code == 422, url
        assert body_of(response)["error"]["field"] == "url"
    assert body_of(tenant.call("GET", "/v1/webhooks"))["items"] == []


def test_campaign_callbacks_aimed_at_private_or_metadata_addresses_are_refused(
    shop: Shop,
) -> None:
    campaign_id = shop.campaign()
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/cb",
        "http://localhost/",
    ):
        created = shop.tenant.call(
            "POST", "/v1/campaigns", {"name": "x", "channel": "email", "event_callback": url}
        )
        assert created.status_code == 422, (url, created.body)
        assert body_of(created)["error"]["field"] == "event_callback"
        edited = shop.tenant.call("PATCH", f"/v1/campaigns/{campaign_id}", {"event_callback": url})
        assert edited.status_code == 422, url
        assert body_of(edited)["error"]["field"] == "event_callback"


def test_loopback_setting_allows_loopback_only(tenant: Tenant, loopback: None) -> None:
    assert tenant.call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x"}).status_code == 201
    for url in ("http://10.0.0.8/", "http://169.254.169.254/", "http://[fc00::1]/"):
        assert tenant.call("POST", "/v1/webhooks", {"url": url}).status_code == 422


def test_delivery_checks_the_address_again(
    shop: Shop, simulator: FeedbackSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that was public at registration resolves to a private address
    at delivery; Herald refuses to connect and dead-letters the delivery."""
    answers = iter(["93.184.216.34", "10.0.0.7"])

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "hooks.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    created = register(shop, "http://hooks.example.com/x", event_types=["message.delivered"])
    shop.contacts([f"success@{SIM}"])
    shop.send(shop.campaign())
    simulator.flush()
    drain()
    attempts = shop.ok("GET", f"/v1/webhooks/{created['id']}/deliveries")["items"]
    assert [a["outcome"] for a in attempts] == ["refused"]
    assert "private address" in attempts[0]["error"]
    stranded = dead_letters("callbacks")
    assert len(stranded) == 1 and "private address" in stranded[0]["failure"]
