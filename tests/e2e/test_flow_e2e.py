"""Flows end to end on the embedded stack, over HTTP, as a user would run them (one stack
for both walks: starting one costs seconds of the suite's budget).

Issue 15's walk: a workflow made and activated through the native API, an event posted
for two contacts, a 2-second delay, a send, an attribute check that branches, an A/B
split, a webhook to a local receiver and the exit; the trace of each contact shows every
step, and the stats count them. The pollers, SQS delays, SES (moto) and the signed
webhook are all real.

Issue 16's "Done means", as a seed-004 client runs it: an AUTOMATED campaign Event → Send
(email) → Delay 2 s → A/B Split → Send (push) / Send (Telegram) → Notify Inbox,
activated with PATCH; three contacts enrolled, the event posted for a fourth through
/v1/events; then ``_count`` and the A/B results match what happened, and each channel's
message is in its backend (SES and SNS in moto, the fake Bot API, the operator inbox)
exactly once per contact."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.flows.nodes import AbSplit
from chalicelib.domain.flows.step import ab_variant
from chalicelib.local.runner import EmbeddedStack
from tests.e2e.kit import Api, emails_from, eventually, moto_state
from tests.feedback_kit import Receiver, receiver

pytestmark = pytest.mark.e2e

FROM = "flows@acme.example.com"
SEED004_FROM = "campaigns@seed004.example.com"
TOKEN = "123456789:AAH" + "s" * 32
SPLIT = {"variants": [{"name": "push", "weight": 1}, {"name": "telegram", "weight": 1}]}


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HERALD_ALLOW_LOOPBACK_CALLBACKS", "true")  # the webhook receiver
        env.setenv("HERALD_SES_MAX_SEND_RATE", "1000")
        running = EmbeddedStack(port=0).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def workflow(template_id: str, sender_id: str, hook_url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "ordered", "kind": "trigger.event", "config": {"event_type": "order.placed"}},
            {"id": "wait", "kind": "delay", "config": {"amount": 2, "unit": "seconds"}},
            {
                "id": "thanks",
                "kind": "send",
                "config": {
                    "channel": "email",
                    "template_ids": [template_id],
                    "sender_ids": [sender_id],
                },
            },
            {
                "id": "big",
                "kind": "attribute_check",
                "config": {
                    "rules": {
                        "condition": "AND",
                        "rules": [{"field": "lead_score", "operator": "gte", "value": 50}],
                    }
                },
            },
            {
                "id": "split",
                "kind": "ab_split",
                "config": {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
            },
            {
                "id": "crm",
                "kind": "webhook",
                "config": {"url": f"{hook_url}/flow", "body": {"stage": "big spender"}},
            },
            {"id": "done", "kind": "exit"},
        ],
        "edges": [
            {"source": "ordered", "target": "wait"},
            {"source": "wait", "target": "thanks"},
            {"source": "thanks", "target": "big"},
            {"source": "big", "target": "split", "branch": "yes"},
            {"source": "big", "target": "done", "branch": "no"},
            {"source": "split", "target": "crm"},
            {"source": "crm", "target": "done"},
        ],
    }


def test_an_event_walks_two_contacts_through_the_whole_flow(
    stack: EmbeddedStack, hook: Receiver
) -> None:
    api = Api(stack)
    api.verify_and_own(stack, FROM)
    sender = api.ok("POST", "/v1/senders", {"channel": "email", "from_email": FROM})
    template = api.ok(
        "POST",
        "/v1/templates",
        {
            "name": "Thanks",
            "channel": "email",
            "subject": "Order {{ event.properties.order_id }}, {{ contact.first_name }}",
            "html": '<p>Thanks. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        },
    )
    flow = api.ok(
        "POST",
        "/v1/campaigns",
        {
            "name": "After an order",
            "type": "workflow",
            "workflow": workflow(template["id"], sender["id"], hook.url),
        },
    )
    assert api.ok("POST", f"/v1/campaigns/{flow['id']}/activate")["status"] == "active"
    api.ok(
        "POST",
        "/v1/webhooks",
        {"url": f"{hook.url}/events", "event_types": ["enrollment.entered", "enrollment.exited"]},
    )
    big = api.ok(
        "POST", "/v1/contacts", {"email": "ada@example.com", "first_name": "Ada", "lead_score": 80}
    )
    small = api.ok(
        "POST", "/v1/contacts", {"email": "bob@example.com", "first_name": "Bob", "lead_score": 5}
    )

    events = [
        {
            "name": "order.placed",
            "event_id": f"order-{n}",
            "contact": {"email": address},
            "properties": {"order_id": f"A-{n}"},
        }
        for n, address in enumerate(["ada@example.com", "bob@example.com"])
    ]
    api.ok("POST", "/v1/events", {"events": events})
    repeat = api.ok("POST", "/v1/events", {"events": events})  # the same ids again
    assert all(answer["duplicate"] for answer in repeat["accepted"]), repeat

    def exited(contact_id: str) -> Any:
        response = api.call("GET", f"/v1/campaigns/{flow['id']}/enrollments/{contact_id}")
        if response.status_code == 404:  # the event is still on its way to the flow
            return None
        assert response.status_code == 200, response.text
        found = response.json()
        return found if found.get("exit_reason") else None

    ada = eventually(lambda: exited(big["id"]), timeout=90)
    bob = eventually(lambda: exited(small["id"]), timeout=90)
    assert ada and bob, (ada, bob)

    def walk(found: Any) -> list[tuple[str, str]]:
        return [(entry["node_id"], entry["outcome"]) for entry in found["trace"]]

    assert walk(ada) == [
        ("ordered", "entered"),
        ("wait", "waiting"),
        ("wait", "resumed"),
        ("thanks", "performed"),
        ("big", "branched"),
        ("split", "branched"),
        ("crm", "performed"),
        ("done", "exited"),
    ]
    assert walk(bob) == [
        ("ordered", "entered"),
        ("wait", "waiting"),
        ("wait", "resumed"),
        ("thanks", "performed"),
        ("big", "branched"),
        ("done", "exited"),
    ]
    assert emails_from(moto_state(stack), FROM) == {"ada@example.com": 1, "bob@example.com": 1}

    def posted(path: str) -> list[Any]:
        return [r for r in hook.requests if r.path == path]

    assert eventually(lambda: len(posted("/flow")) >= 1 and len(posted("/events")) >= 4, 30)
    [call] = posted("/flow")
    sent = json.loads(call.body)
    assert sent["type"] == "flow.webhook" and sent["data"]["body"] == {"stage": "big spender"}
    assert sent["data"]["contact"]["email"] == "ada@example.com"
    assert sent["data"]["event"]["properties"] == {"order_id": "A-0"}
    assert call.headers.get("webhook-id") and call.headers.get("webhook-signature")

    announced = sorted(
        (body["type"], body["data"]["contact_id"], body["data"].get("reason"))
        for body in (json.loads(r.body) for r in posted("/events"))
    )
    assert announced == sorted(
        [
            ("enrollment.entered", big["id"], None),
            ("enrollment.entered", small["id"], None),
            ("enrollment.exited", big["id"], "exit_node"),
            ("enrollment.exited", small["id"], "exit_node"),
        ]
    )

    stats = api.ok("GET", f"/v1/campaigns/{flow['id']}/stats")
    assert stats["enrollments"] == 2 and stats["sent"] == 2
    assert stats["nodes"]["thanks"]["sent"] == 2
    assert stats["nodes"]["split"]["entered"] == 1


def sent_by_channel(stack: EmbeddedStack) -> tuple[Counter[str], Counter[str]]:
    """The seed-004 walk's emails per address (SES) and pushes per device token (SNS
    platform endpoints), from one read of moto's state."""
    data = moto_state(stack)
    mails = emails_from(data, SEED004_FROM)
    endpoints = data.get("sns", {}).get("PlatformEndpoint", [])
    pushes = Counter({e["token"]: len(e.get("messages") or {}) for e in endpoints})
    return mails, +pushes


