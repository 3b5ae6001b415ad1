"""Segments: a saved rule tree over contacts, and the one evaluator that decides membership.

A segment is a group ``{condition: AND|OR, rules: [...]}`` whose rules are either
``{field, operator, value}`` or further groups. Everything that needs to know whether a
contact is in a segment (preview, campaign audiences, triggers) goes through
``compile_tree``: the tree is turned ONCE into nested closures, so evaluating it over a
hundred thousand contacts costs a few attribute reads and comparisons per rule, with no
parsing, dispatch on strings or date arithmetic in the loop.

Validation happens when the tree is built (pydantic), so a saved segment can never hold an
unknown field, an operator that does not suit its field, or a value of the wrong type; the
error names the rule, e.g. ``rules.1.operator``. Evaluation, on the other hand, never
raises: a contact whose data has an unexpected type simply does not match. The rule
language is documented with examples in docs/segments.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter, ge, gt, le, lt
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from chalicelib.domain.contacts import Contact
from chalicelib.domain.model import Model

Operator = Literal[
    "eq",
    "neq",
    "contains",
    "starts_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "exists",
    "not_exists",
    "before",
    "after",
]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
Condition = Literal["AND", "OR"]

# What a field holds decides which operators make sense on it.
Kind = Literal["text", "number", "datetime", "set", "any", "event", "count"]

MAX_DEPTH = 5  # levels of groups, the root included
MAX_RULES = 100  # leaf rules in a whole tree
MAX_VALUES = 500  # entries of an in / not_in list
MAX_FIELD_LENGTH = 300

CONTACT_FIELDS: dict[str, Kind] = {
    "id": "text",
    "email": "text",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "timezone": "text",
    "locale": "text",
    "status": "text",
    "lead_score": "number",
    "created_at": "datetime",
    "updated_at": "datetime",
    "email_consent_at": "datetime",
    "sms_consent_at": "datetime",
    "unsubscribed_at": "datetime",
    "tags": "set",
    "lists": "set",
}
EVENT_PROPERTIES: dict[str, Kind] = {
    "count": "count",
    "first_at": "datetime",
    "last_at": "datetime",
}

_NEGATIVE: dict[Operator, Operator] = {"neq": "eq", "not_in": "in", "not_exists": "exists"}
_COMPARE: dict[Operator, Callable[[Any, Any], bool]] = {
    "gt": gt,
    "gte": ge,
    "lt": lt,
    "lte": le,
    "before": lt,
    "after": gt,
}


def _ops(*names: Operator) -> frozenset[Operator]:
    return frozenset(names)


_EQUALITY = _ops("eq", "neq", "in", "not_in")
_ORDERING = _ops("gt", "gte", "lt", "lte")
_PRESENCE = _ops("exists", "not_exists")
OPERATORS_BY_KIND: dict[Kind, frozenset[Operator]] = {
    "text": _EQUALITY | _PRESENCE | _ops("contains", "starts_with"),
    "number": _EQUALITY | _ORDERING | _PRESENCE,
    "datetime": _PRESENCE | _ops("before", "after"),
    "set": _EQUALITY | _PRESENCE | _ops("contains"),
    "any": frozenset(OPERATORS),
    "event": _PRESENCE,
    "count": _EQUALITY | _ORDERING,
}

_RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<amount>\d{1,5})(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Predicate = Callable[[Contact], bool]
Reader = Callable[[Contact], Any]


# -- fields ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldRef:
    """A parsed field path: what it holds and how to read it from a contact."""

    kind: Kind
    read: Reader


def parse_field(path: str) -> FieldRef:
    """Resolve a field path; raises ValueError naming what is wrong with it."""
    if path in CONTACT_FIELDS:
        return FieldRef(CONTACT_FIELDS[path], attrgetter(path))
    head, _, rest = path.partition(".")
    if head == "attributes" and rest:
        keys = rest.split(".")
        if not all(keys):
            raise ValueError("attribute names must not be empty")
        return FieldRef("any", _attribute_reader(tuple(keys)))
    if head == "events" and rest:
        return _event_field(rest)
    known = ", ".join(CONTACT_FIELDS)
    raise ValueError(
        f"unknown field '{path}': use one of {known}, attributes.<name>, "
        "events.<name> or events.<name>.count|first_at|last_at"
    )


def _attribute_reader(keys: tuple[str, ...]) -> Reader:
    """Walk nested attribute maps; a missing key or a non-map on the way reads as None."""
    if len(keys) == 1:
        (key,) = keys
        return lambda contact: contact.attributes.get(key)

    def read(contact: Contact) -> Any:
        value: Any = contact.attributes
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return read


def _event_field(rest: str) -> FieldRef:
    """``events.<name>`` (did it happen?) or ``events.<name>.count|first_at|last_at``.

    Event names may contain dots (``contact.saved``), so only a LAST segment that is one of
    the summary properties is read as a property.
    """
    name, _, prop = rest.rpartition(".")
    if name and prop in EVENT_PROPERTIES:
        if prop == "count":
            return FieldRef("count", lambda c: s.count if (s := c.events.get(name)) else 0)
        getter = attrgetter(prop)
        return FieldRef("datetime", lambda c: getter(s) if (s := c.events.get(name)) else None)
    return FieldRef("event", lambda c: s.count if (s := c.events.get(rest)) else 0)


# -- values ---------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int, float))


def parse_date(value: str, now: datetime) -> datetime:
    """An ISO 8601 date or datetime (naive means UTC), ``now``, or relative like ``-7d``."""
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        delta = timedelta(**{_UNITS[relative["unit"]]: int(relative["amount"])})
        return now + delta if relative["sign"] == "+" else now - delta
    return _aware(datetime.fromisoformat(text))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _as_datetime(value: Any) -> datetime | None:
    """A contact's date as an aware datetime, or None when it is absent or unreadable."""
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def _check_value(kind: Kind, operator: Operator, value: Any) -> None:
    """Raise PydanticCustomError when ``value`` does not suit ``operator`` on a ``kind`` field."""
    if operator in _PRESENCE:
        if value is not None:
            raise _value_error(f"{operator} takes no value")
    elif operator in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
            raise _value_error(f"{operator} needs a list of 1 to {MAX_VALUES} values")
        for item in value:
            _check_scalar(kind, operator, item)
    elif operator in _ORDERING:
        if not _is_number(value):
            raise _value_error(f"{operator} needs a number")
    elif operator in ("before", "after"):
        _check_date(operator, value)
    elif operator == "starts_with" or (operator == "contains" and kind == "text"):
        if not isinstance(value, str) or not value:
            raise _value_error(f"{operator} needs a non-empty string")
    else:  # eq, neq, contains on sets and attributes
        _check_scalar(kind, operator, value)


