"""The segment rule language: validation at save time, and the one evaluator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.domain.contacts import Contact, EventSummary
from chalicelib.domain.segments import (
    MAX_DEPTH,
    MAX_RULES,
    OPERATORS,
    OPERATORS_BY_KIND,
    Rule,
    SegmentGroup,
    compile_tree,
    matches,
    parse_field,
)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def contact(**fields: Any) -> Contact:
    values: dict[str, Any] = {
        "id": "c_" + "a" * 32,
        "email": "ann@example.com",
        "first_name": "Ann",
        "status": "subscribed",
        "lead_score": 40,
        "tags": ["vip", "beta"],
        "lists": ["list-1"],
        "attributes": {"plan": {"tier": "Gold"}, "seats": 12, "trial": True, "skus": ["a", 7]},
        "events": {
            "purchase": EventSummary(
                count=3, first_at=NOW - timedelta(days=30), last_at=NOW - timedelta(days=2)
            ),
            "contact.saved": EventSummary(count=1, first_at=NOW, last_at=NOW),
        },
        "created_at": NOW - timedelta(days=100),
        "updated_at": NOW,
    }
    values.update(fields)
    return Contact(**values)


def rule(field: str, operator: str, value: Any = None) -> SegmentGroup:
    return SegmentGroup.model_validate(
        {"rules": [{"field": field, "operator": operator, "value": value}]}
    )


ANN = contact()

# (field, operator, value, expected for ANN)
CASES: list[tuple[str, str, Any, bool]] = [
    # text: case-insensitive
    ("email", "eq", "ANN@example.com", True),
    ("email", "neq", "bob@example.com", True),
    ("email", "contains", "EXAMPLE", True),
    ("email", "starts_with", "ann@", True),
    ("email", "starts_with", "bob", False),
    ("first_name", "in", ["bob", "ANN"], True),
    ("first_name", "not_in", ["bob"], True),
    ("status", "eq", "unsubscribed", False),
    ("email", "exists", None, True),
    ("phone", "exists", None, False),
    ("phone", "not_exists", None, True),
    # numbers
    ("lead_score", "eq", 40, True),
    ("lead_score", "neq", 40, False),
    ("lead_score", "gt", 39.5, True),
    ("lead_score", "gte", 40, True),
    ("lead_score", "lt", 40, False),
    ("lead_score", "lte", 40, True),
    ("lead_score", "in", [1, 40], True),
    ("lead_score", "not_in", [1, 40], False),
    # dates
    ("created_at", "before", "2025-03-08", True),
    ("created_at", "after", "2025-03-08T00:00:00Z", False),
    ("created_at", "before", "-99d", True),
    ("created_at", "after", "-101d", True),
    ("created_at", "after", "-4w", False),
    ("updated_at", "before", "+1h", True),
    ("updated_at", "after", "now", False),
    ("unsubscribed_at", "exists", None, False),
    ("unsubscribed_at", "not_exists", None, True),
    # tags and lists: exact
    ("tags", "contains", "vip", True),
    ("tags", "eq", "VIP", False),
    ("tags", "neq", "vip", False),
    ("tags", "in", ["x", "beta"], True),
    ("tags", "not_in", ["x", "y"], True),
    ("tags", "exists", None, True),
    ("lists", "eq", "list-1", True),
    ("lists", "in", ["list-2"], False),
    ("lists", "not_in", ["list-2"], True),
    ("lists", "not_exists", None, False),
    # attributes: nested, dynamic types
    ("attributes.plan.tier", "eq", "gold", True),
    ("attributes.plan.tier", "starts_with", "GO", True),
    ("attributes.plan.tier", "contains", "ol", True),
    ("attributes.plan.tier", "in", ["silver", "GOLD"], True),
    ("attributes.plan", "exists", None, True),
    ("attributes.plan.missing.deeper", "not_exists", None, True),
    ("attributes.seats", "gt", 10, True),
    ("attributes.seats", "lte", 11, False),
    ("attributes.seats", "eq", 12.0, True),
    ("attributes.trial", "eq", True, True),
    ("attributes.trial", "eq", 1, False),  # a boolean is never a number
    ("attributes.seats", "eq", True, False),
    ("attributes.skus", "contains", 7, True),
    ("attributes.skus", "contains", "A", True),
    ("attributes.skus", "in", ["z", "a"], True),
    ("attributes.skus", "not_in", ["z"], True),
    # past events
    ("events.purchase", "exists", None, True),
    ("events.refund", "exists", None, False),
    ("events.refund", "not_exists", None, True),
    ("events.purchase.count", "gte", 3, True),
    ("events.purchase.count", "gt", 3, False),
    ("events.refund.count", "eq", 0, True),
    ("events.purchase.last_at", "after", "-7d", True),
    ("events.purchase.first_at", "after", "-7d", False),
    ("events.refund.last_at", "not_exists", None, True),
    ("events.contact.saved.count", "eq", 1, True),
    ("events.contact.saved", "exists", None, True),
]


@pytest.mark.parametrize(("field", "operator", "value", "expected"), CASES)
def test_each_operator_decides_as_documented(field, operator, value, expected):
    assert matches(rule(field, operator, value), ANN, NOW) is expected


def test_every_operator_is_exercised_by_the_table():
    assert {case[1] for case in CASES} == set(OPERATORS)


def test_negative_operators_are_the_exact_negation_even_on_missing_fields():
    nobody = contact(phone=None, lead_score=None, attributes={}, tags=[], events={})
    for field, positive, negative, value in [
        ("phone", "eq", "neq", "+4915112345678"),
        ("lead_score", "in", "not_in", [1]),
        ("attributes.x", "exists", "not_exists", None),
        ("tags", "eq", "neq", "vip"),
    ]:
        assert matches(rule(field, positive, value), nobody, NOW) is False
        assert matches(rule(field, negative, value), nobody, NOW) is True


def test_groups_nest_with_and_or():
    tree = SegmentGroup.model_validate(
        {
            "condition": "AND",
            "rules": [
                {"field": "status", "operator": "eq", "value": "subscribed"},
                {
                    "condition": "OR",
                    "rules": [
                        {"field": "tags", "operator": "contains", "value": "nope"},
                        {
                            "condition": "AND",
                            "rules": [
                                {"field": "lead_score", "operator": "gte", "value": 40},
                                {"field": "events.purchase.count", "operator": "gt", "value": 2},
                            ],
                        },
                    ],
                },
            ],
        }
    )
    assert matches(tree, ANN, NOW)
    assert not matches(tree, contact(lead_score=10), NOW)
    assert not matches(tree, contact(status="bounced"), NOW)


def test_relative_dates_are_fixed_when_compiled():
    predicate = compile_tree(rule("events.purchase.last_at", "after", "-3d"), NOW)
    assert predicate(ANN)  # last purchase 2 days before NOW
    later = compile_tree(rule("events.purchase.last_at", "after", "-3d"), NOW + timedelta(days=2))
    assert not later(ANN)


def test_dates_stored_as_attribute_text_compare_as_dates():
    renewal = contact(attributes={"renews": "2025-07-01T00:00:00+02:00", "bad": "soon"})
    assert matches(rule("attributes.renews", "after", "2025-06-30T21:59:00Z"), renewal, NOW)
    assert not matches(rule("attributes.renews", "after", "2025-06-30T22:00:00Z"), renewal, NOW)
    assert not matches(rule("attributes.bad", "before", "+10w"), renewal, NOW)


@pytest.mark.parametrize(
    ("tree", "field", "fragment"),
    [
        (
            {
                "rules": [
                    {"field": "email", "operator": "exists"},
                    {"field": "email", "operator": "is"},
                ]
            },
            "rules.1.operator",
            "Input should be",
        ),
        (
            {"rules": [{"field": "shoe_size", "operator": "eq", "value": 1}]},
            "rules.0.field",
            "unknown field",
        ),
        ({"rules": [{"field": "attributes.a..b", "operator": "exists"}]}, "rules.0.field", "empty"),
        (
            {"rules": [{"field": "tags", "operator": "gt", "value": 1}]},
            "rules.0.operator",
            "does not apply",
        ),
        (
            {"rules": [{"field": "created_at", "operator": "eq", "value": "x"}]},
            "rules.0.operator",
            "does not apply",
        ),
        (
            {"rules": [{"field": "lead_score", "operator": "eq", "value": "40"}]},
            "rules.0.value",
            "number",
        ),
        (
            {"rules": [{"field": "lead_score", "operator": "gt", "value": True}]},
            "rules.0.value",
            "number",
        ),
        (
            {"rules": [{"field": "email", "operator": "in", "value": "a@b.c"}]},
            "rules.0.value",
            "list",
        ),
        ({"rules": [{"field": "email", "operator": "in", "value": []}]}, "rules.0.value", "list"),
        (
            {"rules": [{"field": "email", "operator": "exists", "value": 1}]},
            "rules.0.value",
            "no value",
        ),
        ({"rules": [{"field": "tags", "operator": "eq", "value": 3}]}, "rules.0.value", "text"),
        (
            {"rules": [{"field": "attributes.a", "operator": "eq", "value": {"x": 1}}]},
            "rules.0.value",
            "string",
        ),
        (
            {
                "rules": [
                    {
                        "condition": "OR",
                        "rules": [{"field": "created_at", "operator": "after", "value": "-7y"}],
                    }
                ]
            },
            "rules.0.rules.0.value",
            "not a date",
        ),
        (
            {"condition": "XOR", "rules": [{"field": "email", "operator": "exists"}]},
            "condition",
            "AND",
        ),
        ({"rules": []}, "rules", "at least 1"),
        (
            {"rules": [{"field": "email", "operator": "exists", "not": True}]},
            "rules.0.not",
            "Extra",
        ),
    ],
)
def test_invalid_trees_are_refused_naming_the_rule(tree, field, fragment):
    with pytest.raises(ValidationError) as raised:
        SegmentGroup.model_validate(tree)
    first = raised.value.errors()[0]
    assert ".".join(str(p) for p in first["loc"]) == field
    assert fragment in first["msg"]


def test_depth_and_size_are_limited():
    leaf: dict[str, Any] = {"field": "email", "operator": "exists"}
    tree: dict[str, Any] = {"rules": [leaf]}
    for _ in range(MAX_DEPTH - 1):
        tree = {"rules": [tree]}
    SegmentGroup.model_validate(tree)  # exactly at the limit
    with pytest.raises(ValidationError) as raised:
        SegmentGroup.model_validate({"rules": [tree]})
    assert raised.value.errors()[0]["loc"] == ("rules", 0) * MAX_DEPTH
    SegmentGroup.model_validate({"rules": [leaf] * MAX_RULES})
    with pytest.raises(ValidationError, match="at most"):
        SegmentGroup.model_validate({"rules": [{"rules": [leaf] * 60}, {"rules": [leaf] * 41}]})


# -- evaluation never crashes, whatever the data -----------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
scalars = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(min_size=1, max_size=6)
)


FUZZED_FIELDS = [
    "email",
    "lead_score",
    "created_at",
    "tags",
    "lists",
    "attributes.a",
    "attributes.a.b",
    "events.buy",
    "events.buy.count",
    "events.buy.last_at",
]


@st.composite
def valid_rules(draw: st.DrawFn) -> Rule:
    field = draw(st.sampled_from(FUZZED_FIELDS))
    kind = parse_field(field).kind
    operator = draw(st.sampled_from(sorted(OPERATORS_BY_KIND[kind])))
    listed = operator in ("in", "not_in")
    if operator in ("exists", "not_exists"):
        value: Any = None
    elif operator in ("before", "after"):
        value = draw(st.sampled_from(["-7d", "+2h", "2024-02-29", "2025-01-01T10:00:00+05:30"]))
    elif kind in ("number", "count") or operator in ("gt", "gte", "lt", "lte"):
        number = st.integers(-100, 100) | st.floats(-100, 100)
        value = draw(st.lists(number, min_size=1, max_size=3) if listed else number)
    elif kind in ("text", "set") or operator == "starts_with":
        text = st.text(min_size=1, max_size=5)
        value = draw(st.lists(text, min_size=1, max_size=3) if listed else text)
    else:
        value = draw(st.lists(scalars, min_size=1, max_size=3) if listed else scalars)
    return Rule(field=field, operator=operator, value=value)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(valid_rules(), min_size=1, max_size=4),
    condition=st.sampled_from(["AND", "OR"]),
    attributes=st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2),
    tags=st.lists(st.text(min_size=1, max_size=3), max_size=3),
)
def test_any_valid_tree_evaluates_on_any_contact_without_raising(
    rules, condition, attributes, tags
):
    tree = SegmentGroup(condition=condition, rules=rules)
    subject = contact(attributes=attributes, tags=tags, events={}, lead_score=None)
    outcome = compile_tree(tree, NOW)(subject)
    assert isinstance(outcome, bool)
    per_rule = [matches(SegmentGroup(rules=[r]), subject, NOW) for r in rules]
    assert outcome == (any(per_rule) if condition == "OR" else all(per_rule))
