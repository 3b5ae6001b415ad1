"""The Jinja environment tenant templates run in: sandboxed, and on a budget.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses private and dunder attributes,
calls of unsafe callables, mutation of lists and dicts, and attribute access through
``str.format``. It does not bound time or memory: ``range(99999)`` nested three deep,
``"x" * 10**10``, ``"{:>9999999999}".format(1)`` or a macro that doubles a string on
every recursion each take a worker down. A template runs once per recipient, so one
hostile (or careless) template would stall a 10-million-recipient campaign. Hence:

- every for-loop, call, filter and operator is charged to a per-render step budget
  (``MAX_STEPS``; reading or producing long strings costs a step per hundred
  characters), so a render always ends, in well under a second, having made at most a
  few megabytes of text;
- every value an operator, filter, method or ``~`` produces is checked against
  ``MAX_TEXT`` characters / ``MAX_ITEMS`` items / ``MAX_INT_BITS``, and the operations
  that could allocate far more than their inputs (``*``, ``**``, padding, ``replace``,
  ``join``, printf and ``format`` widths) are checked *before* they run;
- ``range`` is capped at ``MAX_RANGE`` items; ``lipsum`` is gone;
- a refused attribute fails at once (stock Jinja renders it as an empty string).

The loop and ``~`` checks are spliced into the parsed template (the compiled code then
calls them), which is why templates are compiled through ``compile_template`` only.
Exceeding a limit raises ``LimitExceeded``; the sandbox's own refusals raise Jinja's
``SecurityError``.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import (
    ChainableUndefined,
    Environment,
    StrictUndefined,
    Template,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_STEPS = 100_000
MAX_RANGE = 10_000
MAX_TEXT = 1_000_000
MAX_ITEMS = 100_000
MAX_INT_BITS = 100_000
MAX_WIDTH = 10_000  # a printf/format field width or precision
_CHARS_PER_STEP = 100

LimitReason = Literal["too_large", "too_complex"]
_LOOP_GUARD = "herald_loop_guard"
_SIZE_GUARD = "herald_size_guard"
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


class LimitExceeded(Exception):
    """A render went over one of the sandbox's limits; ``reason`` says which kind."""

    def __init__(self, reason: LimitReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Budget:
    steps: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("herald_render_budget", default=None)


def charge(steps: int) -> None:
    """Spend ``steps`` of the current render's budget (outside a render: free)."""
    budget = _budget.get()
    if budget is None:
        return
    budget.steps += steps
    if budget.steps > MAX_STEPS:
        raise LimitExceeded(
            "too_complex", f"the template does more than {MAX_STEPS} steps of work per message"
        )


def _cost(value: Any) -> int:
    return 1 + (len(value) // _CHARS_PER_STEP if isinstance(value, str) else 0)


def bounded(value: Any) -> Any:
    """``value`` itself, or LimitExceeded when it is bigger than any template should make."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise LimitExceeded("too_large", f"a value of {len(value)} characters is too long")
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        if len(value) > MAX_ITEMS:
            raise LimitExceeded("too_large", f"a collection of {len(value)} items is too big")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded("too_large", "a number is too large")
    return value


def _produced(value: Any) -> Any:
    """Charge for and bound a value an operation made."""
    charge(_cost(value))
    return bounded(value)


def _expect_at_most(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise LimitExceeded("too_large", f"{what} would make a value of {size} characters")


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise LimitExceeded("too_large", f"{what} width {width} is larger than {MAX_WIDTH}")


# -- pre-checks for the operations that can allocate far more than their inputs ------------
def _check_printf(template: Any) -> None:
    """``%``-formatting: refuse ``*`` and widths/precisions above MAX_WIDTH."""
    if not isinstance(template, str):
        return
    for match in _PRINTF_SPEC.finditer(template):
        for part in match.groups():
            if part == "*":
                raise LimitExceeded("too_large", "computed widths ('*') are not allowed")
            if part is not None:
                _check_width(int(part), "a format")


def _check_format_spec(template: str) -> None:
    """``str.format``: refuse nested (computed) specs and widths above MAX_WIDTH."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format itself will report the malformed template
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("too_large", "computed format specs are not allowed")
        for number in _NUMBER.findall(spec):
            _check_width(int(number), "a format")


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    _expect_at_most(len(text) + occurrences * (len(new) - len(old)), "replace")


def _check_join(separator: Any, items: Iterable[Any]) -> None:
    if isinstance(items, Mapping):
        items = list(items)
    if not isinstance(items, (list, tuple)):
        return  # a generator: its items are bounded, and the result is checked after
    sep = len(separator) if isinstance(separator, str) else 0
    total = sep * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else 1
        _expect_at_most(total, "join")


def _check_pad(_text: Any, width: Any = 0, *_args: Any, **_kwargs: Any) -> None:
    _check_width(width, "a padding")


def _check_indent(text: Any, width: Any = 4, *_args: Any, **_kwargs: Any) -> None:
    if not isinstance(text, str):
        return
    unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _expect_at_most(len(text) + (text.count("\n") + 1) * unit, "indent")


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


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_pad,
    "indent": _check_indent,
    "replace": lambda text, old, new, count=None: _check_replace(text, old, new, count or -1),
    "join": lambda items, separator="", *_a, **_k: _check_join(separator, items),
    "format": lambda template, *_a, **_k: _check_printf(template),
    "batch": _check_item_count,
    "slice": _check_item_count,
    "sum": _check_numeric_start,
    "tojson": _check_json_indent,
}

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
}


