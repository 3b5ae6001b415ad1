"""The Jinja environment tenant templates run in: sandboxed, and on a budget.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses private and dunder attributes,
calls of unsafe callables, mutation of lists and dicts, and attribute access through
``str.format``. It does not bound time or memory: ``range(99999)`` nested three deep,
``"x" * 10**10``, ``{% if t in l %}`` over a list of long strings, ``[s] * 300`` printed,
or a macro that doubles a string on every recursion each take a worker down. A template
runs once per recipient, so one hostile (or careless) template would stall a campaign
and the workers it shares with other tenants. Hence, per rendered part:

- **time**: every loop iteration, call, filter, test, operator, comparison, ``in``,
  literal and printed value is charged to a step budget (``MAX_STEPS``) *before* the
  work is done, in proportion to the work: a step per iteration or call, plus one per
  ``_ITEMS_PER_STEP`` items and per ``_CHARS_PER_STEP`` characters it reads, compares or
  makes (sorting costs ``log2(n)`` times that). Each charge also reads a CPU clock
  (injectable through ``Limits``), so work the steps under-price still stops within
  ``MAX_CPU_SECONDS``;
- **memory**: no value a template holds can be longer than ``MAX_TEXT`` characters *once
  turned into text* (a list counts the text of every item it refers to, shared or not),
  nor hold more than ``MAX_ITEMS`` items or an integer wider than ``MAX_INT_BITS``.
  Operations that can make far more than their inputs (``*`` on strings and lists, ``+``,
  ``~``, ``%`` and ``format``, ``join``, padding and format widths, ``replace``,
  ``translate``, ``indent``, ``wordwrap``, ``urlize``, ``batch``/``slice``) are predicted
  and refused *before* they run; anything else is checked as soon as it is made. Since
  every character made is also charged, a part makes at most ``MAX_STEPS *
  _CHARS_PER_STEP`` characters in all;
- ``range`` is capped at ``MAX_RANGE`` items; ``lipsum`` is gone;
- a refused attribute fails at once (stock Jinja renders it as an empty string).

The guards for loops, ``~``, comparisons and literals are spliced into the parsed
template (the compiled code then calls them), which is why templates are compiled
through ``compile_template`` only. Exceeding a limit raises ``LimitExceeded``; the
sandbox's own refusals raise Jinja's ``SecurityError``. docs/content.md has the numbers.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import (
    ChainableUndefined,
    Environment,
    StrictUndefined,
    Template,
    Undefined,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Macro, markup_join, new_context, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

MAX_STEPS = 100_000
MAX_CPU_SECONDS = 0.5
MAX_RANGE = 10_000
MAX_TEXT = 1_000_000
MAX_ITEMS = 100_000
MAX_INT_BITS = 100_000
MAX_WIDTH = 10_000  # a printf/format field width or precision
_CHARS_PER_STEP = 100
_ITEMS_PER_STEP = 2  # walking items in Python costs ~0.4 µs each
_CHARGE_EVERY = 4_096  # items a long measurement walks between two charges
_CLOCK_EVERY = 8  # charges between two readings of the clock (a reading costs ~0.3 µs)
_MACRO_CALL = 4  # steps: a macro call costs Jinja a frame and an output buffer

LimitReason = Literal["too_large", "too_complex"]
_LOOP_GUARD = "herald_loop_guard"
_SIZE_GUARD = "herald_size_guard"
_CONCAT = "herald_concat"
_COMPARE = "herald_compare"
_PRINTF_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)")
_NUMBER = re.compile(r"\d+")


class LimitExceeded(Exception):
    """A render went over one of the sandbox's limits; ``reason`` says which kind."""

    def __init__(self, reason: LimitReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- the budget -------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """A render's budget. ``clock`` is read on every charge: CPU seconds of this thread
    by default (a busy neighbour does not make a template fail); tests inject their own."""

    steps: int = MAX_STEPS
    cpu_seconds: float = MAX_CPU_SECONDS
    clock: Callable[[], float] = time.thread_time


@dataclass
class _Budget:
    limits: Limits
    deadline: float
    steps: int = field(default=0)
    charges: int = field(default=0)


_budget: ContextVar[_Budget | None] = ContextVar("herald_render_budget", default=None)


def charge(steps: int) -> None:
    """Spend ``steps`` of the current render's budget (outside a render: free).

    LimitExceeded("too_complex") once the steps or the CPU time are spent: callers charge
    *before* doing the work they pay for.
    """
    budget = _budget.get()
    if budget is None:
        return
    budget.steps += steps
    if budget.steps > budget.limits.steps:
        raise LimitExceeded(
            "too_complex",
            f"the template does more than {budget.limits.steps} steps of work per message",
        )
    budget.charges += 1
    if budget.charges % _CLOCK_EVERY == 0 and budget.limits.clock() > budget.deadline:
        raise LimitExceeded(
            "too_complex",
            f"the template takes more than {budget.limits.cpu_seconds:g} s of CPU per message",
        )


def _work(items: int, chars: int) -> int:
    return 1 + items // _ITEMS_PER_STEP + chars // _CHARS_PER_STEP


# -- sizes, predicted -------------------------------------------------------------------
def _repr_size(text: str) -> int:
    """At most ``len(repr(text))``: how a string inside a list or dict is printed."""
    return 2 * len(text) + 2 if text.isprintable() else 10 * len(text) + 2


def text_size(value: Any) -> int:
    """An upper bound of ``len(str(value))``, charged as it is measured (items and
    characters visited); LimitExceeded as soon as it passes MAX_TEXT.

    A container counts every item it refers to each time (``[s] * 300`` is 300 times
    ``s`` as text, whatever its memory), which is what printing, joining or comparing it
    costs. Measuring a string is free of walking: its length.
    """
    if isinstance(value, str):
        charge(_work(0, len(value)))
        _expect_at_most(len(value), "a value")
        return len(value)
    total = items = chars = charged = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        items += 1
        if isinstance(item, str):
            total += _repr_size(item)
            chars += len(item)
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)) or _is_view(item):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, Namespace):
            total += 12
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, Undefined):
            pass
        else:  # numbers, dates, macros, loops, cyclers: a short repr
            total += 100
        if total > MAX_TEXT:
            charge(_work(items, chars) - charged)
            raise LimitExceeded("too_large", f"a value of over {MAX_TEXT} characters as text")
        if items % _CHARGE_EVERY == 0:
            charge(_work(items, chars) - charged)
            charged = _work(items, chars)
    charge(_work(items, chars) - charged)
    return total


