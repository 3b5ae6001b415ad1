"""Each function's IAM policy against what the function really does.

Herald's real handlers run a day in moto (an email campaign with a callback and a webhook,
feedback, the tick, an SMS campaign and its status through the SMS status forwarder, a
scheduled campaign, a test send, a posted contact event, a flow walked by the flow worker,
a workflow's schedules, a push sender whose application logs its delivery status, a push
campaign to registered devices (one of them disabled), an on-site campaign read by its
contact) while every AWS call is recorded with the function that made it. Every call must
be allowed by that function's own policy in the merge template (``infra.policy``); the
callbacks worker, which talks to tenant URLs, must touch only its own table items and
queues, and the status forwarder only the feedback queue. A function that starts doing
something new fails here until its policy says so.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local import poller, ses_simulator
from chalicelib.local.provision import status_forwarder
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.pipeline.tick import run_tick
from chalicelib.resources import herald_resources
from chalicelib.settings import Settings, get_settings
from chalicelib.store import enrolments
from chalicelib.store.contacts import get_contact
from infra.naming import Stack
from infra.policy import iam_resources
from tests.aws_events import inbound_reply
from tests.conftest import Tenant
from tests.feedback_kit import (
    Shop,
    receiver,
    release_delayed_messages,
)
from tests.flow_kit import enrol_contact, put_flow

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SIM = "simulator.amazonses.com"
SERVICES = ("dynamodb", "sqs", "sesv2", "sns", "events", "scheduler", "s3", "logs")
IAM_PREFIX = {"sesv2": "ses"}
# SQS authorises a batch call with the single-message action.
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@dataclass(frozen=True)
class AwsCall:
    function: str
    action: str  # the IAM action, e.g. dynamodb:PutItem
    partition_keys: tuple[str, ...]
    queue: str | None


def _partition_keys(params: dict[str, Any]) -> tuple[str, ...]:
    """Every ``pk`` value a DynamoDB request names (keys, items, key conditions)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name == "pk" and isinstance(inner, dict) and "S" in inner:
                    found.append(inner["S"])
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(params)
    values = params.get("ExpressionAttributeValues", {})
    condition = params.get("KeyConditionExpression", "")
    if params.get("IndexName") is None and condition:
        for placeholder, value in values.items():
            if f"pk = {placeholder}" in condition and "S" in value:
                found.append(value["S"])
    if params.get("IndexName"):
        found.append(f"<index {params['IndexName']}>")
    return tuple(found)


class Recorder:
    """Notes every AWS call Herald's clients make, with the function making it."""

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self.function: str | None = None

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.function is None:
            return  # the test's own set-up and the simulator: not a Herald function
        service = model.service_model.service_name
        action = f"{IAM_PREFIX.get(service, service)}:{model.name}"
        action = IAM_ACTION.get(action, action)
        queue = params.get("QueueUrl") or params.get("QueueName") if service == "sqs" else None
        if action == "dynamodb:TransactWriteItems":
            # IAM has no transaction action: each item is authorised by its own action.
            for item in params["TransactItems"]:
                [(kind, request)] = item.items()
                inner = f"dynamodb:{TRANSACT_ACTION[kind]}"
                self.calls.append(AwsCall(self.function, inner, _partition_keys(request), None))
            return
        keys = _partition_keys(params) if service == "dynamodb" else ()
        self.calls.append(AwsCall(self.function, action, keys, queue))

    @contextlib.contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        outer, self.function = self.function, function
        try:
            yield
        finally:
            self.function = outer


