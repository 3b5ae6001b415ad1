"""A workflow graph, its campaign-level settings, and the checks it passes before it is saved.

``load_workflow`` is the one way in: it reads ``{nodes, edges}`` and either returns a
``Workflow`` that the step executor can walk without ever meeting a dangling edge, an
unwired branch or an endless loop, or raises ``ValidationFailures`` listing every problem
with the node or edge it is about (``workflow.nodes.3``, ``workflow.edges.5.branch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.domain.errors import ValidationFailures
from chalicelib.domain.events import EventName
from chalicelib.domain.flows.nodes import (
    CONDITION_KINDS,
    CONFIG_BY_KIND,
    NODE_ID_PATTERN,
    TRIGGER_KINDS,
    WAIT_KINDS,
    ManualTrigger,
    NodeConfig,
    NodeKind,
    branch_labels,
)
from chalicelib.domain.flows.policy import CampaignCap
from chalicelib.domain.flows.timing import Duration
from chalicelib.domain.model import Model

MAX_NODES = 200
MAX_EDGES = 400
MAX_EXIT_ON = 20
FIELD = "workflow"


class Position(Model):
    """Where an editor drew the node; Herald keeps it and never reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float
    y: float


class Node(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NODE_ID_PATTERN, examples=["welcome-email"])
    kind: NodeKind
    config: NodeConfig = Field(default_factory=dict, validate_default=True)
    position: Position | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _config_of_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself was refused; that error is enough
            return ManualTrigger()
        return CONFIG_BY_KIND[kind].model_validate(value)


class Edge(Model):
    """From ``source`` to ``target``; ``branch`` labels which way out of a condition or
    wait_for_event it is (none: the default way)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=64)
    branch: str | None = Field(default=None, min_length=1, max_length=50)


class Workflow(Model):
    """``{nodes, edges}``; build it with ``load_workflow`` so that it is known to be sound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list, max_length=MAX_EDGES)

    @cached_property
    def by_id(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}

    @cached_property
    def _ways_out(self) -> dict[str, dict[str | None, str]]:
        ways: dict[str, dict[str | None, str]] = {}
        for edge in self.edges:
            ways.setdefault(edge.source, {}).setdefault(edge.branch, edge.target)
        return ways

    def next_node(self, node_id: str, branch: str | None = None) -> str | None:
        """Where a contact goes from ``node_id`` along ``branch`` (else the default edge);
        None when nothing follows (the flow ends there)."""
        ways = self._ways_out.get(node_id, {})
        if branch is not None and branch in ways:
            return ways[branch]
        return ways.get(None)

    def triggers(self) -> list[Node]:
        return [node for node in self.nodes if node.kind in TRIGGER_KINDS]


class Reentry(Model):
    """May a contact enter again? ``once`` (never), ``after_exit``, or ``every`` interval
    since its last entry (and only after that enrolment exited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["once", "after_exit", "every"] = "once"
    interval: Duration | None = None

    @model_validator(mode="after")
    def _interval_for_every(self) -> Reentry:
        if (self.mode == "every") != (self.interval is not None):
            raise ValueError("an interval goes with mode 'every', and only with it")
        return self


class FlowSettings(Model):
    """The campaign-level rules of a flow, beside its graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reentry: Reentry = Field(default_factory=Reentry)
    exit_on: list[EventName] = Field(
        default_factory=list,
        max_length=MAX_EXIT_ON,
        description="Goal events: one of them exits the contact with reason goal (a conversion).",
    )
    max_lateness: Duration | None = Field(
        default=None,
        description="A message that could only go out later than this after it was due is "
        "skipped (reason max_lateness) rather than sent late; none: it waits for quiet hours.",
    )
    frequency_cap: CampaignCap | None = Field(
        default=None, description="This flow's own cap; the tenant's cap applies as well."
    )


# -- loading and checking ---------------------------------------------------------------
def load_workflow(payload: Any) -> Workflow:
    """``payload`` as a sound ``Workflow``; ValidationFailures naming every bad node or edge."""
    try:
        workflow = Workflow.model_validate(payload)
    except ValidationError as error:
        raise ValidationFailures(
            [
                {
                    "field": _path(FIELD, *problem["loc"]),
                    "message": _about(payload, problem["loc"]) + problem["msg"],
                }
                for problem in error.errors(include_url=False)
            ]
        ) from None
    problems = list(check(workflow))
    if problems:
        raise ValidationFailures(problems)
    return workflow


def check(workflow: Workflow) -> Iterator[dict[str, str]]:
    """Every structural problem of a workflow whose nodes and edges are each well-formed."""
    yield from _unique_ids(workflow)
    if not workflow.triggers():
        yield _problem(("nodes",), f"a workflow needs at least one trigger node (of {_kinds()})")
    ids = {node.id: index for index, node in enumerate(workflow.nodes)}
    yield from _edge_problems(workflow, ids)
    yield from _unwired_branches(workflow)
    reachable = _reachable(workflow)
    for index, node in enumerate(workflow.nodes):
        if reachable and node.id not in reachable:
            yield _problem(("nodes", index), f"node '{node.id}' cannot be reached from a trigger")
    for node_id in _cycles_without_wait(workflow):
        yield _problem(
            ("nodes", ids[node_id]),
            f"node '{node_id}' is on a loop with no delay, wait_until or wait_for_event",
        )