def _is_view(value: Any) -> bool:
    return type(value).__name__ in ("dict_keys", "dict_values", "dict_items")


def bounded(value: Any) -> Any:
    """``value`` itself, charged for, or LimitExceeded when it is bigger than any template
    should make (see the module docstring)."""
    if isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > MAX_ITEMS:
        raise LimitExceeded("too_large", f"a collection of {len(value)} items is too big")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise LimitExceeded("too_large", "a number is too large")
        charge(1)
        return value
    text_size(value)
    return value


def _expect_at_most(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise LimitExceeded("too_large", f"{what} would make a value of {size} characters")


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise LimitExceeded("too_large", f"{what} width {width} is larger than {MAX_WIDTH}")


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


# -- comparisons: charged for the elements and characters Python will compare ----------
_CONTAINERS = (list, tuple, Mapping)  # compared item by item


def charge_comparison(op: str, left: Any, right: Any) -> None:
    """Charge ``left <op> right`` before it runs: ``in`` over a list compares with every
    item, ``==`` of lists compares item by item, strings character by character."""
    if op not in ("in", "notin"):
        if isinstance(left, str) and isinstance(right, str):
            charge(_work(0, min(len(left), len(right))))
        elif isinstance(left, _CONTAINERS) and isinstance(right, _CONTAINERS):
            _charge_pairs(iter(((left, right),)))
        else:
            charge(1)  # numbers, dates, None: one step
    elif isinstance(right, str):
        charge(_work(0, len(right) + _length(left)))
    elif isinstance(right, (Mapping, set, frozenset)) or _is_view(right):
        text_size(left)  # hashing walks the key
        if _is_view(right):
            _charge_pairs((left, item) for item in right)
    elif isinstance(right, (list, tuple)):
        _charge_pairs((left, item) for item in right)
    else:
        charge(1)


def _charge_pairs(pairs: Iterator[tuple[Any, Any]]) -> None:
    items = chars = charged = 0
    pending: list[Iterator[tuple[Any, Any]]] = [pairs]
    while pending:
        pair = next(pending[-1], None)
        if pair is None:
            pending.pop()
            continue
        left, right = pair
        items += 1
        if left is right:
            pass
        elif isinstance(left, str) and isinstance(right, str):
            chars += min(len(left), len(right))
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            pending.append(zip(left, right, strict=False))
        elif isinstance(left, Mapping) and isinstance(right, Mapping):
            pending.append((v, right[k]) for k, v in left.items() if k in right)
        if items % _CHARGE_EVERY == 0 or chars > _CHARGE_EVERY * _CHARS_PER_STEP:
            charge(_work(items, chars) - charged)
            charged = _work(items, chars)
    charge(_work(items, chars) - charged)


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda item, container: item in container,
    "notin": lambda item, container: item not in container,
}