@pytest.fixture
def recorder(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recording = Recorder()
    original = poller.invoke_handler

    def invoke_handler(name: str, event: dict[str, Any], timeout_seconds: int) -> Any:
        with recording.acting_as(name):
            return original(name, event, timeout_seconds)

    monkeypatch.setattr(poller, "invoke_handler", invoke_handler)
    # The simulator invokes the SMS status forwarder as CloudWatch Logs would.
    monkeypatch.setattr(ses_simulator, "invoke_handler", invoke_handler)
    for service in SERVICES:
        client(service).meta.events.register("before-parameter-build", recording)
    try:
        yield recording
    finally:
        for service in SERVICES:
            client(service).meta.events.unregister("before-parameter-build", recording)


def policies_by_function() -> dict[str, list[dict[str, Any]]]:
    settings = Settings(stage=get_settings().stage)
    stack = Stack(settings, herald_resources(settings), "api")
    rendered = iam_resources(stack)
    by_function: dict[str, list[dict[str, Any]]] = {}
    for handler in stack.handlers:
        role = {"Ref": stack.role_id(handler)}
        by_function[handler] = [
            statement
            for resource in rendered.values()
            if resource["Type"] == "AWS::IAM::Policy" and role in resource["Properties"]["Roles"]
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        ]
    return by_function


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Allow" and action in as_list(s["Action"])]


def a_day_of_herald(
    recorder: Recorder, shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock
) -> None:
    api = recorder.acting_as
    with receiver() as hook, receiver([410]) as gone:
        with api("api_handler"):
            shop.ok("POST", "/v1/webhooks", {"url": f"{hook.url}/hook"})
            shop.ok("POST", "/v1/webhooks", {"url": f"{gone.url}/gone"})  # logs, disables
            email = shop.campaign(event_callback=f"{hook.url}/cb")
        people = shop.contacts([f"success@{SIM}", f"bounce@{SIM}", "+4915112345678"])
        with api("api_handler"):
            shop.ok("POST", f"/v1/campaigns/{email}/send")
        poller.drain()
        simulator.flush()
        poller.drain()
        frozen.advance(timedelta(seconds=62))
        with api("tick"):
            run_tick(herald.TICK_JOBS, clock.now())
        release_delayed_messages()
        poller.drain()
        with api("api_handler"):
            sms = shop.campaign("sms", event_callback=f"{hook.url}/sms")
            shop.ok("POST", f"/v1/campaigns/{sms}/send")
            later = shop.campaign()
            when = (clock.now() + timedelta(days=1)).isoformat()
            shop.ok("POST", f"/v1/campaigns/{later}/schedule", {"scheduled_at": when})
            shop.ok("POST", f"/v1/campaigns/{email}/test", {"addresses": [f"success@{SIM}"]})
            shop.ok("GET", f"/v1/senders/{shop.email_sender}")
            shop.ok(
                "POST",
                "/v1/events",
                {"events": [{"name": "purchase", "contact": {"email": f"success@{SIM}"}}]},
            )
        poller.drain()
        simulator.flush()
        poller.drain()
        frozen.advance(timedelta(seconds=62))
        release_delayed_messages()
        poller.drain()
        a_flow(recorder, shop, frozen, f"{hook.url}/flow")
        _push_and_onsite(recorder, shop, people)
        assert hook.requests and gone.requests  # the callbacks worker did deliver
        receive_stored_mail()  # SES inbound: a mail over 150 KB, stored in S3
        poller.drain()
    a_workflow_s_schedules(recorder, shop, frozen)


def receive_stored_mail() -> None:
    """What SES inbound does with a received mail: store it, notify the inbound topic."""
    inbound = herald_resources(get_settings()).inbound
    record = inbound_reply(sender="lead@example.org", recipient="ana@example.com", subject="Re")
    key = inbound.object_prefix + record["mail"]["messageId"]
    client("s3").put_object(Bucket=inbound.bucket, Key=key, Body=record.pop("content").encode())
    record["receipt"]["action"] = {"type": "S3", "bucketName": inbound.bucket, "objectKey": key}
    sns = client("sns")
    topic = sns.create_topic(Name=inbound.topic_name)["TopicArn"]
    sns.publish(TopicArn=topic, Message=json.dumps(record))


def a_workflow_s_schedules(recorder: Recorder, shop: Shop, frozen: clock.FrozenClock) -> None:
    """A workflow's campaign-level schedules: activated by the API, a scheduled trigger
    firing on the control queue (enrolling the audience), its end completing it there."""
    send = {"channel": "email", "template_ids": [shop.email_template]}
    soon = {"at": (clock.now() + timedelta(hours=1)).isoformat()}
    workflow = {
        "nodes": [
            {"id": "soon", "kind": "trigger.scheduled", "config": soon},
            {"id": "hello", "kind": "send", "config": send},
        ],
        "edges": [{"source": "soon", "target": "hello"}],
    }
    body = {
        "name": "Daily",
        "type": "workflow",
        "workflow": workflow,
        "audience": {"all_contacts": True},
        "ends_at": (clock.now() + timedelta(hours=1, minutes=30)).isoformat(),
    }
    with recorder.acting_as("api_handler"):
        flow = shop.ok("POST", "/v1/campaigns", body)["id"]
        shop.ok("POST", f"/v1/campaigns/{flow}/activate")
    for _ in range(2):  # the trigger's firing, then the flow's end
        frozen.advance(timedelta(minutes=61))
        assert ScheduleEmulator().fire_due_schedules(clock.now())
        poller.drain(["control"])
    assert shop.ok("GET", f"/v1/campaigns/{flow}")["status"] == "completed"


def a_flow(recorder: Recorder, shop: Shop, frozen: clock.FrozenClock, webhook_url: str) -> None:
    """A flow walked by the flow worker: a send, a contact change (which publishes
    contact.saved), a webhook node, a wait of seconds (an SQS delay) and one of hours (the
    due index, swept by the tick's fan-out)."""
    send = {"channel": "email", "template_ids": [shop.email_template]}
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {
                    "id": "mail",
                    "kind": "send",
                    "config": {**send, "sender_ids": [shop.email_sender]},
                },
                {"id": "tag", "kind": "add_tag", "config": {"tag": "flowed"}},
                {"id": "crm", "kind": "webhook", "config": {"url": webhook_url}},
                {"id": "soon", "kind": "delay", "config": {"amount": 2, "unit": "seconds"}},
                {"id": "later", "kind": "delay", "config": {"amount": 2, "unit": "hours"}},
            ],
            "edges": [
                {"source": a, "target": b}
                for a, b in [
                    ("start", "mail"),
                    ("mail", "tag"),
                    ("tag", "crm"),
                    ("crm", "soon"),
                    ("soon", "later"),
                ]
            ],
        },
    )
    [contact_id] = shop.contacts([f"flow@{SIM}"])
    enrol_contact(shop.tenant.id, flow, contact_id)
    poller.drain()
    frozen.advance(timedelta(seconds=2))
    release_delayed_messages()
    poller.drain()
    frozen.advance(timedelta(hours=2))
    with recorder.acting_as("tick"):
        run_tick(herald.TICK_JOBS, clock.now())
    poller.drain()
    ended = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert ended is not None and ended.exited