def _guard_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` charged to the budget, pre-checked where it can explode, result bounded."""
    check = _FILTER_CHECKS.get(name)
    passes_first = getattr(original, "jinja_pass_arg", None) is not None

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value_args = args[1:] if passes_first else args
        if value_args:
            charge(_cost(value_args[0]))
        if check is not None and value_args:
            check(*value_args, **kwargs)
        return _produced(original(*args, **kwargs))

    return guarded


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded("too_large", f"range() is limited to {MAX_RANGE} items")
    return numbers


@pass_context
def _loop_guard(_context: Context, iterable: Any) -> Any:
    """Charge a for-loop's iterations before it starts (or as it goes, for iterators)."""
    if hasattr(iterable, "__len__"):
        charge(len(iterable))
        return iterable
    return _counted(iterable)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        charge(1)
        yield item


@pass_context
def _size_guard(_context: Context, value: Any) -> Any:
    return _produced(value)


class _SpliceGuards(NodeTransformer):
    """Route every for-loop's iterable and every ``~`` result through the guards."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._filter(node.iter, _LOOP_GUARD)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, _SIZE_GUARD)

    def _filter(self, node: nodes.Node, name: str) -> nodes.Filter:
        wrapped = nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
        wrapped.set_environment(self.environment)
        return wrapped


def _blank_none(value: Any) -> Any:
    """``{{ value }}`` of a None prints nothing, never the word ``None``."""
    return "" if value is None else value


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with Herald's limits (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool, strict: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=StrictUndefined if strict else ChainableUndefined,
            finalize=_blank_none,
            cache_size=0,
            auto_reload=False,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_GUARD] = _loop_guard
        self.filters[_SIZE_GUARD] = _size_guard

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly: a template that reaches for ``__class__`` is an attack, not a typo."""
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} is not allowed"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format_spec(value.__self__)
        return wrapped

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        charge(1)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            charge(_cost(owner))
            check = _STR_METHOD_CHECKS.get(name)
            if check is not None:
                check(owner, *args, **kwargs)
        if name == "strftime" and args:
            _check_printf(args[0])
        return _produced(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge(_cost(left) + _cost(right))
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%":
            _check_printf(left)
        return _produced(super().call_binop(context, operator, left, right))

    def compile_template(self, source: str) -> Template:
        """Parse, splice the loop and size guards in, compile (TemplateSyntaxError if bad)."""
        tree = self.parse(source)
        guarded = _SpliceGuards(self).visit(tree)
        assert isinstance(guarded, nodes.Template)
        return self.from_string(guarded)


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(times, int) and isinstance(sequence, (str, list, tuple)):
            limit = MAX_TEXT if isinstance(sequence, str) else MAX_ITEMS
            if len(sequence) * times > limit:
                raise LimitExceeded("too_large", "repetition would make a value too big")


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if max(base.bit_length(), 1) * exponent > MAX_INT_BITS:
        raise LimitExceeded("too_large", "a power would make a number too large")


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


def run(template: Template, variables: Mapping[str, Any], *, max_length: int) -> str:
    """Render ``template`` on a fresh budget, stopping as soon as the output passes max_length."""
    token = _budget.set(_Budget())
    try:
        parts: list[str] = []
        length = 0
        for chunk in template.generate(variables):
            length += len(chunk)
            if length > max_length:
                raise LimitExceeded(
                    "too_large", f"the rendered text is longer than {max_length} characters"
                )
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)