@pass_context
def _compare(_context: Context, left: Any, op: str, right: Any) -> Any:
    charge_comparison(op, left, right)
    return _COMPARISONS[op](left, right)


# -- pre-checks for the operations that can make far more than their inputs ------------
def _check_printf(template: Any, args: Any = ()) -> None:
    """``%``-formatting: refuse ``*`` and big widths; predict the result from the widths
    and the text of the arguments each spec prints (a ``%r`` may print ten times more)."""
    if not isinstance(template, str):
        return
    predicted = len(template)
    repr_factor = 1
    sizes: dict[str, int] = {}
    for match in _PRINTF_SPEC.finditer(template):
        key, width, precision, conversion = match.groups()
        for part in (width, precision):
            if part == "*":
                raise LimitExceeded("too_large", "computed widths ('*') are not allowed")
            if part is not None:
                _check_width(int(part), "a format")
        predicted += max(int(width or 0), int(precision or 0)) + 24
        if conversion in ("r", "a"):
            repr_factor = 10
        if key is not None and isinstance(args, Mapping) and key in args:
            if key not in sizes:
                sizes[key] = text_size(args[key])
            predicted += 10 * sizes[key] if conversion in ("r", "a") else sizes[key]
        _expect_at_most(predicted, "formatting")
    if not isinstance(args, Mapping):
        values = args if isinstance(args, tuple) else (args,)
        predicted += repr_factor * sum(text_size(value) for value in values)
    _expect_at_most(predicted, "formatting")


def _check_strftime(template: Any) -> None:
    if isinstance(template, str):
        for match in _PRINTF_SPEC.finditer(template):
            for part in match.groups()[1:3]:
                if part == "*" or (part is not None and int(part) > MAX_WIDTH):
                    raise LimitExceeded("too_large", "a date format width is too large")
        _expect_at_most(len(template) * 32, "strftime")