def _push_and_onsite(recorder: Recorder, shop: Shop, people: list[str]) -> None:
    """Push senders, devices and a campaign (one device's endpoint disabled); an on-site
    campaign and its contact reading it with a contact token."""
    api = recorder.acting_as
    channels = {
        "push": ({"platform": "GCM", "credential": "key"}, {"title": "Hi", "body": "Sale"}),
        "onsite": ({}, {"title": "Hi", "body": "Sale"}),
    }
    campaigns = []
    with api("api_handler"):
        for channel, (sender, template) in channels.items():
            sender_id = shop.ok("POST", "/v1/senders", {"channel": channel, **sender})["id"]
            template_id = shop.ok(
                "POST", "/v1/templates", {"name": channel, "channel": channel, **template}
            )["id"]
            body = {"platform": "GCM", "token": "tok"}
            for n, person in enumerate(people[:2] if channel == "push" else []):
                shop.ok("POST", f"/v1/contacts/{person}/devices", {**body, "token": f"tok{n}"})
            campaigns.append(
                shop.campaign(channel, template_ids=[template_id], sender_ids=[sender_id])
            )
    dead = get_contact(shop.tenant.id, people[0]).devices[0].endpoint_arn
    client("sns").set_endpoint_attributes(EndpointArn=dead, Attributes={"Enabled": "false"})
    with api("api_handler"):
        for campaign_id in campaigns:
            shop.ok("POST", f"/v1/campaigns/{campaign_id}/send")
    poller.drain()
    with api("api_handler"):
        token = shop.ok("POST", f"/v1/contacts/{people[0]}/token")["token"]
        inbox = shop.tenant.call("GET", "/v1/inbox", key=token)
        message_id = json.loads(inbox.body)["items"][0]["id"]
        shop.tenant.call("POST", f"/v1/inbox/{message_id}/read", key=token)
    poller.drain()


