"""Telegram: a campaign through the tenant's bot to the fake Bot API (in this process, on a
local port) via the SSRF-safe client; 429 waits retry_after and never drops a message;
403 suppresses the chat; the bot token is never returned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from chalicelib.domain import clock
from chalicelib.local.telegram_api import FakeBotApi
from chalicelib.store import suppression
from tests.channel_kit import contact, messages, ok, send_campaign, stats
from tests.conftest import Tenant, body_of

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TOKEN = "123456789:AAH" + "x" * 32
TEMPLATE = {"text": "<b>Hi</b> {{ contact.first_name }}", "parse_mode": "HTML"}


@pytest.fixture
def bot_api(herald_env: Callable[..., None]) -> Iterator[FakeBotApi]:
    fake = FakeBotApi()
    fake.start()
    herald_env(telegram_api_url=fake.url, allow_loopback_callbacks="true")
    yield fake
    fake.stop()
    fake.join(5)


def send(tenant: Tenant) -> str:
    with clock.frozen(START):
        return send_campaign(tenant, "telegram", TEMPLATE, {"name": "Bot", "bot_token": TOKEN})


def test_each_chat_gets_its_message_once_and_it_counts_delivered(tenant: Tenant, bot_api):
    contact(tenant, "ann@example.com", first_name="<Ann>", telegram_chat_id="1001")
    contact(tenant, "bob@example.com", first_name="Bob", telegram_chat_id=-2002)
    contact(tenant, "cy@example.com", first_name="Cy")  # no chat: nothing to send to
    campaign_id = send(tenant)
    sent = sorted((m.chat_id, m.text, m.parse_mode, m.token) for m in bot_api.messages)
    assert sent == [
        ("-2002", "<b>Hi</b> Bob", "HTML", TOKEN),
        ("1001", "<b>Hi</b> &lt;Ann&gt;", "HTML", TOKEN),  # contact data escaped
    ]
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["delivered"]) == (2, 2)
    assert counted["skipped"] == {"no_address": 1}
    assert {m["status"] for m in messages(tenant, campaign_id)} == {"delivered"}


def test_429_waits_retry_after_and_sends_once(tenant: Tenant, bot_api):
    contact(tenant, "ann@example.com", telegram_chat_id="1001")
    bot_api.throttle(2, retry_after=7)
    with clock.frozen(START) as frozen:
        campaign_id = send_campaign(
            tenant, "telegram", TEMPLATE, {"name": "Bot", "bot_token": TOKEN}
        )
        waited = (frozen.now() - START).total_seconds()
    assert waited >= 14  # both waits honoured, not a shorter backoff
    assert bot_api.calls == 3 and len(bot_api.messages) == 1
    assert stats(tenant, campaign_id)["sent"] == 1


def test_a_wait_longer_than_the_batch_defers_the_message_never_drops_it(tenant: Tenant, bot_api):
    contact(tenant, "ann@example.com", telegram_chat_id="1001")
    bot_api.throttle(1, retry_after=100_000)  # longer than a send worker may run
    campaign_id = send(tenant)
    assert len(bot_api.messages) == 1
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["failed"], counted["skipped"]) == (1, 0, {})


def test_a_blocked_bot_suppresses_the_chat(tenant: Tenant, bot_api):
    contact(tenant, "ann@example.com", telegram_chat_id="1001")
    contact(tenant, "bob@example.com", telegram_chat_id="1002")
    bot_api.blocked.add("1001")
    first = send(tenant)
    assert stats(tenant, first)["skipped"] == {"opted_out": 1}
    assert suppression.get_suppression(tenant.id, "telegram:1001").reason == "unsubscribed"
    calls = bot_api.calls
    second = send(tenant)
    assert stats(tenant, second)["skipped"] == {"suppressed": 1}
    assert bot_api.calls == calls + 1  # only bob's chat was called
    assert [m.chat_id for m in bot_api.messages] == ["1002", "1002"]


def test_the_bot_token_is_write_only_and_the_bot_is_one_tenants(
    tenant: Tenant, other_tenant: Tenant, bot_api
):
    created = ok(tenant, "POST", "/v1/senders", {"channel": "telegram", "bot_token": TOKEN})
    assert created["bot_id"] == "123456789" and created["usable"] is True
    for shown in (created, ok(tenant, "GET", f"/v1/senders/{created['id']}")):
        assert TOKEN.split(":")[1] not in str(shown)
    listed = ok(tenant, "GET", "/v1/senders")
    assert TOKEN.split(":")[1] not in str(listed)
    taken = other_tenant.call("POST", "/v1/senders", {"channel": "telegram", "bot_token": TOKEN})
    assert taken.status_code == 409
    assert body_of(taken)["error"] == {
        "code": "identity_owned",
        "message": "'123456789' belongs to another tenant; an admin can transfer it",
        "field": "bot_token",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "telegram"}, "bot_token"),
        ({"channel": "telegram", "bot_token": "not-a-token"}, "bot_token"),
        ({"channel": "telegram", "bot_token": TOKEN, "from_email": "a@b.com"}, "from_email"),
    ],
)
def test_a_bad_telegram_sender_is_refused_naming_the_field(tenant: Tenant, body, field):
    response = tenant.call("POST", "/v1/senders", body)
    assert response.status_code == 422, response.body
    assert body_of(response)["error"]["field"] == field
    assert ok(tenant, "GET", "/v1/senders")["items"] == []


def test_a_bad_chat_id_is_refused(tenant: Tenant):
    response = tenant.call(
        "POST", "/v1/contacts", {"email": "a@example.com", "telegram_chat_id": "@ann"}
    )
    assert response.status_code == 422
    assert body_of(response)["error"]["field"] == "telegram_chat_id"
