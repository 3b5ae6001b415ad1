"""Both seed campaign APIs on the embedded stack, over real HTTP, with real time: campaigns
scheduled a few seconds ahead are started by the Scheduler emulator, sent by the pollers,
reported on by the SES feedback simulator, and (seed 003) called back on a local HTTP
receiver with the aggregated form POST."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from chalicelib.aws import client
from chalicelib.local.runner import EmbeddedStack
from tests.e2e.kit import Api, eventually, stack_with
from tests.feedback_kit import Receiver, receiver

pytestmark = pytest.mark.e2e

SIM = "simulator.amazonses.com"
FROM = "news@shop.example.com"
BOUNCER = f"bounce+003@{SIM}"
FAST = {
    "HERALD_CALLBACK_WINDOW_SECONDS": "2",
    "HERALD_SIMULATOR_DELAY_SECONDS": "0.2",
    "HERALD_SIMULATOR_OPEN_RATE": "1",
    "HERALD_SIMULATOR_CLICK_RATE": "1",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with stack_with(FAST) as running:
        yield running


@pytest.fixture(scope="module")
def shop(stack: EmbeddedStack) -> dict[str, Any]:
    """A verified sender, an email template, four contacts, a list of two of them and a
    segment of the other three. Each campaign bounces its own address (a bounce
    suppresses the address for the next campaign)."""
    api = Api(stack)
    client("ses").verify_email_identity(EmailAddress=FROM)
    api.own(FROM)
    sender = api("POST", "/v1/senders", 201, json={"channel": "email", "from_email": FROM})
    html = (
        '<p><a href="https://shop.example.com/sale">Sale</a> <a href="{{ unsubscribe_url }}">x</a>'
    )
    template = api(
        "POST",
        "/v1/templates",
        201,
        json={"name": "News", "channel": "email", "subject": "News", "html": html},
    )
    contacts = [
        api("POST", "/v1/contacts", 201, json={"email": address})["id"]
        for address in ("ann@example.com", "bob@example.com", f"bounce@{SIM}", BOUNCER)
    ]
    listed = api("POST", "/v1/lists", 201, json={"name": "Ann and a bouncer"})
    members = [contacts[0], contacts[3]]
    api("POST", f"/v1/lists/{listed['id']}/members", json={"contact_ids": members})
    rules = [
        {"field": "email", "operator": "exists"},
        {"field": "email", "operator": "neq", "value": BOUNCER},
    ]
    segment = api(
        "POST", "/v1/segments", 201, json={"name": "All", "condition": "AND", "rules": rules}
    )
    return {"sender": sender, "template": template, "list": listed, "segment": segment}


def test_seed_002_campaign_is_scheduled_sent_and_counted(stack: EmbeddedStack, shop: dict):
    api = Api(stack)
    created = api(
        "POST",
        "/campaigns/",
        201,
        json={
            "name": "Seed 002 launch",
            "channel": "email",
            "organization_id": stack.tenant_id,
            "segment_id": shop["segment"]["id"],
            "email_message_id": shop["template"]["id"],
        },
    )
    path = f"/campaigns/{created['id']}/"
    when = int(time.time()) + 3
    scheduled = api("POST", f"{path}schedule/", data={"scheduled_at": str(when)})
    assert scheduled["status"] == "scheduled"

    done = eventually(lambda: (c := api("GET", path))["status"] == "sent" and c)
    assert done, api("GET", path)
    assert (done["user_count"], done["sent_count"], done["failed_count"]) == (3, 3, 0)

    def outcome() -> tuple[int, ...]:
        stats = api("GET", f"{path}stats/")
        return tuple(stats[k] for k in ("delivered", "opened", "clicked", "bounced"))

    assert eventually(lambda: outcome() == (2, 2, 2, 1)), outcome()

    page = api("GET", "/campaigns/?page_size=1&search=Seed+002")
    assert page["count"] == 1 and page["next"] is None
    assert [c["id"] for c in page["results"]] == [created["id"]]


def callbacks(hook: Receiver) -> dict[str, list[tuple[str, str]]]:
    posts = [parse_qsl(r.body.decode()) for r in hook.requests]
    return {dict(fields)["event"]: fields for fields in posts}


def test_seed_003_campaign_armed_ready_goes_to_done_and_calls_back(
    stack: EmbeddedStack, shop: dict
):
    api = Api(stack)
    with receiver() as hook:
        when = int(time.time()) + 3
        created = api(
            "POST",
            "/campaign",
            data=[
                ("name", "Seed 003 launch"),
                ("domain", str(shop["sender"]["number"])),
                ("list", str(shop["list"]["number"])),
                ("templates[]", shop["template"]["id"]),
                ("event_callback", f"{hook.url}/events?campaign=launch"),
                ("state", "READY"),  # armed: it starts at `when` by itself
                ("when", str(when)),
            ],
        )
        assert (created["state"], created["when"]) == ("READY", when)
        number = created["id"]

        assert eventually(lambda: api("GET", f"/campaign/{number}")["state"] == "DONE")
        events = eventually(lambda: {"delivered", "bounced"} <= set(c := callbacks(hook)) and c)
        assert events, callbacks(hook)
        assert {r.path for r in hook.requests} == {"/events?campaign=launch"}
        assert events["delivered"][2:] == [("email[0]", "ann@example.com")]
        assert events["bounced"][2:] == [("email[0]", BOUNCER)]
        refused = requests.put(
            f"{stack.api_url}/campaign/{number}",
            data={"state": "DRAFT"},
            headers=Api(stack).headers,
            timeout=10,
        )
        assert refused.status_code == 409
        assert refused.json()["error"]["message"].startswith("cannot move from DONE to DRAFT")