def _check_format(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``str.format``/``format_map``: no computed specs, widths at most MAX_WIDTH, and the
    result (widths plus the text of every field, a field used twice counted twice) fits."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format itself will report the malformed template
    predicted = 0
    automatic = 0
    for literal, name, spec, conversion in fields:
        predicted += len(literal)
        if name is None:
            continue
        if spec and "{" in spec:
            raise LimitExceeded("too_large", "computed format specs are not allowed")
        for number in _NUMBER.findall(spec or ""):
            _check_width(int(number), "a format")
            predicted += int(number)
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base == "":
            base, automatic = str(automatic), automatic + 1
        value = args[int(base)] if base.isdigit() and int(base) < len(args) else kwargs.get(base)
        factor = 10 if conversion in ("r", "a") else 1
        predicted += factor * text_size(value) + 24
        _expect_at_most(predicted, "format")


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    _expect_at_most(len(text) + occurrences * (len(new) - len(old)), "replace")


def _check_join(separator: Any, items: Any) -> None:
    if isinstance(items, Mapping):
        items = list(items)
    if not isinstance(items, (list, tuple)):
        return
    sep = len(separator) if isinstance(separator, str) else 0
    _expect_at_most(sep * max(len(items) - 1, 0), "join")
    total = sep * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else text_size(item)
        _expect_at_most(total, "join")


def _materialized(items: Any) -> Any:
    """A generator's items as a list (at most MAX_ITEMS), so what joins them is predictable."""
    if isinstance(items, (str, Sized)) or not isinstance(items, Iterable):
        return items
    listed = list(itertools.islice(items, MAX_ITEMS + 1))
    if len(listed) > MAX_ITEMS:
        raise LimitExceeded("too_large", f"more than {MAX_ITEMS} items")
    return listed


def _check_pad(_text: Any, width: Any = 0, *_args: Any, **_kwargs: Any) -> None:
    _check_width(width, "a padding")


def _check_indent(text: Any, width: Any = 4, *_args: Any, **_kwargs: Any) -> None:
    if not isinstance(text, str):
        return
    unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _expect_at_most(len(text) + (text.count("\n") + 1) * unit, "indent")


def _check_wordwrap(text: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    """Every line gets the wrapstring: at most one line per character (or per word)."""
    if not isinstance(text, str):
        return
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None)
    lines = len(text) // max(width if isinstance(width, int) else 1, 1) + text.count(" ") + 1
    _expect_at_most(len(text) + lines * (_length(wrapstring) or 1), "wordwrap")


def _check_urlize(text: Any, *args: Any, **kwargs: Any) -> None:
    """A link is at least five characters and becomes a tag with its target and rel."""
    if not isinstance(text, str):
        return
    target = kwargs.get("target", args[2] if len(args) > 2 else None)
    rel = kwargs.get("rel", args[3] if len(args) > 3 else None)
    links = len(text) // 5 + 1
    _expect_at_most(3 * len(text) + links * (60 + _length(target) + _length(rel)), "urlize")


def _check_translate(text: Any, table: Any = None) -> None:
    if not isinstance(text, str):
        return
    values = table.values() if isinstance(table, Mapping) else table
    longest = 1
    if isinstance(values, Iterable) and not isinstance(values, str):
        charge(_work(len(values) if isinstance(values, Sized) else 0, 0))
        longest = max([_length(v) for v in values] + [1])
    _expect_at_most(len(text) * longest, "translate")


def _check_item_count(_value: Any, count: Any = 0, *_args: Any, **_kwargs: Any) -> None:
    if isinstance(count, int) and count > MAX_ITEMS:
        raise LimitExceeded("too_large", f"{count} is more than {MAX_ITEMS} items")


def _check_numeric_start(_value: Any, *args: Any, **kwargs: Any) -> None:
    start = kwargs.get("start", args[1] if len(args) > 1 else 0)
    if not isinstance(start, (int, float)):
        raise LimitExceeded("too_large", "sum adds numbers only")


def _check_json_indent(_value: Any, indent: Any = None) -> None:
    if isinstance(indent, int) and indent > 16:
        raise LimitExceeded("too_large", "tojson indent is at most 16")


def _check_repeat(left: Any, right: Any) -> None:
    """``*`` of a string or list: the size of the result, in characters of text (a
    list's items counted as often as they are repeated), before it is made."""
    for sequence, times in ((left, right), (right, left)):
        if isinstance(times, int) and isinstance(sequence, (str, list, tuple)):
            if not isinstance(sequence, str) and len(sequence) * times > MAX_ITEMS:
                raise LimitExceeded("too_large", "repetition would make too many items")
            _expect_at_most(text_size(sequence) * max(times, 0), "repetition")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, list, tuple)) and isinstance(right, type(left)):
        if not isinstance(left, str) and len(left) + len(right) > MAX_ITEMS:
            raise LimitExceeded("too_large", "adding would make too many items")
        _expect_at_most(text_size(left) + text_size(right), "adding")


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if max(base.bit_length(), 1) * exponent > MAX_INT_BITS:
        raise LimitExceeded("too_large", "a power would make a number too large")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_pad,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "urlize": _check_urlize,
    "replace": lambda text, old, new, count=None: _check_replace(text, old, new, count or -1),
    "join": lambda items, separator="", *_a, **_k: _check_join(separator, items),
    "format": lambda template, *args, **kwargs: _check_printf(template, kwargs or args),
    "batch": _check_item_count,
    "slice": _check_item_count,
    "sum": _check_numeric_start,
    "tojson": _check_json_indent,
}
# Filters that compare their items with each other (n log n) or work character by
# character in Python rather than C: charged that many times their input.
_FILTER_FACTORS: dict[str, int] = {
    "pprint": 15,
    "wordwrap": 40,
    "urlize": 100,
    "striptags": 10,
    "wordcount": 5,
}
_SORTING = frozenset({"sort", "dictsort", "unique", "groupby", "min", "max"})

_STR_METHOD_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_pad,
    "ljust": _check_pad,
    "rjust": _check_pad,
    "zfill": _check_pad,
    "expandtabs": lambda text, size=8: _expect_at_most(
        len(text) + text.count("\t") * (size if isinstance(size, int) else 0), "expandtabs"
    ),
    "replace": _check_replace,
    "join": _check_join,
    "translate": _check_translate,
}


def _charge_input(name: str, value: Any) -> None:
    """A filter reads its input at least once; sorting compares it log2(n) times over."""
    before = _spent()
    text_size(value)
    spent = _spent() - before
    factor = _FILTER_FACTORS.get(name, 1)
    if name in _SORTING and isinstance(value, Sized):
        factor = max(factor, math.ceil(math.log2(len(value) + 1)))
    if factor > 1:
        charge(spent * (factor - 1))


