"""A flow's counters: what each step adds, and the stats view read back from them.

Every count of a flow is an ADD on the campaign's sharded counter items
(``store.counters``) made in the SAME transaction as the step's claim, so a step counts
exactly when it happens and a redelivered step never counts twice. Names:

- ``enrollments`` (added by the enrolment service as it enrols), ``messages`` (and the
  broadcast names ``sent``, ``failed``,
  ``skipped.<reason>``, so the campaign's rates read as a broadcast's do);
- ``exited.<reason>``, ``conversions`` (goal exits);
- per node ``node.<id>.<name>``: ``entered``, ``completed``, ``waiting`` (a gauge: +1
  when a contact starts waiting on the node, -1 when it leaves it), ``sent``,
  ``conversions``, ``skipped.<reason>``, ``exited.<reason>``;
- per A/B variant ``variant.<split node>.<variant>.<name>``: ``entered`` (contacts the
  split sent down the variant), ``sent``, then ``delivered``,
  ``opened``, ``clicked`` (added by the feedback worker, from the ``variant`` the message
  record carries) and ``conversions``.

Node ids and variant names are ``[A-Za-z0-9_-]``, so the dots separate unambiguously.
Reading them back is one BatchGetItem of the counter shards, whatever the flow's size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from pydantic import Field

from chalicelib.domain.flows.step import Enrolment, ExitReason, Step
from chalicelib.domain.model import Model

ENROLLMENTS = "enrollments"
MESSAGES = "messages"


def node_counter(node_id: str, name: str) -> str:
    return f"node.{node_id}.{name}"


def variant_of(enrolment: Enrolment) -> str | None:
    """``<split node>.<variant>``: the A/B variant the enrolment last took, if any."""
    if enrolment.split_id is None or enrolment.variant is None:
        return None
    return f"{enrolment.split_id}.{enrolment.variant}"


def variant_counter(variant: str, name: str) -> str:
    return f"variant.{variant}.{name}"


def step_counts(before: Enrolment, step: Step) -> dict[str, int]:
    """What ``step``, taken from ``before``, adds to the flow's counters (sends aside:
    the worker adds ``send_counts`` when the step's message went out)."""
    counts: Counter[str] = Counter()
    after = step.enrolment
    for entry in step.trace:
        node = entry.node_id
        if entry.outcome == "entered":  # ``enrollments`` is counted by the enrolment service
            counts[node_counter(node, "entered")] += 1
        if entry.outcome in ("entered", "performed", "branched", "resumed"):
            counts[node_counter(node, "completed")] += 1
        if entry.outcome == "branched" and (node, entry.branch) == (after.split_id, after.variant):
            counts[variant_counter(f"{node}.{entry.branch}", "entered")] += 1
        elif entry.outcome == "skipped" and entry.reason:
            counts[f"skipped.{entry.reason}"] += 1
            counts[node_counter(node, f"skipped.{entry.reason}")] += 1
        elif entry.outcome == "exited" and entry.reason:
            counts.update(_exited(before, ExitReason(entry.reason)))
    moved = not after.exited and (
        after.node_id != before.node_id or after.arrived_at != before.arrived_at
    )
    if moved:
        counts[node_counter(after.node_id, "entered")] += 1
    waits_now = after.wake_at is not None and not after.exited and not moved
    if before.wake_at is None and waits_now:
        counts[node_counter(before.node_id, "waiting")] += 1
    elif before.wake_at is not None and not waits_now:
        counts[node_counter(before.node_id, "waiting")] -= 1
    return {name: n for name, n in counts.items() if n}


def exit_counts(before: Enrolment, reason: ExitReason) -> dict[str, int]:
    """What one exit of ``before`` adds: also for the exits from outside (unsubscribe,
    goal events, deletion…), whose claim the enrolment service makes."""
    counts = _exited(before, reason)
    if before.wake_at is not None:  # it was waiting on its node
        counts[node_counter(before.node_id, "waiting")] -= 1
    return {name: n for name, n in counts.items() if n}


def _exited(before: Enrolment, reason: ExitReason) -> Counter[str]:
    counts: Counter[str] = Counter()
    counts[f"exited.{reason.value}"] += 1
    counts[node_counter(before.node_id, f"exited.{reason.value}")] += 1
    if reason == ExitReason.GOAL:
        counts["conversions"] += 1
        counts[node_counter(before.node_id, "conversions")] += 1
        variant = variant_of(before)
        if variant is not None:
            counts[variant_counter(variant, "conversions")] += 1
    return counts


def send_counts(before: Enrolment, node_id: str) -> dict[str, int]:
    """What one message sent at ``node_id`` adds (the broadcast's ``sent`` among them)."""
    counts = {"sent": 1, MESSAGES: 1, node_counter(node_id, "sent"): 1}
    variant = variant_of(before)
    if variant is not None:
        counts[variant_counter(variant, "sent")] = 1
    return counts


# -- the stats view -------------------------------------------------------------------
class NodeStats(Model):
    """One node of a flow: contacts that entered it, left it onwards, wait on it now, were
    sent its message, and skipped or exited on it (by reason)."""

    entered: int = 0
    completed: int = 0
    waiting: int = 0
    sent: int = 0
    conversions: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    exited: dict[str, int] = Field(default_factory=dict)


class VariantStats(Model):
    """One variant of an A/B split: contacts that took it, messages sent after taking it,
    their feedback, goals."""

    entered: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    conversions: int = 0


class FlowStats(Model):
    enrollments: int
    messages: int
    conversions: int
    exited: dict[str, int]
    nodes: dict[str, NodeStats] = Field(description="Per node id.")
    variants: dict[str, dict[str, VariantStats]] = Field(
        description="Per ab_split node id, per variant name."
    )


def flow_stats(node_ids: list[str], counts: Mapping[str, int]) -> FlowStats:
    """The stats of a flow whose nodes are ``node_ids``, from its summed counters."""
    nodes = {node_id: NodeStats() for node_id in node_ids}
    variants: dict[str, dict[str, VariantStats]] = {}
    exited: dict[str, int] = {}
    for name, value in counts.items():
        kind, _, rest = name.partition(".")
        if kind == "exited":
            exited[rest] = value
        elif kind == "node":
            node_id, _, counter = rest.partition(".")
            _add_node_count(nodes.setdefault(node_id, NodeStats()), counter, value)
        elif kind == "variant":
            split, variant, counter = (*rest.split(".", 2), "", "")[:3]
            stats = variants.setdefault(split, {}).setdefault(variant, VariantStats())
            if counter in VariantStats.model_fields:
                setattr(stats, counter, value)
    return FlowStats(
        enrollments=counts.get(ENROLLMENTS, 0),
        messages=counts.get(MESSAGES, 0),
        conversions=counts.get("conversions", 0),
        exited=exited,
        nodes=nodes,
        variants=variants,
    )


def _add_node_count(stats: NodeStats, counter: str, value: int) -> None:
    family, _, reason = counter.partition(".")
    if family in ("skipped", "exited") and reason:
        getattr(stats, family)[reason] = value
    elif counter in ("entered", "completed", "waiting", "sent", "conversions"):
        setattr(stats, counter, value)
