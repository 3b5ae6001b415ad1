"""Issue 15's walk on the embedded stack, over HTTP, as a user would run it: a workflow
made and activated through the native API, an event posted for two contacts, a 2-second
delay, a send, an attribute check that branches, an A/B split, a webhook to a local
receiver and the exit; the trace of each contact shows every step, and the stats count
them. The pollers, SQS delays, SES (moto) and the signed webhook are all real."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from chalicelib.local.runner import EmbeddedStack
from chalicelib.settings import get_settings
from tests.e2e.kit import Api, eventually
from tests.feedback_kit import Receiver, receiver

pytestmark = pytest.mark.e2e

FROM = "flows@acme.example.com"


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


def sent_to(stack: EmbeddedStack) -> list[str]:
    data = requests.get(f"{stack.aws_endpoint}/moto-api/data.json", timeout=60).json()
    return [
        str(email.message_from_string(m["raw_data"])["To"])
        for m in data.get("ses", {}).get("RawMessage", [])
        if FROM in str(m.get("source", ""))
    ]


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
    boto3.client(
        "ses",
        endpoint_url=stack.aws_endpoint,
        region_name=get_settings().region,
        aws_access_key_id="outside",
        aws_secret_access_key="outside",
    ).verify_email_identity(EmailAddress=FROM)
    api.own(FROM)
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
        found = api.ok("GET", f"/v1/campaigns/{flow['id']}/enrollments/{contact_id}")
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
    assert sorted(sent_to(stack)) == ["ada@example.com", "bob@example.com"]

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