@pytest.fixture
def day(
    recorder: Recorder,
    tenant: Tenant,
    simulator: FeedbackSimulator,
    herald_env: Callable[..., None],
) -> list[AwsCall]:
    herald_env(
        ses_max_send_rate="1000000",
        simulator_delay_seconds="0",
        allow_loopback_callbacks="true",
        push_delivery_status="true",  # as the stack sets it
    )
    status_forwarder()
    with clock.frozen(START) as frozen:
        a_day_of_herald(recorder, Shop(tenant), simulator, frozen)
    return recorder.calls


def test_every_call_a_function_makes_is_allowed_by_its_own_policy(day: list[AwsCall]) -> None:
    policies = policies_by_function()
    functions = {call.function for call in day}
    # The day exercises every function Herald deploys.
    assert functions == set(policies), set(policies) - functions
    missing = sorted(
        {(c.function, c.action) for c in day if not allowed(policies[c.function], c.action)}
    )
    assert missing == []


def test_the_callbacks_worker_touches_only_its_own_items_and_queues(day: list[AwsCall]) -> None:
    worker = herald_resources(get_settings()).queue("callbacks").handler
    statements = policies_by_function()[worker]
    patterns = [
        pattern
        for s in allowed(statements, "dynamodb:GetItem")
        for pattern in s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    ]
    assert patterns, "the callbacks worker's table access must be limited by leading keys"
    calls = [c for c in day if c.function == worker]
    keys = {key for c in calls for key in c.partition_keys}
    assert keys
    outside = sorted(k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p in patterns))
    assert outside == []
    settings = get_settings()
    own_queues = {settings.queue_name("callbacks"), settings.dead_letter_queue_name("callbacks")}
    queues = {c.queue.rsplit("/", 1)[-1] for c in calls if c.queue}
    assert queues <= own_queues


def test_the_sms_status_forwarder_only_sends_to_the_feedback_queue(day: list[AwsCall]) -> None:
    forwarder = herald_resources(get_settings()).sms_status_logs.handler
    calls = [c for c in day if c.function == forwarder]
    assert {c.action for c in calls} <= {"sqs:SendMessage", "sqs:GetQueueUrl"}
    assert {c.queue.rsplit("/", 1)[-1] for c in calls if c.queue} == {
        get_settings().queue_name("feedback")
    }


def test_the_day_publishes_push_and_reads_an_inbox(day: list[AwsCall]) -> None:
    """The push and on-site part of the day did happen (else its grants go untested)."""
    made = {(c.function, c.action) for c in day}
    send = herald_resources(get_settings()).queue("send").handler
    feedback = herald_resources(get_settings()).queue("feedback").handler
    assert {
        ("api_handler", "sns:CreatePlatformApplication"),
        ("api_handler", "sns:CreatePlatformEndpoint"),
        ("api_handler", "logs:PutSubscriptionFilter"),  # the app's delivery-status logs
        (send, "sns:Publish"),
        (send, "sns:DeleteEndpoint"),
        (feedback, "dynamodb:UpdateItem"),
    } <= made
    assert any(
        c.function == "api_handler"
        and c.queue
        and c.queue.endswith(get_settings().queue_name("feedback"))
        for c in day
    ), "the inbox read queues its open receipt"
