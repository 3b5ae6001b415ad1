"""The flow worker under faults: duplicate deliveries, a worker that dies between a step's
effects and its claim, stale wakes, paused and finished flows, deleted contacts.

Faults are injected at the AWS boundary only (botocore events on Herald's own clients);
Herald's code runs unchanged. Each test would fail if a step could happen twice or be
lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields
from chalicelib.domain.flows.step import ExitReason
from chalicelib.local.poller import drain, poll_once
from chalicelib.pipeline.messages import FlowWake
from chalicelib.pipeline.queues import enqueue
from chalicelib.services.enrolments import wake_held
from chalicelib.store import contacts, enrolments
from chalicelib.store.campaigns import apply_action
from chalicelib.store.counters import read_counts
from tests.flow_kit import enrol_contact, outcomes, put_flow
from tests.integration.test_flow_worker import chain, send_node
from tests.send_kit import Shop, drain_delivering_twice, recipients_of, sent_mail

pytestmark = pytest.mark.usefixtures("fast_sends")


class Killer:
    """Raises on chosen calls of one DynamoDB operation, as a worker killed there would."""

    def __init__(self, kill_on: set[int]) -> None:
        self.kill_on = kill_on
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
        if self.calls in self.kill_on:
            raise RuntimeError("worker killed")


@pytest.fixture
def kill_transaction() -> Iterator[Callable[[set[int]], Killer]]:
    """Kill the worker at chosen TransactWriteItems calls (the step claims), before AWS
    sees them: everything the step did before its claim is done, the claim is not."""
    events = client("dynamodb").meta.events
    installed: list[Killer] = []

    def install(kill_on: set[int]) -> Killer:
        killer = Killer(kill_on)
        events.register("before-call.dynamodb.TransactWriteItems", killer)
        installed.append(killer)
        return killer

    yield install
    for killer in installed:
        events.unregister("before-call.dynamodb.TransactWriteItems", killer)


def welcome_flow(shop: Shop, **fields: Any) -> Any:
    return put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                send_node(shop),
                {"id": "tag", "kind": "add_tag", "config": {"tag": "welcomed"}},
                {"id": "score", "kind": "update_score", "config": {"delta": 7}},
            ],
            "edges": chain("start", "welcome", "tag", "score"),
        },
        **fields,
    )


def test_a_worker_killed_between_the_send_and_its_claim_sends_once(
    shop: Shop, frozen: clock.FrozenClock, kill_transaction: Callable[[set[int]], Killer]
) -> None:
    flow = welcome_flow(shop)
    [contact_id] = shop.contacts(1)
    # The walk's steps (the send among them) are claimed in one transaction: kill it, and
    # the retry's too; the third attempt finds the send in the ledger and claims the walk.
    killer = kill_transaction({1, 2})
    enrol_contact(shop.tenant.id, flow, contact_id)

    drain()

    assert killer.calls == 3
    assert recipients_of(sent_mail()) == {"person0@example.com": 1}
    contact = contacts.get_contact(shop.tenant.id, contact_id)
    assert contact.tags == ["welcomed"] and contact.lead_score == 7
    counts = read_counts(shop.tenant.id, flow.id)
    assert (counts["sent"], counts["messages"], counts["enrollments"]) == (1, 1, 1)
    assert counts["node.welcome.completed"] == 1 and counts["node.tag.completed"] == 1
    assert outcomes(shop.tenant.id, flow.id, contact_id) == [
        ("start", "entered"),
        ("welcome", "performed"),
        ("tag", "performed"),
        ("score", "performed"),
        ("score", "exited"),
    ]


def test_every_wake_delivered_twice_changes_nothing(shop: Shop, frozen: clock.FrozenClock) -> None:
    flow = welcome_flow(shop)
    people = shop.contacts(3, lead_score=1)
    for contact_id in people:
        enrol_contact(shop.tenant.id, flow, contact_id)

    drain_delivering_twice()

    assert len(sent_mail()) == 3
    for contact_id in people:
        assert contacts.get_contact(shop.tenant.id, contact_id).lead_score == 8
    counts = read_counts(shop.tenant.id, flow.id)
    assert (counts["sent"], counts["enrollments"], counts["exited.completed"]) == (3, 3, 3)
    assert counts["node.score.entered"] == 3


def test_a_stale_wake_is_dropped(shop: Shop, frozen: clock.FrozenClock) -> None:
    flow = welcome_flow(shop)
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()
    before = enrolments.read(shop.tenant.id, flow.id, contact_id)

    for visit in (0, 1, 2):  # wakes of steps that were taken long ago
        wake = FlowWake(
            tenant_id=shop.tenant.id, campaign_id=flow.id, contact_id=contact_id, visit=visit
        )
        enqueue("flows", [wake.as_message()])
    drain()

    assert enrolments.read(shop.tenant.id, flow.id, contact_id) == before
    assert len(sent_mail()) == 1


def test_a_paused_flow_holds_its_contacts_until_resumed(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = welcome_flow(shop, status="paused")
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    drain()

    held = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert held is not None and (held.node_id, held.visit) == ("start", 0)
    assert sent_mail() == []

    apply_action(shop.tenant.id, flow.id, "resume", clock.now())
    assert wake_held(shop.tenant.id, flow.id, clock.now()) == 1
    drain()

    assert recipients_of(sent_mail()) == {"person0@example.com": 1}
    assert wake_held(shop.tenant.id, flow.id, clock.now()) == 0  # it has exited


def test_a_wake_of_a_finished_flow_ends_the_enrolment(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = welcome_flow(shop)
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    apply_action(shop.tenant.id, flow.id, "complete", clock.now())  # before the wake runs
    drain()

    ended = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert ended is not None and ended.exit_reason is ExitReason.CAMPAIGN_ENDED
    assert sent_mail() == []


def test_a_deleted_contact_exits(shop: Shop, frozen: clock.FrozenClock) -> None:
    flow = welcome_flow(shop)
    [contact_id] = shop.contacts(1)
    enrol_contact(shop.tenant.id, flow, contact_id)
    contacts.delete_contact(shop.tenant.id, contact_id)
    drain()

    ended = enrolments.read(shop.tenant.id, flow.id, contact_id)
    assert ended is not None and ended.exit_reason is ExitReason.DELETED
    assert sent_mail() == []


def test_a_contact_changed_between_read_and_claim_gets_the_step_once(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = welcome_flow(shop)
    [contact_id] = shop.contacts(1, lead_score=1)
    events = client("dynamodb").meta.events
    claims = {"n": 0}

    def meanwhile(**_: Any) -> None:
        claims["n"] += 1
        if claims["n"] == 1:  # the walk's claim (send, tag, score): someone edits the contact
            events.unregister("before-call.dynamodb.TransactWriteItems", meanwhile)
            contacts.set_list_membership(shop.tenant.id, contact_id, "lst_1", member=True)
            fields = ContactFields(first_name="Edited")
            contacts.update_contact(shop.tenant.id, contact_id, fields)

    events.register("before-call.dynamodb.TransactWriteItems", meanwhile)
    try:
        enrol_contact(shop.tenant.id, flow, contact_id)
        drain()
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", meanwhile)

    contact = contacts.get_contact(shop.tenant.id, contact_id)
    assert (contact.first_name, contact.lead_score, contact.tags) == ("Edited", 8, ["welcomed"])
    assert claims["n"] == 1  # unregistered: the claim it refused was taken again
    counts = read_counts(shop.tenant.id, flow.id)
    assert (counts["node.score.completed"], counts["sent"]) == (1, 1)
    assert recipients_of(sent_mail()) == {"person0@example.com": 1}


def test_a_wake_delivered_twice_in_one_batch_changes_nothing(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow = welcome_flow(shop)
    people = shop.contacts(2, lead_score=1)
    for contact_id in people:
        enrol_contact(shop.tenant.id, flow, contact_id)
    again = FlowWake(tenant_id=shop.tenant.id, campaign_id=flow.id, contact_id=people[0], visit=0)
    enqueue("flows", [again.as_message()])

    assert poll_once("flows") == 3  # read ahead together: the copy must not reuse that read
    drain()

    assert recipients_of(sent_mail()) == {"person0@example.com": 1, "person1@example.com": 1}
    counts = read_counts(shop.tenant.id, flow.id)
    assert (counts["sent"], counts["node.score.completed"], counts["exited.completed"]) == (2, 2, 2)
    assert contacts.get_contact(shop.tenant.id, people[0]).lead_score == 8
    assert outcomes(shop.tenant.id, flow.id, people[0]) == [
        ("start", "entered"),
        ("welcome", "performed"),
        ("tag", "performed"),
        ("score", "performed"),
        ("score", "exited"),
    ]


def test_a_condition_is_claimed_before_the_message_it_leads_to(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    """A retry may decide a condition otherwise (the contact changed): the branch taken is
    durable before the message goes out. Steps that decide nothing (the trigger) are
    claimed with the send."""
    flow = put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {
                    "id": "pro",
                    "kind": "attribute_check",
                    "config": {
                        "rules": {
                            "condition": "AND",
                            "rules": [{"field": "lead_score", "operator": "gte", "value": 50}],
                        }
                    },
                },
                send_node(shop),
                send_node(shop, "second"),
            ],
            "edges": [
                {"source": "start", "target": "pro"},
                {"source": "pro", "target": "welcome", "branch": "yes"},
                {"source": "pro", "target": "second", "branch": "no"},
            ],
        },
    )
    plain = welcome_flow(shop)
    [contact_id] = shop.contacts(1, lead_score=60)
    standing: list[tuple[str, str]] = []

    def at_send(**_: Any) -> None:
        for campaign in (flow, plain):
            enrolment = enrolments.read(shop.tenant.id, campaign.id, contact_id)
            if enrolment is not None and not enrolment.exited:
                standing.append((campaign.id, enrolment.node_id))

    events = client("sesv2").meta.events
    events.register("before-call.sesv2.SendEmail", at_send)
    try:
        enrol_contact(shop.tenant.id, flow, contact_id)
        drain()
        enrol_contact(shop.tenant.id, plain, contact_id)
        drain()
    finally:
        events.unregister("before-call.sesv2.SendEmail", at_send)

    assert standing == [(flow.id, "welcome"), (plain.id, "start")]
    assert outcomes(shop.tenant.id, flow.id, contact_id) == [
        ("start", "entered"),
        ("pro", "branched"),
        ("welcome", "performed"),
        ("welcome", "exited"),
    ]