def _unique_ids(workflow: Workflow) -> Iterator[dict[str, str]]:
    seen: set[str] = set()
    for index, node in enumerate(workflow.nodes):
        if node.id in seen:
            yield _problem(("nodes", index, "id"), f"node id '{node.id}' is used twice")
        seen.add(node.id)


def _edge_problems(workflow: Workflow, ids: dict[str, int]) -> Iterator[dict[str, str]]:
    taken: set[tuple[str, str | None]] = set()
    for index, edge in enumerate(workflow.edges):
        where = ("edges", index)
        source, target = workflow.by_id.get(edge.source), workflow.by_id.get(edge.target)
        if source is None:
            yield _problem((*where, "source"), f"edge {index}: no node '{edge.source}'")
        elif source.kind == "exit":
            yield _problem((*where, "source"), f"edge {index}: nothing follows exit '{source.id}'")
        if target is None:
            yield _problem((*where, "target"), f"edge {index}: no node '{edge.target}'")
        elif target.kind in TRIGGER_KINDS:
            yield _problem(
                (*where, "target"),
                f"edge {index}: trigger '{target.id}' cannot be entered by an edge",
            )
        if source is None:
            continue
        labels = branch_labels(source.kind, source.config)
        if edge.branch is not None and edge.branch not in labels:
            allowed = f"use {', '.join(labels)} or none" if labels else "it has one way out"
            yield _problem(
                (*where, "branch"),
                f"edge {index}: '{edge.branch}' is not a branch of node '{source.id}' ({allowed})",
            )
        elif (edge.source, edge.branch) in taken:
            way = f"a '{edge.branch}' edge" if edge.branch else "a default edge"
            yield _problem(
                (*where, "branch"), f"edge {index}: node '{source.id}' has {way} already"
            )
        taken.add((edge.source, edge.branch))


def _unwired_branches(workflow: Workflow) -> Iterator[dict[str, str]]:
    """A condition or wait_for_event must have an edge for each branch, or a default one."""
    wired: dict[str, set[str | None]] = {}
    for edge in workflow.edges:
        wired.setdefault(edge.source, set()).add(edge.branch)
    for index, node in enumerate(workflow.nodes):
        if node.kind not in CONDITION_KINDS and node.kind != "wait_for_event":
            continue
        ways = wired.get(node.id, set())
        if None in ways:
            continue
        missing = [label for label in branch_labels(node.kind, node.config) if label not in ways]
        if missing:
            yield _problem(
                ("nodes", index),
                f"node '{node.id}' has no edge for {', '.join(missing)} and no default edge",
            )


def _successors(workflow: Workflow) -> dict[str, list[str]]:
    """Where each node leads, over the edges that passed ``_edge_problems``."""
    following: dict[str, list[str]] = {node.id: [] for node in workflow.nodes}
    for edge in workflow.edges:
        source, target = workflow.by_id.get(edge.source), workflow.by_id.get(edge.target)
        if source and target and source.kind != "exit" and target.kind not in TRIGGER_KINDS:
            following[edge.source].append(edge.target)
    return following


def _reachable(workflow: Workflow) -> set[str]:
    following = _successors(workflow)
    seen = {node.id for node in workflow.triggers()}
    pending = list(seen)
    while pending:
        for target in following[pending.pop()]:
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def _cycles_without_wait(workflow: Workflow) -> list[str]:
    """One node of each loop that a contact could go round without ever waiting.

    Waiting nodes are taken out of the graph; whatever loop remains (a strongly connected
    component of more than one node, or a node with an edge to itself) has no wait.
    """
    following = {
        node_id: [t for t in targets if workflow.by_id[t].kind not in WAIT_KINDS]
        for node_id, targets in _successors(workflow).items()
        if workflow.by_id[node_id].kind not in WAIT_KINDS
    }
    found: list[str] = []
    for component in _strongly_connected(following):
        first = component[0]
        if len(component) > 1 or first in following[first]:
            found.append(min(component, key=list(following).index))
    return found


def _strongly_connected(following: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm; at most MAX_NODES nodes, so recursion depth is bounded."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in following[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in following:
        if node not in index:
            visit(node)
    return components


def _about(payload: Any, location: tuple[int | str, ...]) -> str:
    """``node 'send-1': `` for a problem inside a node that has an id, so the message
    names the node as well as its index."""
    if len(location) < 3 or location[0] != "nodes" or not isinstance(location[1], int):
        return ""
    try:
        node_id = payload["nodes"][location[1]]["id"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f"node '{node_id}': " if isinstance(node_id, str) else ""


def _kinds() -> str:
    return ", ".join(sorted(TRIGGER_KINDS))


def _path(*parts: int | str) -> str:
    return ".".join(str(part) for part in parts)


def _problem(location: tuple[int | str, ...], message: str) -> dict[str, str]:
    return {"field": _path(FIELD, *location), "message": message}
