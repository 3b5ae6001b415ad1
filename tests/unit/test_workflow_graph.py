"""Workflow graphs: every node kind's config, every rule checked at save, cron and durations."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.domain.errors import ValidationFailed, ValidationFailures
from chalicelib.domain.flows.graph import (
    MAX_NODES,
    FlowSettings,
    Reentry,
    Workflow,
    load_workflow,
)
from chalicelib.domain.flows.nodes import (
    AbSplit,
    EventTrigger,
    ScheduledTrigger,
    SendAction,
    where_tree,
)
from chalicelib.domain.flows.timing import (
    Duration,
    next_local_time,
    parse_cron,
    wall_clock_instant,
)

TRIGGER = {"id": "start", "kind": "trigger.event", "config": {"event_type": "signup"}}

# One example config per node kind: the same examples docs/flows.md shows.
EXAMPLES: dict[str, dict[str, Any]] = {
    "trigger.event": {
        "event_type": "order.placed",
        "where": {"rules": [{"field": "properties.total", "operator": "gt", "value": 50}]},
        "dedupe_key": "order_id",
    },
    "trigger.segment_entry": {"segment_id": "seg_vip"},
    "trigger.segment_exit": {"segment_id": "seg_vip"},
    "trigger.scheduled": {"cron": "0 9 * * 1", "timezone": "Europe/Berlin"},
    "trigger.manual": {},
    "send": {"channel": "email", "template_ids": ["tpl_1", "tpl_2"], "sender_ids": ["snd_1"]},
    "set_field": {"field": "attributes.plan", "value": "pro"},
    "add_tag": {"tag": "onboarded"},
    "remove_tag": {"tag": "trial"},
    "update_score": {"delta": 10},
    "webhook": {"url": "https://hooks.example.com/flow", "body": {"hello": "world"}},
    "notify_inbox": {"title": "Call this lead"},
    "attribute_check": {
        "rules": {"rules": [{"field": "lead_score", "operator": "gte", "value": 50}]}
    },
    "event_check": {"event_type": "purchase", "within": {"amount": 7, "unit": "days"}},
    "ab_split": {"variants": [{"name": "short", "weight": 1}, {"name": "long", "weight": 3}]},
    "delay": {"amount": 2, "unit": "seconds"},
    "wait_until": {"local_time": "09:00", "days": ["mon", "wed"]},
    "wait_for_event": {"event_type": "purchase", "timeout": {"amount": 3, "unit": "days"}},
    "exit": {},
}


def node(node_id: str, kind: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": node_id, "kind": kind, "config": EXAMPLES[kind] if config is None else config}


def edge(source: str, target: str, branch: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, **({"branch": branch} if branch else {})}


def problems(payload: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailures) as caught:
        load_workflow(payload)
    return caught.value.details


def fields(payload: dict[str, Any]) -> list[str]:
    return [p["field"] for p in problems(payload)]


# -- every node kind ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_node_kind_loads_from_its_documented_example(kind: str) -> None:
    nodes = [TRIGGER, node("n", kind)] if not kind.startswith("trigger.") else [node("n", kind)]
    edges = [edge("start", "n")] if not kind.startswith("trigger.") else []
    if kind in ("attribute_check", "event_check", "ab_split", "wait_for_event"):
        nodes.append(node("end", "exit"))
        edges.append(edge("n", "end"))  # the default edge wires every branch

    workflow = load_workflow({"nodes": nodes, "edges": edges})

    loaded = workflow.by_id["n"]
    assert loaded.kind == kind
    assert loaded.config.model_dump(exclude_defaults=True, mode="json") == EXAMPLES[kind]


def test_a_node_may_leave_out_an_empty_config_and_keep_its_position() -> None:
    workflow = load_workflow(
        {"nodes": [{"id": "go", "kind": "trigger.manual", "position": {"x": 10, "y": 20.5}}]}
    )

    assert workflow.nodes[0].position is not None
    assert workflow.nodes[0].position.y == 20.5


def test_a_config_belongs_to_its_kind_and_the_error_names_the_node_and_field() -> None:
    found = problems({"nodes": [TRIGGER, node("wait", "delay", {"tag": "x"})], "edges": []})

    assert [p["field"] for p in found] == [
        "workflow.nodes.1.config.amount",
        "workflow.nodes.1.config.unit",
        "workflow.nodes.1.config.tag",
    ]
    assert all(p["message"].startswith("node 'wait': ") for p in found)


def test_an_unknown_kind_is_refused_once_naming_the_kind() -> None:
    assert fields({"nodes": [TRIGGER, {"id": "x", "kind": "sms_blast", "config": {}}]}) == [
        "workflow.nodes.1.kind"
    ]


@pytest.mark.parametrize("channel", ["push", "telegram", "onsite"])
def test_a_send_node_takes_every_channel_herald_has(channel: str) -> None:
    config = {"channel": channel, "template_ids": ["tpl_1"]}

    workflow = load_workflow(
        {"nodes": [TRIGGER, node("s", "send", config)], "edges": [edge("start", "s")]}
    )

    assert [n.config.channel for n in workflow.nodes if n.kind == "send"] == [channel]


def test_a_channel_herald_lacks_is_refused_naming_the_field() -> None:
    config = {"channel": "carrier_pigeon", "template_ids": ["tpl_1"]}

    (found,) = problems({"nodes": [TRIGGER, node("s", "send", config)], "edges": []})

    assert found["field"] == "workflow.nodes.1.config.channel"


def test_an_event_trigger_where_reads_event_properties_only() -> None:
    with pytest.raises(ValueError, match=r"properties\.<name>"):
        EventTrigger(
            event_type="order", where={"rules": [{"field": "email", "operator": "exists"}]}
        )

    tree = where_tree({"rules": [{"field": "properties.total", "operator": "gt", "value": 5}]})
    assert tree.rules[0].field == "attributes.total"  # type: ignore[union-attr]


def test_a_scheduled_trigger_takes_exactly_one_of_at_and_cron_in_a_real_zone() -> None:
    with pytest.raises(ValueError, match="exactly one of at and cron"):
        ScheduledTrigger()
    with pytest.raises(ValueError, match="exactly one of at and cron"):
        ScheduledTrigger(at=datetime(2027, 1, 1, tzinfo=UTC), cron="0 9 * * *")
    with pytest.raises(ValueError, match="IANA"):
        ScheduledTrigger(cron="0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="never fires"):
        ScheduledTrigger(cron="0 0 30 2 *")
    assert ScheduledTrigger(at=datetime(2027, 1, 1, tzinfo=UTC)).timezone == "UTC"


def test_a_send_rotates_at_least_one_template() -> None:
    with pytest.raises(ValueError, match="template_ids"):
        SendAction(channel="email", template_ids=[])


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("set_field", {"field": "email", "value": "x@example.com"}, "field"),
        ("set_field", {"field": "attributes.a.b", "value": 1}, "field"),
        ("update_score", {"delta": 0}, "delta"),
        ("webhook", {"url": "https://user:secret@example.com/hook"}, "url"),
        ("webhook", {"url": "ftp://example.com/x"}, "url"),
        ("event_check", {"event_type": "buy", "within": {"amount": 0, "unit": "days"}}, "within"),
        ("wait_until", {"local_time": "25:00"}, "local_time"),
        ("wait_until", {"local_time": "09:00", "days": ["someday"]}, "days"),
        ("delay", {"amount": 367, "unit": "days"}, "config"),
        ("delay", {"amount": 1, "unit": "weeks"}, "unit"),
        ("ab_split", {"variants": [{"name": "a", "weight": 1}]}, "variants"),
    ],
)
def test_each_node_config_refuses_what_it_cannot_run(
    kind: str, config: dict[str, Any], field: str
) -> None:
    found = fields({"nodes": [TRIGGER, node("n", kind, config)], "edges": [edge("start", "n")]})

    assert any(f.startswith("workflow.nodes.1.config") and field in f for f in found), found


def test_ab_split_variants_have_distinct_names_that_are_not_branch_labels() -> None:
    with pytest.raises(ValueError, match="must differ: a"):
        AbSplit.model_validate({"variants": [{"name": "a", "weight": 1}] * 2})
    with pytest.raises(ValueError, match="branch labels"):
        AbSplit.model_validate(
            {"variants": [{"name": "yes", "weight": 1}, {"name": "b", "weight": 1}]}
        )


# -- the rules checked at save ------------------------------------------------------------
def test_a_workflow_needs_a_trigger() -> None:
    assert fields({"nodes": [node("end", "exit")]}) == ["workflow.nodes"]


def test_a_workflow_holds_at_most_200_nodes() -> None:
    many = [TRIGGER] + [node(f"n{i}", "add_tag") for i in range(MAX_NODES)]

    assert fields({"nodes": many}) == ["workflow.nodes"]


def test_node_ids_are_unique() -> None:
    payload = {"nodes": [TRIGGER, {**TRIGGER, "config": {"event_type": "other"}}]}

    assert fields(payload) == ["workflow.nodes.1.id"]


def test_an_edge_from_or_to_a_missing_node_is_refused_naming_the_edge() -> None:
    payload = {"nodes": [TRIGGER], "edges": [edge("start", "ghost"), edge("ghost", "start")]}

    found = problems(payload)

    assert [p["field"] for p in found] == [
        "workflow.edges.0.target",
        "workflow.edges.1.source",
        "workflow.edges.1.target",
    ]
    assert found[0]["message"] == "edge 0: no node 'ghost'"


def test_nothing_leads_into_a_trigger_and_nothing_follows_an_exit() -> None:
    payload = {
        "nodes": [TRIGGER, node("end", "exit"), node("tag", "add_tag")],
        "edges": [edge("start", "end"), edge("end", "tag"), edge("tag", "start")],
    }

    # The refused edge is no way in: "tag" is unreachable as well.
    assert fields(payload) == [
        "workflow.edges.1.source",
        "workflow.edges.2.target",
        "workflow.nodes.2",
    ]


def test_every_node_is_reachable_from_a_trigger() -> None:
    payload = {"nodes": [TRIGGER, node("orphan", "add_tag")], "edges": []}

    (found,) = problems(payload)

    assert found == {
        "field": "workflow.nodes.1",
        "message": "node 'orphan' cannot be reached from a trigger",
    }


def test_every_condition_branch_is_wired_or_has_a_default() -> None:
    payload = {
        "nodes": [TRIGGER, node("check", "attribute_check"), node("yes", "add_tag")],
        "edges": [edge("start", "check"), edge("check", "yes", "yes")],
    }

    (found,) = problems(payload)

    assert found["field"] == "workflow.nodes.1"
    assert "no edge for no and no default edge" in found["message"]


@pytest.mark.parametrize(
    ("kind", "branches"),
    [
        ("attribute_check", ["yes", "no"]),
        ("event_check", ["yes", "no"]),
        ("ab_split", ["short", "long"]),
        ("wait_for_event", ["event", "timeout"]),
    ],
)
def test_a_branching_node_with_every_branch_wired_is_sound(kind: str, branches: list[str]) -> None:
    ways = [node(f"to-{b}", "add_tag") for b in branches]
    workflow = load_workflow(
        {
            "nodes": [TRIGGER, node("split", kind), *ways],
            "edges": [edge("start", "split"), *(edge("split", f"to-{b}", b) for b in branches)],
        }
    )

    assert [workflow.next_node("split", b) for b in branches] == [f"to-{b}" for b in branches]


def test_a_branch_label_must_belong_to_its_source_node() -> None:
    payload = {
        "nodes": [TRIGGER, node("check", "attribute_check"), node("a", "add_tag")],
        "edges": [edge("start", "check", "yes"), edge("check", "a", "maybe"), edge("check", "a")],
    }

    found = problems(payload)

    assert [p["field"] for p in found] == ["workflow.edges.0.branch", "workflow.edges.1.branch"]
    assert "it has one way out" in found[0]["message"]
    assert "use yes, no or none" in found[1]["message"]


def test_a_node_has_one_edge_per_branch() -> None:
    payload = {
        "nodes": [TRIGGER, node("a", "add_tag"), node("b", "remove_tag")],
        "edges": [edge("start", "a"), edge("start", "b")],
    }

    (found,) = problems(payload)

    assert found["field"] == "workflow.edges.1.branch"
    assert "has a default edge already" in found["message"]


def test_a_loop_without_a_wait_is_refused_naming_a_node_on_it() -> None:
    payload = {
        "nodes": [TRIGGER, node("a", "add_tag"), node("b", "update_score")],
        "edges": [edge("start", "a"), edge("a", "b"), edge("b", "a")],
    }

    (found,) = problems(payload)

    assert found["field"] == "workflow.nodes.1"
    assert "loop with no delay" in found["message"]


def test_a_node_looping_to_itself_is_a_loop() -> None:
    payload = {
        "nodes": [TRIGGER, node("a", "add_tag")],
        "edges": [edge("start", "a"), edge("a", "a")],
    }

    assert fields(payload) == ["workflow.nodes.1"]


@pytest.mark.parametrize("wait", ["delay", "wait_until", "wait_for_event"])
def test_a_loop_through_a_wait_is_allowed(wait: str) -> None:
    workflow = load_workflow(
        {
            "nodes": [TRIGGER, node("a", "send"), node("w", wait)],
            "edges": [edge("start", "a"), edge("a", "w"), edge("w", "a")],
        }
    )

    assert workflow.next_node("w") == "a"


def test_all_problems_are_reported_at_once_and_the_first_is_the_error() -> None:
    payload = {"nodes": [node("a", "add_tag")], "edges": [edge("a", "nowhere")]}

    with pytest.raises(ValidationFailed) as caught:
        load_workflow(payload)

    assert caught.value.field == "workflow.nodes"
    assert caught.value.message.endswith("(and 1 more)")  # the dangling edge


def test_an_edge_with_an_unknown_field_is_refused() -> None:
    payload = {"nodes": [TRIGGER], "edges": [{"source": "start", "target": "start", "when": 1}]}

    assert "workflow.edges.0.when" in fields(payload)


# -- campaign-level settings --------------------------------------------------------------
def test_reentry_every_needs_an_interval_and_only_every_takes_one() -> None:
    assert Reentry().mode == "once"
    assert Reentry(mode="every", interval=Duration(amount=30, unit="days")).interval is not None
    with pytest.raises(ValueError, match="interval"):
        Reentry(mode="every")
    with pytest.raises(ValueError, match="interval"):
        Reentry(mode="after_exit", interval=Duration(amount=1, unit="days"))


def test_goal_events_are_event_names() -> None:
    assert FlowSettings(exit_on=["purchase"]).exit_on == ["purchase"]
    with pytest.raises(ValueError):
        FlowSettings(exit_on=["not an event"])


# -- durations, local times, cron ---------------------------------------------------------
def test_a_duration_is_one_shape_with_four_units() -> None:
    assert Duration(amount=90, unit="minutes").as_timedelta() == timedelta(hours=1, minutes=30)
    assert Duration(amount=366, unit="days").as_timedelta() == timedelta(days=366)


@pytest.mark.parametrize("amount", [367, 10**16])  # the second is past timedelta's range
def test_a_duration_past_a_year_is_refused_however_long(amount: int) -> None:
    with pytest.raises(ValidationError, match="at most 366 days"):
        Duration(amount=amount, unit="days")


NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def test_a_wall_time_in_the_spring_gap_happens_after_the_jump_never_before() -> None:
    instant = wall_clock_instant(date(2026, 3, 8), time(2, 30), NEW_YORK)

    assert instant == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT


def test_a_repeated_wall_time_happens_at_its_first_occurrence() -> None:
    instant = wall_clock_instant(date(2026, 11, 1), time(1, 30), NEW_YORK)

    assert instant == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not EST


def test_next_local_time_keeps_to_the_given_weekdays() -> None:
    saturday_noon = datetime(2026, 12, 5, 12, tzinfo=UTC)

    found = next_local_time(saturday_noon, time(9), zoneinfo.ZoneInfo("Asia/Tokyo"), ["mon"])

    assert found == datetime(2026, 12, 7, 0, tzinfo=UTC)  # Monday 09:00 JST


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day of week"),
        ("*/0 * * * *", "step"),
        ("MON * * * *", "not a number"),
    ],
)
def test_cron_refuses_what_it_cannot_read_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cron(expression)


def test_cron_weekdays_read_0_and_7_as_sunday_and_or_with_the_month_day() -> None:
    cron = parse_cron("0 12 13 * 5")  # the 13th, or any Friday

    assert cron.fires_on(date(2026, 12, 11))  # a Friday
    assert cron.fires_on(date(2026, 12, 13))  # a Sunday, the 13th
    assert not cron.fires_on(date(2026, 12, 12))
    assert parse_cron("0 0 * * 0").days_of_week == parse_cron("0 0 * * 7").days_of_week


def test_cron_fires_in_its_timezone() -> None:
    cron = parse_cron("30 9 * * 1-5")
    friday_evening = datetime(2026, 12, 4, 18, tzinfo=UTC)

    assert cron.next_fire(friday_evening, zoneinfo.ZoneInfo("Europe/Berlin")) == datetime(
        2026, 12, 7, 8, 30, tzinfo=UTC
    )


def test_cron_finds_a_leap_day() -> None:
    found = parse_cron("0 0 29 2 *").next_fire(
        datetime(2026, 3, 1, tzinfo=UTC), zoneinfo.ZoneInfo("UTC")
    )

    assert found == datetime(2028, 2, 29, tzinfo=UTC)


_ZONES = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)
_INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    weekday=st.integers(0, 7),
    after=_INSTANTS,
    zone_name=_ZONES,
)
def test_cron_next_fire_is_the_first_matching_minute_after(
    minute: int, hour: int, weekday: int, after: datetime, zone_name: str
) -> None:
    zone = zoneinfo.ZoneInfo(zone_name)
    cron = parse_cron(f"{minute} {hour} * * {weekday}")

    fire = cron.next_fire(after, zone)

    assert fire is not None
    assert after < fire <= after + timedelta(days=8)
    local = fire.astimezone(zone)
    assert cron.fires_on(local.date())
    # On the wall clock it is the cron's minute, unless a DST jump moved it later.
    if local.utcoffset() == (fire - timedelta(hours=3)).astimezone(zone).utcoffset():
        assert (local.hour, local.minute) == (hour, minute)
    # Nothing earlier fired: the run one minute before the firing finds the same firing.
    assert cron.next_fire(max(after, fire - timedelta(minutes=1)), zone) == fire


def test_a_workflow_round_trips_through_its_own_json() -> None:
    payload = {
        "nodes": [node(f"n-{i}", kind) for i, kind in enumerate(sorted(EXAMPLES))],
        "edges": [],
    }
    triggers_only = {
        "nodes": [n for n in payload["nodes"] if n["kind"].startswith("trigger.")],
        "edges": [],
    }

    workflow = load_workflow(triggers_only)

    again = load_workflow(workflow.model_dump(mode="json", exclude_none=True))
    assert again == workflow
    assert isinstance(again, Workflow)


def test_a_workflow_holds_at_most_400_edges() -> None:
    many = [edge("start", "start")] * 401

    assert fields({"nodes": [TRIGGER], "edges": many}) == ["workflow.edges"]


_LINEAR_KINDS = [
    "send",
    "set_field",
    "add_tag",
    "remove_tag",
    "update_score",
    "webhook",
    "notify_inbox",
    "delay",
    "wait_until",
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_LINEAR_KINDS), min_size=1, max_size=30), st.booleans())
def test_any_chain_from_a_trigger_is_sound_and_closing_it_needs_a_wait(
    kinds: list[str], closed: bool
) -> None:
    nodes = [TRIGGER] + [node(f"n{i}", kind) for i, kind in enumerate(kinds)]
    edges = [edge("start", "n0")] + [edge(f"n{i}", f"n{i + 1}") for i in range(len(kinds) - 1)]
    if closed:
        edges.append(edge(f"n{len(kinds) - 1}", "n0"))
    has_wait = any(kind in ("delay", "wait_until") for kind in kinds)

    if closed and not has_wait:
        assert fields({"nodes": nodes, "edges": edges}) == ["workflow.nodes.1"]
    else:
        workflow = load_workflow({"nodes": nodes, "edges": edges})
        assert workflow.next_node("start") == "n0"