def node(node_id: str, kind: str, y: int, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "position": {"x": 0, "y": y}, "data": data}


def test_a_seed004_campaign_runs_every_channel_once_per_contact(stack: EmbeddedStack) -> None:
    api = Api(stack)
    api.verify_and_own(stack, SEED004_FROM)

    def made(path: str, body: dict[str, Any]) -> str:
        return str(api.ok("POST", path, body)["id"])

    mail_from = made("/v1/senders", {"channel": "email", "from_email": SEED004_FROM})
    app = made(
        "/v1/senders", {"channel": "push", "name": "App", "platform": "GCM", "credential": "k"}
    )
    bot = made("/v1/senders", {"channel": "telegram", "name": "Bot", "bot_token": TOKEN})
    welcome = made(
        "/v1/templates",
        {
            "name": "Welcome",
            "channel": "email",
            "subject": "Welcome {{ contact.first_name }}",
            "html": '<p>Hi <a href="{{ unsubscribe_url }}">unsubscribe</a></p>',
        },
    )
    nudge = made(
        "/v1/templates", {"name": "Nudge", "channel": "push", "title": "Hi", "body": "Try it"}
    )
    chat = made(
        "/v1/templates",
        {"name": "Chat", "channel": "telegram", "text": "<b>Hi</b>", "parse_mode": "HTML"},
    )
    workflow = {
        "nodes": [
            node("signup", "EVENT", 0, eventType="trial.started"),
            node("mail", "SEND_MESSAGE", 100, channel="email", templateIds=[welcome]),
            node("wait", "DELAY", 200, amount=2, unit="seconds"),
            node("split", "AB_SPLIT", 300, **SPLIT),
            node("push", "SEND_MESSAGE", 400, channel="push", templateIds=[nudge]),
            node("telegram", "SEND_MESSAGE", 400, channel="telegram", templateIds=[chat]),
            node("follow-up", "NOTIFY_INBOX", 500, title="Call the new trial"),
        ],
        "edges": [
            {"id": "e1", "source": "signup", "target": "mail"},
            {"id": "e2", "source": "mail", "target": "wait"},
            {"id": "e3", "source": "wait", "target": "split"},
            {"id": "e4", "source": "split", "target": "push", "sourceHandle": "push"},
            {"id": "e5", "source": "split", "target": "telegram", "sourceHandle": "telegram"},
            {"id": "e6", "source": "push", "target": "follow-up"},
            {"id": "e7", "source": "telegram", "target": "follow-up"},
        ],
    }
    workflow["nodes"][1]["data"]["senderIds"] = [mail_from]
    workflow["nodes"][4]["data"]["senderIds"] = [app]
    workflow["nodes"][5]["data"]["senderIds"] = [bot]
    campaigns = f"/api/workspaces/{stack.tenant_id}/campaigns"
    body = {"name": "Trial onboarding", "type": "AUTOMATED", "workflow": workflow}
    campaign = api("POST", campaigns, expect=201, json=body)
    item = f"{campaigns}/{campaign['id']}"

    # Four contacts, both variants among them (the split is a hash of the contact id).
    config = AbSplit.model_validate(SPLIT)
    people: dict[str, dict[str, Any]] = {}
    taken: Counter[str] = Counter()
    n = 0
    while len(people) < 4:
        n += 1
        contact = api.ok(
            "POST",
            "/v1/contacts",
            {"email": f"trial{n}@example.com", "first_name": f"T{n}", "telegram_chat_id": str(n)},
        )
        variant = ab_variant(config, campaign["id"], "split", contact["id"])
        if len(people) == 3 and len(taken) == 1 and variant in taken:
            continue  # the fourth takes the variant none has yet
        api.ok(
            "POST",
            f"/v1/contacts/{contact['id']}/devices",
            {"platform": "GCM", "token": f"tok-{n}"},
        )
        people[contact["id"]] = {**contact, "variant": variant, "token": f"tok-{n}", "chat": str(n)}
        taken[variant] += 1

    assert api("PATCH", item, json={"status": "ACTIVE"})["status"] == "ACTIVE"
    *enrolled, fired = list(people)
    answer = api("POST", f"{item}/enroll", json={"contactIds": enrolled})
    assert (answer["enrolled"], answer["alreadyEnrolled"], answer["errors"]) == (3, 0, 0)
    event = {
        "name": "trial.started",
        "event_id": "trial-4",
        "contact": {"email": people[fired]["email"]},
    }
    api.ok("POST", "/v1/events", {"events": [event]})

    def threads() -> list[Any]:
        found = api.ok("GET", "/v1/inbox-threads?status=open")["items"]
        return [t for t in found if t["campaign_id"] == campaign["id"]]

    opened = eventually(lambda: (found := threads()) and len(found) >= 4 and found, timeout=90)
    assert len(opened or []) == 4, opened
    shown = api("GET", item)
    assert shown["_count"] == {"enrollments": 4, "messages": 8}
    [test] = shown["abTests"]
    results = {v["name"]: v["results"] for v in test["variants"]}
    assert results == {
        variant: {"entered": taken[variant], "sent": taken[variant], "conversions": 0}
        for variant in ("push", "telegram")
    }
    assert [a["id"] for a in shown["actions"]] == [
        "mail",
        "wait",
        "split",
        "push",
        "telegram",
        "follow-up",
    ]
    assert shown["workflow"] == workflow

    mails, pushes = sent_by_channel(stack)
    assert mails == Counter(p["email"] for p in people.values())
    assert pushes == Counter(p["token"] for p in people.values() if p["variant"] == "push")
    to_chat = [p["chat"] for p in people.values() if p["variant"] == "telegram"]
    assert stack.telegram is not None
    assert sorted(m.chat_id for m in stack.telegram.messages) == sorted(to_chat)
    assert sorted(t["contact_id"] for t in opened) == sorted(people)
