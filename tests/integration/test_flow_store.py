"""Flow enrolments against moto: the step claim, the trace, the due index, the cap counters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.domain.campaigns import FrequencyCap
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason, zone_for
from chalicelib.domain.flows.entry import enrol
from chalicelib.domain.flows.graph import FlowSettings, Workflow, load_workflow
from chalicelib.domain.flows.policy import Allow, SendPolicy, Skip, decide_send, hour_bucket
from chalicelib.domain.flows.step import (
    Enrolment,
    ExitReason,
    Step,
    StepContext,
    TriggerEvent,
    take_step,
)
from chalicelib.domain.flows.timers import FileDue, due_partition, due_shard, minute_bucket, route
from chalicelib.domain.tenants import new_tenant_id
from chalicelib.resources import TableSpec
from chalicelib.store import enrolments
from chalicelib.store.table import system_table, tenant_table

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)
CONTACT = Contact(id="c_1", email="ada@example.com", created_at=NOW, updated_at=NOW)
FLOW: Workflow = load_workflow(
    {
        "nodes": [
            {"id": "start", "kind": "trigger.manual"},
            {"id": "tag", "kind": "add_tag", "config": {"tag": "x"}},
            {"id": "wait", "kind": "delay", "config": {"amount": 2, "unit": "days"}},
            {"id": "done", "kind": "exit"},
        ],
        "edges": [
            {"source": "start", "target": "tag"},
            {"source": "tag", "target": "wait"},
            {"source": "wait", "target": "done"},
        ],
    }
)


def step_at(enrolment: Enrolment, now: datetime = NOW) -> Step:
    return take_step(FLOW, FlowSettings(), enrolment, StepContext(now=now, contact=CONTACT))


def test_an_enrolment_is_written_once_per_contact_and_flow(aws: None) -> None:
    tenant = new_tenant_id()
    first = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW)

    assert enrolments.start(tenant, first, previous=None)
    assert not enrolments.start(tenant, first, previous=None)
    assert enrolments.read(tenant, "cmp_1", "c_1") == first
    assert enrolments.read(new_tenant_id(), "cmp_1", "c_1") is None


def test_an_enrolment_keeps_the_event_that_enrolled_it(aws: None) -> None:
    tenant = new_tenant_id()
    event = TriggerEvent("evt_1", "order.placed", NOW, {"order_id": "A-17", "items": [1, 2.5]})
    enrolment = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW, event)

    enrolments.start(tenant, enrolment, previous=None)

    assert enrolments.read(tenant, "cmp_1", "c_1") == enrolment


def test_an_exited_enrolment_is_replaced_only_by_the_writer_that_read_it(aws: None) -> None:
    tenant = new_tenant_id()
    old = replace(
        enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW), visit=5, exit_reason=ExitReason.GOAL
    )
    enrolments.start(tenant, old, previous=None)
    again = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW + timedelta(days=1))

    assert enrolments.start(tenant, again, previous=old)
    assert not enrolments.start(tenant, again, previous=old)  # a racing second re-entry


def test_a_step_is_claimed_once_and_a_duplicate_delivery_changes_nothing(aws: None) -> None:
    tenant = new_tenant_id()
    enrolment = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW)
    enrolments.start(tenant, enrolment, previous=None)
    entered = step_at(enrolment)

    assert enrolments.commit_step(tenant, entered, NOW)
    assert not enrolments.commit_step(tenant, entered, NOW)  # redelivered
    tagged = step_at(entered.enrolment)
    assert enrolments.commit_step(tenant, tagged, NOW)
    assert not enrolments.commit_step(tenant, step_at(entered.enrolment), NOW)  # stale copy

    stored = enrolments.read(tenant, "cmp_1", "c_1")
    assert stored == tagged.enrolment
    assert [(t.node_id, t.outcome) for t in enrolments.read_trace(tenant, "cmp_1", "c_1")] == [
        ("start", "entered"),
        ("tag", "performed"),
    ]


def test_the_trace_keeps_waits_exits_and_their_times(aws: None) -> None:
    tenant = new_tenant_id()
    enrolment = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW)
    enrolments.start(tenant, enrolment, previous=None)
    for _ in range(3):  # enter, tag, start waiting
        done = step_at(enrolment)
        assert enrolments.commit_step(tenant, done, NOW)
        enrolment = done.enrolment
    woken_at = NOW + timedelta(days=2)
    for _ in range(2):  # resume, exit
        done = step_at(enrolment, woken_at)
        assert enrolments.commit_step(tenant, done, woken_at)
        enrolment = done.enrolment

    trace = enrolments.read_trace(tenant, "cmp_1", "c_1")

    assert [(t.node_id, t.outcome) for t in trace] == [
        ("start", "entered"),
        ("tag", "performed"),
        ("wait", "waiting"),
        ("wait", "resumed"),
        ("done", "exited"),
    ]
    assert trace[2].until == NOW + timedelta(days=2)
    assert trace[4].reason == "exit_node"
    assert enrolments.read(tenant, "cmp_1", "c_1").exit_reason is ExitReason.EXIT_NODE  # type: ignore[union-attr]


def test_a_long_wait_is_filed_under_its_minute_and_shard_and_swept_from_there(aws: None) -> None:
    tenant = new_tenant_id()
    waiting = replace(
        enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW),
        node_id="wait",
        visit=2,
        wake_at=NOW + timedelta(days=2),
    )
    due = route(NOW, waiting.wake_at, "cmp_1#c_1")  # type: ignore[arg-type]
    assert isinstance(due, FileDue)

    enrolments.file_due(tenant, waiting, due)
    enrolments.file_due(tenant, waiting, due)  # a retried step files the same entry

    (entry,) = enrolments.due_entries(due)
    assert (entry.tenant_id, entry.campaign_id, entry.contact_id, entry.visit) == (
        tenant,
        "cmp_1",
        "c_1",
        2,
    )
    assert entry.wake_at == NOW + timedelta(days=2)
    # The entry holds its wake time and expiry; its key names the rest (a read is billed
    # by the size of what it reads, and the sweep reads thousands a minute).
    (stored,) = system_table().query_all(due_partition(due))
    assert set(stored) == {"wake_at", TableSpec.ttl_attribute}
    other_minute = FileDue(minute_bucket(NOW), due_shard("cmp_1#c_1"))
    assert list(enrolments.due_entries(other_minute)) == []


def test_cap_counts_are_checked_and_added_atomically(aws: None) -> None:
    tenant = new_tenant_id()
    policy = SendPolicy(tenant_cap=FrequencyCap(max_messages=1))
    zone = zone_for(None)

    def try_send(campaign: str, read_as: enrolments.CapCounts) -> object:
        decision = decide_send(
            policy,
            now=NOW,
            due_at=NOW,
            zone=zone,
            tenant_counts=read_as.tenant,
            campaign_counts=read_as.campaign,
        )
        if isinstance(decision, Allow) and not enrolments.count_send(
            tenant, "c_1", campaign, read_as=read_as, bucket=decision.bucket, now=NOW
        ):
            return "lost the race"
        return decision

    # Two campaigns read the same empty counts in the same second: only one may send.
    first_read = enrolments.cap_counts(tenant, "c_1", "cmp_a")
    second_read = enrolments.cap_counts(tenant, "c_1", "cmp_b")
    assert try_send("cmp_a", first_read) == Allow(hour_bucket(NOW))
    assert try_send("cmp_b", second_read) == "lost the race"
    reread = enrolments.cap_counts(tenant, "c_1", "cmp_b")
    assert try_send("cmp_b", reread) == Skip(SkipReason.FREQUENCY_CAP)

    counts = enrolments.cap_counts(tenant, "c_1", "cmp_a")
    assert counts.tenant == {hour_bucket(NOW): 1}
    assert counts.campaign == {hour_bucket(NOW): 1}
    assert enrolments.cap_counts(tenant, "c_1", "cmp_b").campaign == {}


def test_counting_a_message_prunes_buckets_no_cap_reads_any_more(aws: None) -> None:
    tenant = new_tenant_id()
    long_ago = NOW - timedelta(days=40)
    enrolments.count_send(
        tenant,
        "c_1",
        "cmp_a",
        read_as=enrolments.cap_counts(tenant, "c_1", "cmp_a"),
        bucket=hour_bucket(long_ago),
        now=long_ago,
    )

    enrolments.count_send(
        tenant,
        "c_1",
        "cmp_a",
        read_as=enrolments.cap_counts(tenant, "c_1", "cmp_a"),
        bucket=hour_bucket(NOW),
        now=NOW,
    )

    assert enrolments.cap_counts(tenant, "c_1", "cmp_a").all_buckets == {
        f"t#{hour_bucket(NOW)}": 1,
        f"c#cmp_a#{hour_bucket(NOW)}": 1,
    }


def test_steps_taken_in_a_row_are_claimed_at_once_with_one_trace_item(aws: None) -> None:
    tenant = new_tenant_id()
    enrolment = enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW)
    enrolments.start(tenant, enrolment, previous=None)
    entered = step_at(enrolment)
    tagged = step_at(entered.enrolment)
    waiting = step_at(tagged.enrolment)

    assert enrolments.commit_steps(tenant, [entered, tagged, waiting], NOW)
    assert not enrolments.commit_steps(tenant, [entered, tagged, waiting], NOW)  # redelivered
    assert not enrolments.commit_step(tenant, tagged, NOW)  # a step of the claimed run

    assert enrolments.read(tenant, "cmp_1", "c_1") == waiting.enrolment
    trace = enrolments.read_trace(tenant, "cmp_1", "c_1")
    assert [(t.node_id, t.visit, t.outcome) for t in trace] == [
        ("start", 0, "entered"),
        ("tag", 1, "performed"),
        ("wait", 2, "waiting"),
    ]
    assert trace[2].until == NOW + timedelta(days=2)
    [item] = tenant_table(tenant).query_all("TRACE#cmp_1#c_1")  # one item for the three
    assert (item["visit"], len(item["entries"])) == (0, 3)


def test_a_trace_item_of_one_entry_each_is_read_too(aws: None) -> None:
    """Trace items written before claims held several steps: one entry per item."""
    tenant = new_tenant_id()
    entered = step_at(enrol("cmp_1", "c_1", FLOW.by_id["start"], NOW))
    tagged = step_at(entered.enrolment)
    enrolments.start(tenant, tagged.enrolment, previous=None)  # on "wait", visit 2
    for visit, (node, outcome) in enumerate((("start", "entered"), ("tag", "performed"))):
        old = {"node_id": node, "visit": visit, "at": NOW.isoformat(), "outcome": outcome, "n": 0}
        tenant_table(tenant).put("TRACE#cmp_1#c_1", f"{visit:010d}#0", old)
    assert enrolments.commit_step(tenant, step_at(tagged.enrolment), NOW)

    trace = enrolments.read_trace(tenant, "cmp_1", "c_1")

    assert [(t.node_id, t.visit, t.outcome) for t in trace] == [
        ("start", 0, "entered"),
        ("tag", 1, "performed"),
        ("wait", 2, "waiting"),
    ]
    enrolments.index_contacts(tenant, "cmp_1", ["c_1"])
    enrolments.purge_contact(tenant, "c_1")
    assert enrolments.read_trace(tenant, "cmp_1", "c_1") == []
