"""Sequences: seed 001's campaign of ordered email steps, compiled onto the flow runtime.

A sequence is a linear flow (docs/flows.md, "How the three seeds map"):
``trigger.manual`` → [delay] → send(step 1) → [delay] → send(step 2) … where each delay
is the next step's ``delay_minutes`` (none when 0) and only ``is_active`` steps take part,
in ``step_order``. Step 1's delay counts from enrolment (a contact enrolled before
activation waits in the flow until it is activated, so from activation, whichever is
later); each later one from the previous step's execution, sent or skipped.

Ids: a step's id is a UUID (what seed clients see); its send node has that id (node ids
allow dashes), so an edit that keeps a step keeps the contacts standing on it, and the
ledger, counters and stats name a step by it. A step's content is a Herald email
template, one per step (``template_id``): a step without a subject is sent as
``Re: <first step's subject>``, the thread it continues (``mail_threads``).

Statuses are the flow family's own (draft, active, paused, completed, cancelled), which
are exactly the seed's; ``moves`` says which actions lead from one to another.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from chalicelib.domain.campaigns import (
    FLOW_EDITABLE_STATUSES,
    Action,
    Campaign,
    CampaignLocked,
    CampaignStatus,
    flow_steps,
)
from chalicelib.domain.errors import InvalidTransition
from chalicelib.domain.flows.graph import load_workflow
from chalicelib.domain.mail_threads import reply_subject
from chalicelib.domain.model import Model

SEQUENCE_TYPE = "sequence"
TRIGGER_NODE = "enrol"
# What a seed client sets, by where it is kept: native campaign fields; fields that
# change what is sent (editable only while draft or paused, like a flow's graph); the
# seed's own fields, kept in ``dialect_fields`` and shown back as given.
NATIVE_FIELDS = frozenset({"name", "description"})
SENDING_FIELDS = frozenset({"timezone", "send_windows", "stop_on_reply", "sender_ids"})
SEED_FIELDS = frozenset(
    {
        "company",
        "created_by",
        "responder_agent",
        "workflow",
        "is_deleted",
        "created_at",
        "allowed_windows",
    }
)
DELAY_PREFIX = "wait-"
MAX_DELAY_MINUTES = 366 * 24 * 60  # the runtime's longest duration
# How a seed status is reached from another: the flow family's actions, in order.
_MOVES: Mapping[tuple[CampaignStatus, CampaignStatus], tuple[Action, ...]] = {
    ("draft", "active"): ("activate",),
    ("draft", "cancelled"): ("cancel",),
    ("active", "paused"): ("pause",),
    ("active", "completed"): ("complete",),
    ("active", "cancelled"): ("cancel",),
    ("paused", "active"): ("resume",),
    ("paused", "completed"): ("complete",),
    ("paused", "cancelled"): ("cancel",),
}


class SequenceStep(Model):
    """One step as stored with its campaign (``dialect_fields["steps"]``)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The step's UUID, dashed; also its send node's id.")
    step_order: int
    subject: str = ""
    body_html: str = ""
    body_text: str = ""
    delay_minutes: int = Field(default=0, ge=0, le=MAX_DELAY_MINUTES)
    is_active: bool = True
    template_id: str
    created_at: datetime
    updated_at: datetime


def ordered(steps: Sequence[SequenceStep]) -> list[SequenceStep]:
    """Steps by ``step_order`` (then creation, for equal orders)."""
    return sorted(steps, key=lambda s: (s.step_order, s.created_at, s.id))


def template_subject(step: SequenceStep, steps: Sequence[SequenceStep]) -> str:
    """The subject a step's template sends: its own, else ``Re:`` the first active step's."""
    first = next((s for s in ordered(steps) if s.is_active and s.subject.strip()), None)
    return reply_subject(step.subject, first.subject if first else "")


def template_html(step: SequenceStep) -> str:
    """The HTML part: the step's own, else its text kept as written."""
    if step.body_html.strip():
        return step.body_html
    return f'<div style="white-space: pre-wrap">{html.escape(step.body_text)}</div>'


def delay_duration(minutes: int, unit_seconds: int) -> dict[str, Any]:
    """``delay_minutes`` as the runtime's duration; ``unit_seconds`` < 60 shortens every
    minute to that many seconds (tests and demos: ``Settings.sequence_delay_unit_seconds``)."""
    if unit_seconds == 60:
        return {"amount": minutes, "unit": "minutes"}
    return {"amount": minutes * unit_seconds, "unit": "seconds"}