def _spent() -> int:
    budget = _budget.get()
    return budget.steps if budget is not None else 0


def _guard_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` charged for its input, pre-checked where it can explode, result bounded."""
    check = _FILTER_CHECKS.get(name)
    passes_first = getattr(original, "jinja_pass_arg", None) is not None

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        first = 1 if passes_first else 0
        if len(args) > first:
            if name == "join":
                args = (*args[:first], _materialized(args[first]), *args[first + 1 :])
            if check is not None:
                check(*args[first:], **kwargs)
            _charge_input(name, args[first])
        return bounded(original(*args, **kwargs))

    return guarded


_COMPARISON_TESTS = {
    "==": "eq",
    "eq": "eq",
    "equalto": "eq",
    "!=": "ne",
    "ne": "ne",
    ">": "gt",
    "gt": "gt",
    "greaterthan": "gt",
    ">=": "gteq",
    "ge": "gteq",
    "<": "lt",
    "lt": "lt",
    "lessthan": "lt",
    "<=": "lteq",
    "le": "lteq",
    "in": "in",
}


def _guard_test(name: str, original: Any) -> Callable[..., Any]:
    """Tests (``is in``, ``is eq``; also what ``select``/``reject`` call) cost like
    the comparison they make, and a step otherwise."""
    op = _COMPARISON_TESTS.get(name)
    passes_first = getattr(original, "jinja_pass_arg", None) is not None

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        values = args[1:] if passes_first else args
        if op is not None and len(values) == 2:
            charge_comparison(op, values[0], values[1])
        else:
            charge(1)
        return original(*args, **kwargs)

    return guarded


# -- guards spliced into the template ---------------------------------------------------
def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded("too_large", f"range() is limited to {MAX_RANGE} items")
    return numbers


@pass_context
def _loop_guard(_context: Context, iterable: Any, per_iteration: int = 1) -> Any:
    """Charge a for-loop's iterations before it starts (or as it goes, for iterators);
    ``per_iteration`` includes the fixed text the loop body writes each time."""
    if isinstance(iterable, Sized):
        charge(len(iterable) * per_iteration)
        return iterable
    return _counted(iterable, per_iteration)


def _counted(iterable: Iterable[Any], per_iteration: int) -> Iterator[Any]:
    for item in iterable:
        charge(per_iteration)
        yield item


@pass_context
def _size_guard(_context: Context, value: Any) -> Any:
    return bounded(value)


@pass_context
def _concat(context: Context, operands: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: the text of the operands, measured before it is made."""
    _expect_at_most(sum(text_size(operand) for operand in operands), "~")
    join = markup_join if context.eval_ctx.autoescape else str_join
    return bounded(join(operands))  # type: ignore[no-any-return]


class _SpliceGuards(NodeTransformer):
    """Route loops, ``~``, comparisons, slices and literals through the guards."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        fixed_text = sum(
            len(data.data) for child in node.body for data in child.find_all(nodes.TemplateData)
        )
        per_iteration = nodes.Const(1 + fixed_text // _CHARS_PER_STEP)
        node.iter = self._filter(node.iter, _LOOP_GUARD, per_iteration)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(nodes.Tuple(node.nodes, "load", lineno=node.lineno), _CONCAT)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        """``a < b < c`` becomes ``compare(a, '<', b) and compare(b, '<', c)``."""
        self.generic_visit(node)
        left = node.expr
        checks: list[nodes.Expr] = []
        for operand in node.ops:
            checks.append(self._filter(left, _COMPARE, nodes.Const(operand.op), operand.expr))
            left = operand.expr
        result = checks[0]
        for check in checks[1:]:
            result = nodes.And(result, check, lineno=node.lineno)
        return result

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        """A slice copies: ``s[::-1]`` of a long string is paid for like any value made."""
        self.generic_visit(node)
        return self._filter(node, _SIZE_GUARD) if isinstance(node.arg, nodes.Slice) else node

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, _SIZE_GUARD)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, _SIZE_GUARD)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, _SIZE_GUARD) if node.ctx == "load" else node

    def _filter(self, node: nodes.Node, name: str, *args: nodes.Expr) -> nodes.Filter:
        assert isinstance(node, nodes.Expr)
        wrapped = nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)
        wrapped.set_environment(self.environment)
        return wrapped


def _finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: nothing for None, and nothing unmeasured (a list is
    measured as text before Jinja turns it into a string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        charge(_work(0, len(value)))
    elif not isinstance(value, (int, float)):
        text_size(value)
    return value


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with Herald's limits (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool, strict: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=StrictUndefined if strict else ChainableUndefined,
            finalize=_finalize,
            cache_size=0,
            auto_reload=False,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_GUARD] = _loop_guard
        self.filters[_SIZE_GUARD] = _size_guard
        self.filters[_CONCAT] = _concat
        self.filters[_COMPARE] = _compare
        for name in list(self.tests):
            self.tests[name] = _guard_test(name, self.tests[name])

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly: a template that reaches for ``__class__`` is an attack, not a typo."""
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} is not allowed"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map``, sandboxed by Jinja and predicted by ``_check_format``."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            charge(_work(0, len(template)))
            named = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            _check_format(template, () if is_map else args, named)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        charge(_work(len(args) + len(kwargs), 0))  # f(*range(10000)) passes 10,000 arguments
        if isinstance(__obj, Macro):
            charge(_MACRO_CALL)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            charge(_work(0, len(owner) + sum(map(_length, args))))
            if name == "join" and args:
                args = (_materialized(args[0]), *args[1:])
            check = _STR_METHOD_CHECKS.get(name)
            if check is not None:
                check(owner, *args, **kwargs)
        elif isinstance(owner, (list, tuple)) and name in ("index", "count") and args:
            charge_comparison("in", args[0], owner)
        elif isinstance(__obj, LoopContext) and args and isinstance(args[0], Sized):
            charge(len(args[0]))  # a recursive loop's next level
        elif isinstance(owner, LoopContext) and name == "changed":
            charge_comparison("eq", args, getattr(owner, "_last_changed_value", None))
        if name == "strftime" and args:
            _check_strftime(args[0])
        return bounded(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge(_work(0, _length(left) + _length(right)))
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "+":
            _check_add(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%":
            _check_printf(left, right)
        return bounded(super().call_binop(context, operator, left, right))

    def compile_template(self, source: str) -> Template:
        """Parse, splice the guards in, compile (TemplateSyntaxError if bad)."""
        tree = self.parse(source)
        guarded = _SpliceGuards(self).visit(tree)
        assert isinstance(guarded, nodes.Template)
        return self.from_string(guarded)


@functools.lru_cache(maxsize=4)
def environment(*, autoescape: bool, strict: bool) -> GuardedEnvironment:
    """The process-wide environment for one escaping/undefined policy."""
    return GuardedEnvironment(autoescape=autoescape, strict=strict)


@functools.lru_cache(maxsize=512)
def compile_template(source: str, *, autoescape: bool, strict: bool) -> Template:
    """The compiled template for ``source``, compiled once per process and policy.

    A campaign renders the same few sources for every recipient: the cache is keyed by
    the source text itself (its hash and equality), so a template edited mid-campaign is
    simply a new entry.
    """
    return environment(autoescape=autoescape, strict=strict).compile_template(source)


_DEFAULT_LIMITS = Limits()


@functools.lru_cache(maxsize=512)
def _flat_globals(template: Template) -> dict[str, Any]:
    """The template's globals as one dict (Jinja keeps them in a ChainMap), made once."""
    return dict(template.globals)


def _generate(template: Template, variables: Mapping[str, Any]) -> Iterator[str]:
    """``template.generate(variables)``, without Jinja's per-render copy of its globals:
    ``generate`` walks their ChainMap in Python twice per render (to merge them with the
    variables and to list their names), a third of rendering a subject line. Here they
    are flattened once per compiled template; the context is otherwise the same."""
    flat = _flat_globals(template)
    context = new_context(
        template.environment,
        template.name,
        template.blocks,
        {**flat, **variables},
        shared=True,
        globals=flat,
    )
    try:
        yield from template.root_render_func(context)
    except Exception:
        yield template.environment.handle_exception()


def run(
    template: Template,
    variables: Mapping[str, Any],
    *,
    max_length: int,
    limits: Limits | None = None,
) -> str:
    """Render ``template`` on a fresh budget, stopping as soon as the output passes
    max_length, the steps are spent or the CPU time is up (LimitExceeded)."""
    limits = limits or _DEFAULT_LIMITS
    token = _budget.set(_Budget(limits, deadline=limits.clock() + limits.cpu_seconds))
    try:
        parts: list[str] = []
        length = 0
        for chunk in _generate(template, variables):
            length += len(chunk)
            if length > max_length:
                raise LimitExceeded(
                    "too_large", f"the rendered text is longer than {max_length} characters"
                )
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)
