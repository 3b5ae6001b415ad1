"""The decisions of segment triggers: baseline, entry, exit, and what the sweep must see."""

from __future__ import annotations

from chalicelib.domain.segment_watch import (
    decide,
    is_time_relative,
    move_id,
    needs_new_revision,
    reads_event,
    state,
)
from chalicelib.domain.segments import SegmentGroup


def tree(*rules: dict[str, object]) -> SegmentGroup:
    return SegmentGroup.model_validate({"rules": list(rules)})


def test_a_change_of_side_under_the_same_revision_is_a_move():
    entered = decide(state("r1", False, 2), "r1", True)
    assert (entered.change, entered.moves, entered.new_state) == ("entered", 3, "r1:in:3")
    exited = decide(state("r1", True), "r1", False)
    assert (exited.change, exited.new_state) == ("exited", "r1:out:1")
    same = decide(state("r1", True, 4), "r1", True)
    assert same.change is None and not same.write


def test_no_state_or_an_old_revision_is_the_baseline():
    for stored in (None, state("r0", False, 5), state("r0", True)):
        baseline = decide(stored, "r1", True)
        assert baseline.change is None and baseline.write and baseline.new_state == "r1:in:0"


def test_a_contact_created_by_the_change_was_out():
    assert decide(None, "r1", True, created=True).change == "entered"
    assert decide(None, "r1", False, created=True).change is None
    # created, but already judged once (a redelivery): the stored state decides
    assert decide(state("r1", True, 1), "r1", True, created=True).change is None


def test_move_ids_name_one_move_of_one_contact():
    assert move_id("s", "r", 1, "c") == move_id("s", "r", 1, "c")
    assert (
        len(
            {
                move_id("s", "r", 1, "c"),
                move_id("s", "r", 2, "c"),
                move_id("s", "r", 1, "d"),
                move_id("s", "r2", 1, "c"),
            }
        )
        == 4
    )


def test_new_revision_when_rules_change_or_the_watchers_all_changed():
    assert needs_new_revision("d", {"a"}, stored_digest=None, stored=())
    assert needs_new_revision("d2", {"a"}, stored_digest="d", stored={"a"})
    assert needs_new_revision("d", {"b"}, stored_digest="d", stored={"a"})
    assert not needs_new_revision("d", {"a", "b"}, stored_digest="d", stored={"a"})
    assert not needs_new_revision("d", {"b"}, stored_digest="d", stored={"a", "b"})


def test_time_relative_rules_are_found_at_any_depth():
    relative = {"field": "events.purchase.last_at", "operator": "after", "value": "-30d"}
    fixed = {"field": "created_at", "operator": "before", "value": "2025-01-01"}
    plan = {"field": "attributes.plan", "operator": "eq", "value": "gold"}
    assert is_time_relative(tree(plan, {"condition": "OR", "rules": [plan, relative]}))
    assert is_time_relative(tree({"field": "created_at", "operator": "before", "value": "now"}))
    assert not is_time_relative(tree(plan, fixed))
    assert not is_time_relative(
        tree({"field": "attributes.when", "operator": "eq", "value": "-7d"})
    )


def test_an_event_moves_only_segments_that_read_it():
    counted = tree({"field": "events.order.placed.count", "operator": "gte", "value": 2})
    assert reads_event(counted, "order.placed")
    assert not reads_event(counted, "order")
    assert reads_event(tree({"field": "events.order", "operator": "exists"}), "order")
    assert not reads_event(tree({"field": "attributes.order", "operator": "exists"}), "order")
