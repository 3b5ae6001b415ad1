"""The step executor's pure core: every node kind's step, waits, goals, entry and re-entry."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.contacts import Contact
from chalicelib.domain.flows.entry import FlowWindow, dedupe_value, enrol, fires, refusal
from chalicelib.domain.flows.graph import FlowSettings, Reentry, Workflow, load_workflow
from chalicelib.domain.flows.nodes import AbSplit, Variant
from chalicelib.domain.flows.step import (
    CallWebhook,
    Enrolment,
    Exit,
    ExitReason,
    NotifyInbox,
    Score,
    Send,
    SetField,
    Step,
    StepContext,
    Tag,
    WaitForEventUntil,
    WaitUntilTime,
    ab_variant,
    defer,
    exit_step,
    skip,
    take_step,
)
from chalicelib.domain.flows.timing import Duration

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday
NO_SETTINGS = FlowSettings()


@dataclass(frozen=True)
class Event:
    name: str
    occurred_at: datetime = NOW
    properties: dict[str, Any] = field(default_factory=dict)


def contact(**fields: Any) -> Contact:
    return Contact(id="c_1", email="ada@example.com", created_at=NOW, updated_at=NOW, **fields)


def flow(*nodes: tuple[str, str, dict[str, Any]], edges: list[tuple[str, ...]]) -> Workflow:
    return load_workflow(
        {
            "nodes": [{"id": i, "kind": k, "config": c} for i, k, c in nodes],
            "edges": [
                {"source": e[0], "target": e[1], **({"branch": e[2]} if len(e) > 2 else {})}
                for e in edges
            ],
        }
    )


START: tuple[str, str, dict[str, Any]] = ("start", "trigger.manual", {})


def standing_on(node_id: str, **changes: Any) -> Enrolment:
    return replace(
        Enrolment("cmp_1", "c_1", node_id, visit=3, entered_at=NOW, arrived_at=NOW), **changes
    )


def step(
    workflow: Workflow,
    enrolment: Enrolment,
    *,
    at: datetime = NOW,
    who: Contact | None = None,
    flow_settings: FlowSettings = NO_SETTINGS,
    **context: Any,
) -> Step:
    ctx = StepContext(now=at, contact=who or contact(), **context)
    return take_step(workflow, flow_settings, enrolment, ctx)


def one_action(kind: str, config: dict[str, Any]) -> Workflow:
    return flow(START, ("a", kind, config), ("b", "exit", {}), edges=[("start", "a"), ("a", "b")])


# -- every node kind ------------------------------------------------------------------
def test_a_trigger_step_enters_and_moves_on_along_its_edge() -> None:
    workflow = one_action("add_tag", {"tag": "x"})

    done = step(workflow, enrol("cmp_1", "c_1", workflow.by_id["start"], NOW))

    assert done.intents == ()
    assert done.enrolment.node_id == "a"
    assert done.enrolment.visit == 1
    assert [(t.node_id, t.outcome) for t in done.trace] == [("start", "entered")]


@pytest.mark.parametrize(
    ("kind", "config", "intent"),
    [
        (
            "send",
            {"channel": "sms", "template_ids": ["t1"], "sender_ids": ["s1"]},
            Send("sms", ("t1",), ("s1",)),
        ),
        (
            "send",
            {"channel": "email", "template_ids": ["t1", "t2"]},
            Send("email", ("t1", "t2"), None),
        ),
        (
            "set_field",
            {"field": "attributes.plan", "value": "pro"},
            SetField("attributes.plan", "pro"),
        ),
        ("add_tag", {"tag": "vip"}, Tag("vip", add=True)),
        ("remove_tag", {"tag": "trial"}, Tag("trial", add=False)),
        ("update_score", {"delta": -5}, Score(-5)),
        (
            "webhook",
            {"url": "https://example.com/h", "body": {"a": 1}},
            CallWebhook("https://example.com/h", {"a": 1}),
        ),
        ("notify_inbox", {"title": "Call back"}, NotifyInbox("Call back")),
    ],
)
def test_an_action_step_proposes_its_intent_and_moves_on(
    kind: str, config: dict[str, Any], intent: object
) -> None:
    done = step(one_action(kind, config), standing_on("a"))

    assert done.intents == (intent,)
    assert done.enrolment.node_id == "b"
    assert done.enrolment.arrived_at == NOW
    assert done.claim == ("cmp_1#c_1", "a", 3)
    assert [(t.node_id, t.visit, t.outcome) for t in done.trace] == [("a", 3, "performed")]


def test_the_last_node_of_a_path_completes_the_enrolment_after_its_action() -> None:
    workflow = flow(START, ("a", "add_tag", {"tag": "x"}), edges=[("start", "a")])

    done = step(workflow, standing_on("a"))

    assert done.intents == (Tag("x", add=True), Exit(ExitReason.COMPLETED))
    assert done.enrolment.exit_reason is ExitReason.COMPLETED
    assert [t.outcome for t in done.trace] == ["performed", "exited"]


def test_an_exit_node_exits_with_its_reason() -> None:
    workflow = one_action("add_tag", {"tag": "x"})

    done = step(workflow, standing_on("b"))

    assert done.intents == (Exit(ExitReason.EXIT_NODE),)
    assert done.enrolment.exited
    assert done.trace[0].reason == "exit_node"


def test_an_exited_enrolment_takes_no_step() -> None:
    with pytest.raises(ValueError, match="exited"):
        step(one_action("add_tag", {"tag": "x"}), standing_on("a", exit_reason=ExitReason.GOAL))


def branching(kind: str, config: dict[str, Any], labels: tuple[str, ...]) -> Workflow:
    ways = [(f"to-{label}", "add_tag", {"tag": label}) for label in labels]
    return flow(
        START,
        ("check", kind, config),
        *ways,
        edges=[("start", "check"), *(("check", f"to-{label}", label) for label in labels)],
    )


VIP = {"rules": {"rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}}


@pytest.mark.parametrize(("tags", "branch"), [(["vip"], "yes"), ([], "no")])
def test_attribute_check_branches_with_the_segment_evaluator(tags: list[str], branch: str) -> None:
    done = step(
        branching("attribute_check", VIP, ("yes", "no")),
        standing_on("check"),
        who=contact(tags=tags),
    )

    assert done.enrolment.node_id == f"to-{branch}"
    assert (done.trace[0].outcome, done.trace[0].branch) == ("branched", branch)


def test_a_condition_without_a_labelled_edge_takes_its_default() -> None:
    workflow = flow(
        START,
        ("check", "attribute_check", VIP),
        ("vip", "add_tag", {"tag": "v"}),
        ("rest", "add_tag", {"tag": "r"}),
        edges=[("start", "check"), ("check", "vip", "yes"), ("check", "rest")],
    )

    assert step(workflow, standing_on("check")).enrolment.node_id == "rest"


BOUGHT = {"event_type": "purchase", "within": {"amount": 7, "unit": "days"}, "min_count": 2}


@pytest.mark.parametrize(
    ("ages_in_days", "branch"),
    [([1, 6], "yes"), ([1], "no"), ([1, 8], "no"), ([1, -1], "no")],
)
def test_event_check_counts_the_events_within_its_window(
    ages_in_days: list[int], branch: str
) -> None:
    history = [Event("purchase", NOW - timedelta(days=d)) for d in ages_in_days]
    history.append(Event("pageview", NOW))

    done = step(
        branching("event_check", BOUGHT, ("yes", "no")), standing_on("check"), history=history
    )

    assert done.enrolment.node_id == f"to-{branch}"


def test_ab_split_sends_a_contact_down_its_variant_and_remembers_it() -> None:
    config = {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    workflow = branching("ab_split", config, ("a", "b"))
    split = AbSplit.model_validate(config)

    done = step(workflow, standing_on("check"))

    chosen = ab_variant(split, "cmp_1", "check", "c_1")
    assert done.enrolment.variant == chosen
    assert done.enrolment.node_id == f"to-{chosen}"


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=20))
def test_ab_split_is_the_same_on_every_retry(contact_id: str, campaign_id: str) -> None:
    split = AbSplit(variants=[Variant(name="a", weight=3), Variant(name="b", weight=7)])

    first = ab_variant(split, campaign_id, "n", contact_id)

    assert all(ab_variant(split, campaign_id, "n", contact_id) == first for _ in range(3))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=2, max_size=4), st.text(max_size=8))
def test_ab_split_follows_the_weights(weights: list[int], campaign_id: str) -> None:
    split = AbSplit(variants=[Variant(name=f"v{i}", weight=w) for i, w in enumerate(weights)])
    contacts = 4000

    counts = Counter(ab_variant(split, campaign_id, "n", f"c_{i}") for i in range(contacts))

    total = sum(weights)
    for i, weight in enumerate(weights):
        expected = contacts * weight / total
        assert abs(counts[f"v{i}"] - expected) < 5 * (expected**0.5) + 5


def test_two_splits_in_one_flow_are_independent() -> None:
    split = AbSplit(variants=[Variant(name="a", weight=1), Variant(name="b", weight=1)])
    pairs = Counter(
        (ab_variant(split, "cmp", "first", f"c_{i}"), ab_variant(split, "cmp", "second", f"c_{i}"))
        for i in range(2000)
    )

    assert len(pairs) == 4
    assert min(pairs.values()) > 400


# -- timing ---------------------------------------------------------------------------
DELAY = flow(
    START,
    ("wait", "delay", {"amount": 2, "unit": "seconds"}),
    ("next", "add_tag", {"tag": "x"}),
    edges=[("start", "wait"), ("wait", "next")],
)


def test_a_delay_waits_from_arrival_and_then_moves_on() -> None:
    waiting = step(DELAY, standing_on("wait"))

    until = NOW + timedelta(seconds=2)
    assert waiting.intents == (WaitUntilTime(until),)
    assert waiting.enrolment.node_id == "wait"
    assert waiting.enrolment.wake_at == until
    assert waiting.trace[0].outcome == "waiting"

    woken = step(DELAY, waiting.enrolment, at=until)

    assert woken.enrolment.node_id == "next"
    assert woken.claim == ("cmp_1#c_1", "wait", 4)  # a new visit: a new claim
    assert woken.trace[0].outcome == "resumed"


def test_a_timer_that_fires_early_waits_on_until_it_is_due() -> None:
    waiting = step(DELAY, standing_on("wait"))

    early = step(DELAY, waiting.enrolment, at=NOW + timedelta(seconds=1))

    assert early.enrolment.node_id == "wait"
    assert early.intents == (WaitUntilTime(NOW + timedelta(seconds=2)),)


def wait_until(days: list[str] | None = None) -> Workflow:
    config: dict[str, Any] = {"local_time": "09:00"}
    if days:
        config["days"] = days
    return flow(
        START,
        ("w", "wait_until", config),
        ("n", "add_tag", {"tag": "x"}),
        edges=[("start", "w"), ("w", "n")],
    )


def test_wait_until_reads_the_time_in_the_contacts_timezone() -> None:
    tokyo = contact(timezone="Asia/Tokyo")  # 10:00 UTC is 19:00 in Tokyo

    done = step(wait_until(), standing_on("w"), who=tokyo, campaign_timezone="Europe/Berlin")

    assert done.enrolment.wake_at == datetime(2026, 12, 8, 0, 0, tzinfo=UTC)  # 09:00 JST


def test_wait_until_falls_back_to_the_campaigns_timezone() -> None:
    done = step(wait_until(), standing_on("w"), campaign_timezone="America/New_York")

    assert done.enrolment.wake_at == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 09:00 EST today


def test_wait_until_keeps_to_its_weekdays() -> None:
    done = step(wait_until(["fri"]), standing_on("w"), campaign_timezone="UTC")

    assert done.enrolment.wake_at == datetime(2026, 12, 11, 9, 0, tzinfo=UTC)


def test_wait_until_at_the_very_time_moves_on_at_once() -> None:
    done = step(wait_until(), standing_on("w"), at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC))

    assert done.enrolment.node_id == "n"


WAIT_FOR = branching(
    "wait_for_event",
    {"event_type": "purchase", "timeout": {"amount": 3, "unit": "days"}},
    ("event", "timeout"),
)


def test_wait_for_event_takes_the_event_branch_when_it_arrives() -> None:
    waiting = step(WAIT_FOR, standing_on("check"))
    deadline = NOW + timedelta(days=3)
    assert waiting.intents == (WaitForEventUntil("purchase", deadline),)
    assert waiting.enrolment.waiting_for == "purchase"

    later = NOW + timedelta(hours=5)
    done = step(WAIT_FOR, waiting.enrolment, at=later, event=Event("purchase", later))

    assert done.enrolment.node_id == "to-event"
    assert done.trace[0].branch == "event"


def test_wait_for_event_takes_the_timeout_branch_at_its_deadline() -> None:
    waiting = step(WAIT_FOR, standing_on("check"))

    done = step(WAIT_FOR, waiting.enrolment, at=NOW + timedelta(days=3))

    assert done.enrolment.node_id == "to-timeout"
    assert done.trace[0].branch == "timeout"


def test_wait_for_event_ignores_other_events_and_events_from_before_it_waited() -> None:
    waiting = step(WAIT_FOR, standing_on("check"))
    later = NOW + timedelta(hours=1)

    other = step(WAIT_FOR, waiting.enrolment, at=later, event=Event("pageview", later))
    stale = step(
        WAIT_FOR, waiting.enrolment, at=later, event=Event("purchase", NOW - timedelta(hours=1))
    )

    for done in (other, stale):
        assert done.enrolment.node_id == "check"
        assert done.intents == (WaitForEventUntil("purchase", NOW + timedelta(days=3)),)


# -- exits ----------------------------------------------------------------------------
def test_a_goal_event_exits_wherever_the_contact_stands() -> None:
    goals = FlowSettings(exit_on=["purchase"])

    done = step(DELAY, standing_on("wait"), flow_settings=goals, event=Event("purchase"))

    assert done.intents == (Exit(ExitReason.GOAL),)
    assert done.trace[0].node_id == "wait"  # the conversion counts for the node it was on


def test_a_contact_on_a_node_an_edit_removed_exits_with_node_removed() -> None:
    done = step(DELAY, standing_on("gone"))

    assert done.enrolment.exit_reason is ExitReason.NODE_REMOVED


def test_an_exit_from_outside_the_flow_ends_it_with_that_reason() -> None:
    done = exit_step(standing_on("wait"), ExitReason.UNSUBSCRIBED, NOW)

    assert done.enrolment.exit_reason is ExitReason.UNSUBSCRIBED
    assert done.enrolment.wake_at is None


# -- what the policy engine decides about a send --------------------------------------
SEND_THEN_TAG = one_action("send", {"channel": "email", "template_ids": ["t1"]})


def test_a_deferred_send_stays_on_its_node_and_is_sent_when_woken() -> None:
    tomorrow = NOW + timedelta(hours=12)
    deferred = defer(standing_on("a"), tomorrow, "quiet_hours", NOW)

    assert deferred.enrolment.node_id == "a"
    assert deferred.intents == (WaitUntilTime(tomorrow),)
    assert (deferred.trace[0].outcome, deferred.trace[0].reason) == ("deferred", "quiet_hours")
    assert step(SEND_THEN_TAG, deferred.enrolment, at=NOW + timedelta(hours=1)).intents == (
        WaitUntilTime(tomorrow),
    )

    sent = step(SEND_THEN_TAG, deferred.enrolment, at=tomorrow)

    assert isinstance(sent.intents[0], Send)
    assert sent.enrolment.node_id == "b"


def test_a_skipped_send_moves_on_with_its_reason_in_the_trace() -> None:
    done = skip(SEND_THEN_TAG, standing_on("a"), "frequency_cap", NOW)

    assert done.intents == ()
    assert done.enrolment.node_id == "b"
    assert (done.trace[0].outcome, done.trace[0].reason) == ("skipped", "frequency_cap")


# -- entry ----------------------------------------------------------------------------
ORDERS = load_workflow(
    {
        "nodes": [
            {
                "id": "order",
                "kind": "trigger.event",
                "config": {
                    "event_type": "order.placed",
                    "where": {
                        "rules": [{"field": "properties.total", "operator": "gte", "value": 50}]
                    },
                    "dedupe_key": "order_id",
                },
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("event", "fired"),
    [
        (Event("order.placed", properties={"total": 80}), True),
        (Event("order.placed", properties={"total": 20}), False),
        (Event("order.placed"), False),
        (Event("order.cancelled", properties={"total": 80}), False),
    ],
)
def test_an_event_trigger_fires_on_its_event_when_where_holds(event: Event, fired: bool) -> None:
    assert fires(ORDERS.by_id["order"], event, NOW) is fired


def test_the_dedupe_key_names_the_business_event() -> None:
    trigger = ORDERS.by_id["order"]

    assert dedupe_value(trigger, Event("order.placed", properties={"order_id": 42})) == "42"
    assert dedupe_value(trigger, Event("order.placed", properties={"order_id": {"x": 1}})) is None
    assert dedupe_value(trigger, Event("order.placed")) is None


def exited(entered_days_ago: int) -> Enrolment:
    return standing_on(
        "b", entered_at=NOW - timedelta(days=entered_days_ago), exit_reason=ExitReason.COMPLETED
    )


@pytest.mark.parametrize(
    ("reentry", "previous", "answer"),
    [
        (Reentry(), None, None),
        (Reentry(), standing_on("a"), "already_enrolled"),
        (Reentry(mode="after_exit"), standing_on("a"), "already_enrolled"),
        (Reentry(), exited(100), "reentry_once"),
        (Reentry(mode="after_exit"), exited(0), None),
        (
            Reentry(mode="every", interval=Duration(amount=30, unit="days")),
            exited(10),
            "reentry_interval",
        ),
        (Reentry(mode="every", interval=Duration(amount=30, unit="days")), exited(30), None),
    ],
)
def test_reentry_follows_the_policy(
    reentry: Reentry, previous: Enrolment | None, answer: str | None
) -> None:
    assert refusal(FlowSettings(reentry=reentry), FlowWindow(), previous, NOW) == answer


def test_a_flow_is_entered_only_between_its_start_and_end() -> None:
    window = FlowWindow(starts_at=NOW, ends_at=NOW + timedelta(days=1))

    assert refusal(NO_SETTINGS, window, None, NOW - timedelta(seconds=1)) == "before_start"
    assert refusal(NO_SETTINGS, window, None, NOW) is None
    assert refusal(NO_SETTINGS, window, None, NOW + timedelta(days=1)) == "ended"


# -- the three seeds, walked end to end -------------------------------------------------
def walk(
    workflow: Workflow, enrolment: Enrolment, now: datetime, who: Contact, **context: Any
) -> tuple[Enrolment, list[object], datetime]:
    """Take steps until the enrolment waits or exits; a wait is slept through at once."""
    intents: list[object] = []
    for _ in range(50):
        done = step(workflow, enrolment, at=now, who=who, **context)
        intents.extend(done.intents)
        enrolment = done.enrolment
        if enrolment.exited:
            return enrolment, intents, now
        if enrolment.wake_at is not None and enrolment.waiting_for is None:
            now = enrolment.wake_at
    raise AssertionError("the walk did not end")


def test_seed_004_workflow_event_delay_send_check_split_webhook_exit() -> None:
    workflow = flow(
        ("signup", "trigger.event", {"event_type": "signup"}),
        ("pause", "delay", {"amount": 2, "unit": "seconds"}),
        ("welcome", "send", {"channel": "email", "template_ids": ["t_welcome"]}),
        ("vip", "attribute_check", VIP),
        (
            "split",
            "ab_split",
            {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
        ),
        ("hook", "webhook", {"url": "https://example.com/hook"}),
        ("done", "exit", {}),
        edges=[
            ("signup", "pause"),
            ("pause", "welcome"),
            ("welcome", "vip"),
            ("vip", "split", "yes"),
            ("vip", "done", "no"),
            ("split", "hook", "a"),
            ("split", "hook", "b"),
            ("hook", "done"),
        ],
    )
    start = enrol("cmp_1", "c_1", workflow.by_id["signup"], NOW)

    final, intents, ended = walk(workflow, start, NOW, contact(tags=["vip"]))

    assert intents == [
        WaitUntilTime(NOW + timedelta(seconds=2)),
        Send("email", ("t_welcome",), None),
        CallWebhook("https://example.com/hook", None),
        Exit(ExitReason.EXIT_NODE),
    ]
    assert ended == NOW + timedelta(seconds=2)
    assert final.variant in ("a", "b")


def test_seed_001_sequence_stops_on_reply() -> None:
    sequence = flow(
        ("enrol", "trigger.manual", {}),
        ("step-1", "send", {"channel": "email", "template_ids": ["t1"]}),
        ("gap", "delay", {"amount": 3, "unit": "days"}),
        ("step-2", "send", {"channel": "email", "template_ids": ["t2"]}),
        edges=[("enrol", "step-1"), ("step-1", "gap"), ("gap", "step-2")],
    )
    start = enrol("cmp_1", "c_1", sequence.by_id["enrol"], NOW)

    final, intents, _ = walk(sequence, start, NOW, contact())
    assert [i.template_ids for i in intents if isinstance(i, Send)] == [("t1",), ("t2",)]
    assert final.exit_reason is ExitReason.COMPLETED

    first = step(sequence, step(sequence, start).enrolment)
    waiting = step(sequence, first.enrolment)
    replied = exit_step(waiting.enrolment, ExitReason.REPLIED, NOW + timedelta(days=1))
    assert replied.enrolment.exit_reason is ExitReason.REPLIED


def test_seed_000_event_triggered_send_with_a_cooldown() -> None:
    triggered = flow(
        ("saved", "trigger.event", {"event_type": "contact.saved"}),
        ("mail", "send", {"channel": "email", "template_ids": ["t1"]}),
        edges=[("saved", "mail")],
    )
    cooldown = FlowSettings(
        reentry=Reentry(mode="every", interval=Duration(amount=3600, unit="seconds"))
    )
    assert fires(triggered.by_id["saved"], Event("contact.saved"), NOW)

    final, intents, _ = walk(
        triggered, enrol("cmp_1", "c_1", triggered.by_id["saved"], NOW), NOW, contact()
    )

    assert intents == [Send("email", ("t1",), None), Exit(ExitReason.COMPLETED)]
    assert refusal(cooldown, FlowWindow(), final, NOW + timedelta(minutes=59)) == "reentry_interval"
    assert refusal(cooldown, FlowWindow(), final, NOW + timedelta(hours=1)) is None
