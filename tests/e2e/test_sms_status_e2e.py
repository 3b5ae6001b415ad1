"""SMS and push delivery status on the embedded stack, over HTTP: the simulator logs each
SMS's and push's status as SNS would and delivers it as a CloudWatch Logs subscription
does, to app.py's forwarder, whose records the feedback worker applies (the path an AWS
deployment runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.local.runner import EmbeddedStack
from chalicelib.settings import get_settings
from tests.e2e.kit import Api, eventually

pytestmark = pytest.mark.e2e

DELIVERED = "+4915112345678"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    running = EmbeddedStack(port=0).start()
    try:
        yield running
    finally:
        running.stop()


def test_sms_campaign_counts_deliveries_and_permanent_and_temporary_failures(
    stack: EmbeddedStack,
) -> None:
    api = Api(stack)
    failing = get_settings().simulator_failing_numbers[0]  # "Unknown error ... reach phone"
    invalid = get_settings().simulator_invalid_numbers[0]  # "Invalid phone number"
    for phone in (DELIVERED, failing, invalid):
        api.ok("POST", "/v1/contacts", {"phone": phone})
    sender = api.ok("POST", "/v1/senders", {"channel": "sms", "sender_id": "ACME"})["id"]
    template = api.ok(
        "POST", "/v1/templates", {"name": "Sms", "channel": "sms", "body": "Sale today!"}
    )["id"]
    campaign = api.ok(
        "POST",
        "/v1/campaigns",
        {
            "name": "Texts",
            "channel": "sms",
            "audience": {"all_contacts": True},
            "template_ids": [template],
            "sender_ids": [sender],
        },
    )["id"]
    api.ok("POST", f"/v1/campaigns/{campaign}/send")
    expected = {"sent": 3, "delivered": 1, "bounced": 1, "soft_bounced": 1}

    def settled() -> dict[str, Any] | None:
        stats = api.ok("GET", f"/v1/campaigns/{campaign}/stats")
        return stats if all(stats[k] == v for k, v in expected.items()) else None

    assert eventually(settled), api.ok("GET", f"/v1/campaigns/{campaign}/stats")
    messages = api.ok("GET", f"/v1/campaigns/{campaign}/messages")["items"]
    assert {m["address"]: m["status"] for m in messages} == {
        DELIVERED: "delivered",
        failing: "soft_bounced",
        invalid: "bounced",
    }
    # Only the permanent failure suppresses the number.
    suppressed = api.ok("GET", "/v1/suppressions")["items"]
    assert [(s["address"], s["reason"]) for s in suppressed] == [(invalid, "bounced")]


def test_push_campaign_counts_deliveries(stack: EmbeddedStack) -> None:
    """The push sender's application logs its status (the embedded stack turns it on, as
    the stack does) to log groups subscribed to the forwarder."""
    api = Api(stack)
    contact = api.ok("POST", "/v1/contacts", {"email": "app-user@example.com"})["id"]
    sender = api.ok(
        "POST",
        "/v1/senders",
        {"channel": "push", "name": "App", "platform": "GCM", "credential": "fcm-key"},
    )["id"]
    api.ok("POST", f"/v1/contacts/{contact}/devices", {"platform": "GCM", "token": "tok-1"})
    template = api.ok(
        "POST", "/v1/templates", {"name": "Push", "channel": "push", "title": "Hi", "body": "Sale"}
    )["id"]
    campaign = api.ok(
        "POST",
        "/v1/campaigns",
        {
            "name": "Pushes",
            "channel": "push",
            "audience": {"all_contacts": True},
            "template_ids": [template],
            "sender_ids": [sender],
        },
    )["id"]
    api.ok("POST", f"/v1/campaigns/{campaign}/send")

    def delivered() -> bool:
        stats = api.ok("GET", f"/v1/campaigns/{campaign}/stats")
        return bool(stats["sent"] == 1 and stats["delivered"] == 1)

    assert eventually(delivered), api.ok("GET", f"/v1/campaigns/{campaign}/stats")
    [message] = api.ok("GET", f"/v1/campaigns/{campaign}/messages")["items"]
    assert message["status"] == "delivered"