def compile_workflow(
    steps: Sequence[SequenceStep], sender_ids: Sequence[str], unit_seconds: int
) -> dict[str, Any]:
    """The workflow payload (for ``graph.load_workflow``) of a sequence's steps."""
    nodes: list[dict[str, Any]] = [{"id": TRIGGER_NODE, "kind": "trigger.manual"}]
    for step in ordered(steps):
        if not step.is_active:
            continue
        if step.delay_minutes:
            nodes.append(
                {
                    "id": DELAY_PREFIX + step.id,
                    "kind": "delay",
                    "config": delay_duration(step.delay_minutes, unit_seconds),
                }
            )
        send: dict[str, Any] = {"channel": "email", "template_ids": [step.template_id]}
        if sender_ids:
            send["sender_ids"] = list(sender_ids)
        nodes.append({"id": step.id, "kind": "send", "config": send})
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": nodes, "edges": edges}


def moves(current: CampaignStatus, target: CampaignStatus) -> tuple[Action, ...]:
    """The actions that take a sequence from ``current`` to ``target`` (none: it is there);
    InvalidTransition when the flow state machine has no way."""
    if current == target:
        return ()
    found = _MOVES.get((current, target))
    if found is None:
        raise InvalidTransition(current, target, field="status")
    return found


# -- the campaign ------------------------------------------------------------------------
def steps_of(campaign: Campaign) -> list[SequenceStep]:
    """A sequence's steps, by ``step_order``."""
    stored = campaign.dialect_fields.get("steps", [])
    return ordered([SequenceStep.model_validate(step) for step in stored])


def sender_pool(campaign: Campaign) -> list[str]:
    return list(campaign.dialect_fields.get("sender_ids", []))


def new_sequence(
    campaign_id: str, changes: Mapping[str, Any], now: datetime, unit_seconds: int
) -> Campaign:
    """A draft sequence with no steps yet, made of a client's validated fields."""
    blank = Campaign(
        id=campaign_id,
        number=0,
        name=changes["name"],
        channel="email",
        type=SEQUENCE_TYPE,
        steps=[{"channel": "email"}],
        created_at=now,
        updated_at=now,
    )
    return _decided(blank, changes, [], now, unit_seconds)


def edited(
    campaign: Campaign, changes: Mapping[str, Any], now: datetime, unit_seconds: int
) -> Campaign:
    """``campaign`` with ``changes``; what changes sending only while draft or paused."""
    current = {**campaign.dialect_fields, "timezone": campaign.timezone}
    sending = [
        name
        for name in SENDING_FIELDS & set(changes)
        if changes[name] != _current_value(campaign, name, current)
    ]
    if sending:
        check_editable(campaign)
    return _decided(campaign, changes, steps_of(campaign), now, unit_seconds)


def with_steps(
    campaign: Campaign, steps: Sequence[SequenceStep], now: datetime, unit_seconds: int
) -> Campaign:
    """``campaign`` sending ``steps`` (added, changed or removed: draft or paused only)."""
    check_editable(campaign)
    return _decided(campaign, {}, steps, now, unit_seconds)


def check_editable(campaign: Campaign) -> None:
    """Steps and sending fields change only while draft or paused (as a flow's graph)."""
    if campaign.status not in FLOW_EDITABLE_STATUSES:
        raise CampaignLocked(campaign.status, "changed", FLOW_EDITABLE_STATUSES)


def _current_value(campaign: Campaign, name: str, extras: Mapping[str, Any]) -> Any:
    if name == "send_windows":
        return campaign.send_windows
    if name == "stop_on_reply":
        return campaign.stop_on_reply
    return extras.get(name)


def _decided(
    campaign: Campaign,
    changes: Mapping[str, Any],
    steps: Sequence[SequenceStep],
    now: datetime,
    unit_seconds: int,
) -> Campaign:
    values = campaign.model_dump()
    extras = dict(campaign.dialect_fields)
    for name, value in changes.items():
        if name in NATIVE_FIELDS or name in ("timezone", "stop_on_reply"):
            values[name] = value
        elif name == "send_windows":
            values[name] = [window.model_dump() for window in value]
        elif name == "sender_ids" or name in SEED_FIELDS:
            extras[name] = value
        else:
            raise ValueError(f"a sequence has no field {name!r}")
    extras["steps"] = [step.model_dump(mode="json") for step in ordered(steps)]
    graph = load_workflow(compile_workflow(steps, extras.get("sender_ids", []), unit_seconds))
    sends = flow_steps(graph)
    values.update(
        dialect_fields=extras,
        workflow=graph.model_dump(),
        steps=[s.model_dump() for s in sends] or [{"channel": "email"}],
        updated_at=now,
    )
    return Campaign.model_validate(values)