def _check_date(operator: Operator, value: Any) -> None:
    if not isinstance(value, str):
        raise _value_error(f"{operator} needs a date: ISO 8601, 'now' or relative like '-7d'")
    try:
        parse_date(value, datetime.now(UTC))
    except ValueError as error:
        raise _value_error(f"'{value}' is not a date: {error}") from None


def _check_scalar(kind: Kind, operator: Operator, value: Any) -> None:
    if kind in ("text", "set") and not isinstance(value, str):
        raise _value_error(f"{operator} on this field needs text")
    if kind in ("number", "count") and not _is_number(value):
        raise _value_error(f"{operator} on this field needs a number")
    if kind == "any" and not _is_scalar(value):
        raise _value_error(f"{operator} needs a string, number or boolean")


def _value_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("segment_value", message)


# -- the tree -------------------------------------------------------------------------
class Rule(Model):
    """One test on one field of a contact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, max_length=MAX_FIELD_LENGTH)
    operator: Operator
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, path: str) -> str:
        try:
            parse_field(path)
        except ValueError as error:
            raise PydanticCustomError("segment_field", str(error)) from None
        return path

    @field_validator("operator")
    @classmethod
    def _operator_suits_field(cls, operator: Operator, info: ValidationInfo) -> Operator:
        path = info.data.get("field")
        if path is None:  # the field itself was refused; that error is enough
            return operator
        kind = parse_field(path).kind
        if operator not in OPERATORS_BY_KIND[kind]:
            allowed = ", ".join(sorted(OPERATORS_BY_KIND[kind]))
            raise PydanticCustomError(
                "segment_operator", f"'{operator}' does not apply to {path}; use {allowed}"
            )
        return operator

    @field_validator("value")
    @classmethod
    def _value_suits_operator(cls, value: Any, info: ValidationInfo) -> Any:
        path, operator = info.data.get("field"), info.data.get("operator")
        if path is not None and operator is not None:
            _check_value(parse_field(path).kind, operator, value)
        return value


def _node(data: Any) -> Any:
    """A group has ``rules``; anything else is a rule. Keeps error paths free of union tags."""
    if isinstance(data, (Rule, SegmentGroup)):
        return data
    if isinstance(data, dict) and "rules" in data:
        return SegmentGroup.model_validate(data)
    return Rule.model_validate(data)


def _validate_nodes(value: Any) -> Any:
    return _validate_each(value) if isinstance(value, list) else value


Rules = Annotated[
    list["Rule | SegmentGroup"], BeforeValidator(_validate_nodes), Field(min_length=1)
]


class SegmentGroup(Model):
    """Rules joined by AND or OR; groups nest up to MAX_DEPTH levels, MAX_RULES rules in all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    condition: Condition = "AND"
    rules: Rules

    @model_validator(mode="after")
    def _within_limits(self) -> SegmentGroup:
        too_deep = _path_beyond_depth(self, 1)
        if too_deep is not None:
            raise _located_error(too_deep, f"groups nest at most {MAX_DEPTH} levels deep")
        if count_rules(self) > MAX_RULES:
            raise _located_error(("rules",), f"a segment holds at most {MAX_RULES} rules")
        return self


class Segment(Model):
    """A saved segment: a name and a rule tree (validated when it was saved)."""

    id: str
    number: int = Field(description="The segment's small integer id (seed-003 API).")
    name: str
    description: str = ""
    condition: Condition
    rules: Rules
    created_at: datetime
    updated_at: datetime

    @property
    def tree(self) -> SegmentGroup:
        return SegmentGroup(condition=self.condition, rules=self.rules)


