"""Segment entry and exit as events: what a contact's membership was, is, and what changed.

A flow's ``trigger.segment_entry`` / ``trigger.segment_exit`` fires when a contact moves
into or out of a segment. Herald keeps, on each contact, its last known membership of
every WATCHED segment (one that a live segment trigger names) as a small state string,
``"<revision>:in:<moves>"`` or ``"<revision>:out:<moves>"``. A segment's revision
changes when its rules change or when it was left unwatched (``needs_new_revision``),
which makes every stored state stale at once without touching a contact.

A stale or missing state is not a "was out": the contact was never looked at under this
revision, so the first evaluation only records where it stands (the baseline) and
enrols nobody. The exception is the evaluation of a contact's creation: it cannot have
been in the segment before, so it was out. docs/flows.md ("Segment triggers") has the
whole design.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.domain.segments import Rule, SegmentGroup

Change = Literal["entered", "exited"]
_DATE_OPERATORS = frozenset({"before", "after"})


def rules_digest(tree: SegmentGroup) -> str:
    """A short digest of a rule tree: equal trees, equal digests."""
    return hashlib.sha256(tree.model_dump_json().encode()).hexdigest()[:12]


def next_revision(segment_id: str, digest: str, now: datetime) -> str:
    """A revision never used before for this segment (its rules and the moment it began)."""
    text = f"{segment_id}|{digest}|{now.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def needs_new_revision(
    digest: str, watchers: Iterable[str], *, stored_digest: str | None, stored: Iterable[str]
) -> bool:
    """Whether stored states say nothing about the segment as it is watched now: there
    is no revision yet, the rules changed, or none of the flows that watched it when the
    states were written watches it still (it went unwatched meanwhile, and states written
    before that are old news)."""
    return stored_digest != digest or set(stored).isdisjoint(watchers)


def is_time_relative(tree: SegmentGroup) -> bool:
    """Whether the tree can change its mind with no change to the contact: a date rule
    whose value moves with the clock (``-30d``, ``now``). Such segments need the sweep."""
    return any(_moves_with_clock(rule) for rule in _rules(tree))


def _rules(tree: SegmentGroup) -> Iterable[Rule]:
    for node in tree.rules:
        if isinstance(node, SegmentGroup):
            yield from _rules(node)
        else:
            yield node


def _moves_with_clock(rule: Rule) -> bool:
    if rule.operator not in _DATE_OPERATORS or not isinstance(rule.value, str):
        return False
    text = rule.value.strip()
    return text == "now" or text[:1] in ("+", "-")


def state(rev: str, member: bool, moves: int = 0) -> str:
    """The stored state of a contact's membership under revision ``rev``: its side, and
    how many entries and exits it made under this revision (which names each one)."""
    return f"{rev}:{'in' if member else 'out'}:{moves}"


@dataclass(frozen=True)
class Decision:
    """What one evaluation of one contact against one watched segment found: the state
    to store (``write``: it differs from the stored one) and the change, if any, with the
    number of the move it is (``moves``, counted per contact, segment and revision)."""

    new_state: str
    write: bool
    change: Change | None = None
    moves: int = 0


def decide(stored: str | None, rev: str, member: bool, *, created: bool = False) -> Decision:
    """Compare what the contact is now (``member``) with what was stored for it.

    - a state of this revision: a change of side is an entry or an exit;
    - no state, and this evaluation is of the contact's creation: it was out;
    - otherwise (no state, or a state of an older revision): the baseline, no change.
    """
    stored_rev, _, rest = (stored or "").partition(":")
    side, _, counted = rest.partition(":")
    if stored is not None and stored_rev == rev:
        was_member, moves = side == "in", int(counted or 0)
    elif stored is None and created:
        was_member, moves = False, 0
    else:
        return Decision(state(rev, member), write=True)
    if member == was_member:
        new = state(rev, member, moves)
        return Decision(new, write=stored != new, moves=moves)
    change: Change = "entered" if member else "exited"
    return Decision(state(rev, member, moves + 1), write=True, change=change, moves=moves + 1)


def move_id(segment_id: str, rev: str, moves: int, contact_id: str) -> str:
    """The id of one entry or exit: the same for every evaluation that sees the same move
    (a redelivery, a racing copy), another for the contact's next one."""
    text = f"{segment_id}|{rev}|{moves}|{contact_id}"
    return "seg_" + hashlib.sha256(text.encode()).hexdigest()[:32]


_EVENT_PROPERTIES = frozenset({"count", "first_at", "last_at"})


def reads_event(tree: SegmentGroup, name: str) -> bool:
    """Whether a rule of ``tree`` reads the summary of event ``name`` (so an occurrence
    of it can move a contact in or out)."""
    prefix = f"events.{name}"
    return any(
        rule.field == prefix
        or (
            rule.field.startswith(prefix + ".")
            and rule.field[len(prefix) + 1 :] in _EVENT_PROPERTIES
        )
        for rule in _rules(tree)
    )