def _validate_each(items: list[Any]) -> list[Any]:
    """Validate every node, collecting all errors with their index in the list."""
    nodes: list[Any] = []
    problems: list[InitErrorDetails] = []
    for index, item in enumerate(items):
        try:
            nodes.append(_node(item))
        except ValidationError as error:
            for problem in error.errors():
                problems.append(
                    {
                        "type": PydanticCustomError(problem["type"], problem["msg"]),
                        "loc": (index, *problem["loc"]),
                        "input": problem.get("input"),
                    }
                )
    if problems:
        raise ValidationError.from_exception_data("SegmentGroup", problems)
    return nodes


def _located_error(loc: tuple[int | str, ...], message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "SegmentGroup",
        [{"type": PydanticCustomError("segment_limit", message), "loc": loc, "input": None}],
    )


def _path_beyond_depth(group: SegmentGroup, level: int) -> tuple[int | str, ...] | None:
    """The location of the first group nested deeper than MAX_DEPTH, relative to ``group``."""
    for index, node in enumerate(group.rules):
        if isinstance(node, SegmentGroup):
            if level + 1 > MAX_DEPTH:
                return ("rules", index)
            deeper = _path_beyond_depth(node, level + 1)
            if deeper is not None:
                return ("rules", index, *deeper)
    return None


def count_rules(group: SegmentGroup) -> int:
    return sum(count_rules(n) if isinstance(n, SegmentGroup) else 1 for n in group.rules)


# -- evaluation -----------------------------------------------------------------------
def matches(tree: SegmentGroup, contact: Contact, now: datetime) -> bool:
    """Whether ``contact`` is in the segment ``tree`` at ``now`` (for one-off checks)."""
    return compile_tree(tree, now)(contact)


def compile_tree(tree: SegmentGroup, now: datetime) -> Predicate:
    """Turn ``tree`` into one predicate; relative dates are fixed against ``now`` here."""
    parts = [
        compile_tree(node, now) if isinstance(node, SegmentGroup) else compile_rule(node, now)
        for node in tree.rules
    ]
    return any_of(parts) if tree.condition == "OR" else all_of(parts)


def all_of(parts: Sequence[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def every(contact: Contact) -> bool:
        return all(part(contact) for part in parts)

    return every


def any_of(parts: Sequence[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def some(contact: Contact) -> bool:
        return any(part(contact) for part in parts)

    return some


def compile_rule(rule: Rule, now: datetime) -> Predicate:
    field = parse_field(rule.field)
    read = field.read
    positive = _NEGATIVE.get(rule.operator)
    test = _test(field.kind, positive or rule.operator, rule.value, now)
    if positive is not None:
        return lambda contact: not test(read(contact))
    return lambda contact: test(read(contact))


def _test(kind: Kind, operator: Operator, value: Any, now: datetime) -> Callable[[Any], bool]:
    """A test on the value a field reads as; negative operators are built on these."""
    if kind == "set":
        return _set_test(operator, value)
    if operator == "exists":
        if kind == "event":  # the field reads as the event's count
            return lambda v: v > 0
        return lambda v: v is not None and v != ""
    if operator in ("before", "after"):
        target = parse_date(value, now)
        compare = _COMPARE[operator]
        return lambda v: (moment := _as_datetime(v)) is not None and compare(moment, target)
    if operator in ("gt", "gte", "lt", "lte"):
        compare = _COMPARE[operator]
        return lambda v: _is_number(v) and compare(v, value)
    key = _scalar_key
    if operator == "eq":
        wanted = key(value)
        return lambda v: key(v) == wanted
    if operator == "in":
        wanted_any = frozenset(key(item) for item in value)
        return lambda v: (
            any(key(i) in wanted_any for i in v) if isinstance(v, list) else key(v) in wanted_any
        )
    if operator == "contains":
        return _contains_test(value)
    if operator == "starts_with":
        prefix = value.casefold()
        return lambda v: isinstance(v, str) and v.casefold().startswith(prefix)
    raise AssertionError(f"no test for {operator} on {kind}")  # validation prevents this


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    """A comparable form: text case-folded, booleans never equal to numbers, others None."""
    if isinstance(value, str):
        return ("s", value.casefold())
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    return None


def _contains_test(value: Any) -> Callable[[Any], bool]:
    """Text contains a substring; a list attribute contains an element."""
    wanted = _scalar_key(value)
    needle = value.casefold() if isinstance(value, str) else None

    def contains(v: Any) -> bool:
        if isinstance(v, str):
            return needle is not None and needle in v.casefold()
        if isinstance(v, list):
            return any(_scalar_key(item) == wanted for item in v)
        return False

    return contains


def _set_test(operator: Operator, value: Any) -> Callable[[Any], bool]:
    """Tags and lists, compared exactly: eq/contains = has it, in = has any of, exists = any."""
    if operator == "exists":
        return bool
    wanted = frozenset(value if isinstance(value, list) else [value])
    return lambda v: isinstance(v, list) and not wanted.isdisjoint(v)
