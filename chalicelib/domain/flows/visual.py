"""A workflow in a visual editor's shape (seed 004) and the runtime's graph, both ways.

The editor's node is ``{id, type, position: {x, y}, data: {...}}`` and its edge
``{id?, source, target, sourceHandle?}``. ``type`` names a runtime kind (``VISUAL_KINDS``),
``data`` is the kind's config with its top-level keys in camelCase (``templateIds`` for
``template_ids``; what is nested, a rule tree or a webhook's body, is passed as it is),
and ``sourceHandle`` is the runtime's branch label (``yes``/``no``, a variant's name,
``event``/``timeout``). ``data.label`` is the editor's caption: Herald keeps it with
the editor's JSON (the dialect stores that JSON to give it back as it was sent) and never
reads it; any other key the editor adds to a node or an edge is ignored the same way.

Every problem names the editor's field (``workflow.nodes.2.data.templateIds.0``,
``workflow.edges.1.sourceHandle``), never the runtime's.

``in_position_order`` defines the "position" of the seed's ordered actions: the graph's
order from its triggers, breadth first, each node's ways out in edge order.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from chalicelib.domain.errors import ValidationFailures
from chalicelib.domain.flows.graph import Node, Workflow, load_workflow
from chalicelib.domain.flows.nodes import TRIGGER_KINDS, NodeKind

# The seed's node types (and three Herald extensions for the runtime's other kinds).
VISUAL_KINDS: Mapping[str, NodeKind] = MappingProxyType(
    {
        "EVENT": "trigger.event",
        "SEGMENT_ENTRY": "trigger.segment_entry",
        "SEGMENT_EXIT": "trigger.segment_exit",
        "SCHEDULED": "trigger.scheduled",
        "MANUAL": "trigger.manual",
        "SEND_MESSAGE": "send",
        "SET_FIELD": "set_field",
        "ADD_TAG": "add_tag",
        "REMOVE_TAG": "remove_tag",
        "WEBHOOK": "webhook",
        "UPDATE_SCORE": "update_score",
        "NOTIFY_INBOX": "notify_inbox",
        "ATTRIBUTE_CHECK": "attribute_check",
        "EVENT_CHECK": "event_check",
        "AB_SPLIT": "ab_split",
        "DELAY": "delay",
        "WAIT_UNTIL": "wait_until",
        "WAIT_FOR_EVENT": "wait_for_event",
        "EXIT": "exit",
    }
)
VISUAL_TYPES: Mapping[NodeKind, str] = MappingProxyType({k: t for t, k in VISUAL_KINDS.items()})
TRIGGER_TYPES = tuple(t for t, kind in VISUAL_KINDS.items() if kind in TRIGGER_KINDS)
LABEL = "label"
_FIELD = "workflow"
_CAMEL = re.compile(r"_([a-z0-9])")
_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    return _SNAKE.sub(lambda m: "_" + m.group(1).lower(), name)


# -- editor → runtime --------------------------------------------------------------------
def load_visual(visual: Any) -> Workflow:
    """The editor's ``{nodes, edges}`` as a sound runtime ``Workflow``; ValidationFailures
    naming every problem by the editor's field."""
    payload = runtime_payload(visual)
    try:
        return load_workflow(payload)
    except ValidationFailures as failures:
        raise ValidationFailures(
            [{**p, "field": visual_field(p["field"])} for p in failures.details]
        ) from None


def runtime_payload(visual: Any) -> dict[str, Any]:
    """The runtime's ``{nodes, edges}`` payload of the editor's graph (not yet checked as
    a graph: ``load_workflow`` does that); the editor's shape problems all at once."""
    problems: list[dict[str, str]] = []
    if not isinstance(visual, dict):
        raise ValidationFailures([_problem(_FIELD, "must be an object with nodes and edges")])
    nodes, edges = visual.get("nodes"), visual.get("edges", [])
    if not isinstance(nodes, list):
        problems.append(_problem(f"{_FIELD}.nodes", "must be a list of nodes"))
        nodes = []
    if not isinstance(edges, list):
        problems.append(_problem(f"{_FIELD}.edges", "must be a list of edges"))
        edges = []
    payload = {
        "nodes": [_node(index, node, problems) for index, node in enumerate(nodes)],
        "edges": [_edge(index, edge, problems) for index, edge in enumerate(edges)],
    }
    if problems:
        raise ValidationFailures(problems)
    return payload


def _node(index: int, node: Any, problems: list[dict[str, str]]) -> dict[str, Any]:
    where = f"{_FIELD}.nodes.{index}"
    if not isinstance(node, dict):
        problems.append(_problem(where, "must be an object {id, type, position, data}"))
        return {}
    given = node.get("type")
    kind = VISUAL_KINDS.get(given) if isinstance(given, str) else None
    if kind is None:
        problems.append(_problem(f"{where}.type", f"must be one of {', '.join(VISUAL_KINDS)}"))
    data = node.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(_problem(f"{where}.data", "must be an object"))
        data = {}
    runtime: dict[str, Any] = {
        "id": node.get("id"),
        "kind": kind or "trigger.manual",
        "config": {snake(key): value for key, value in data.items() if key != LABEL},
    }
    if node.get("position") is not None:
        runtime["position"] = node["position"]
    return runtime


def _edge(index: int, edge: Any, problems: list[dict[str, str]]) -> dict[str, Any]:
    if not isinstance(edge, dict):
        problems.append(_problem(f"{_FIELD}.edges.{index}", "must be an object"))
        return {}
    runtime = {"source": edge.get("source"), "target": edge.get("target")}
    if edge.get("sourceHandle") is not None:
        runtime["branch"] = edge["sourceHandle"]
    return runtime


def visual_field(field: str) -> str:
    """A runtime field path (``workflow.nodes.3.config.template_ids.0``) in the editor's
    words (``workflow.nodes.3.data.templateIds.0``)."""
    parts = field.split(".")
    if len(parts) >= 4 and parts[:2] == [_FIELD, "nodes"] and parts[3] == "kind":
        parts[3] = "type"
    elif len(parts) >= 4 and parts[:2] == [_FIELD, "nodes"] and parts[3] == "config":
        parts[3] = "data"
        if len(parts) >= 5:
            parts[4] = camel(parts[4])
    elif len(parts) >= 4 and parts[:2] == [_FIELD, "edges"] and parts[3] == "branch":
        parts[3] = "sourceHandle"
    return ".".join(parts)


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


# -- runtime → editor --------------------------------------------------------------------
def visual_of(workflow: Workflow) -> dict[str, Any]:
    """The editor's shape of a runtime graph (for a graph that was not made in the editor,
    or changed through the native API since): ``data`` is the config without its unset
    optional fields, edge ids are made from their ends."""
    nodes = []
    for node in workflow.nodes:
        config = node.config.model_dump(mode="json", exclude_none=True)
        shown: dict[str, Any] = {
            "id": node.id,
            "type": VISUAL_TYPES[node.kind],
            "position": node.position.model_dump() if node.position else {"x": 0, "y": 0},
            "data": {camel(key): value for key, value in config.items()},
        }
        nodes.append(shown)
    edges = []
    for edge in workflow.edges:
        shown = {"id": f"e-{edge.source}-{edge.target}", "source": edge.source}
        shown["target"] = edge.target
        if edge.branch is not None:
            shown["id"] += f"-{edge.branch}"
            shown["sourceHandle"] = edge.branch
        edges.append(shown)
    return {"nodes": nodes, "edges": edges}


def in_position_order(workflow: Workflow) -> list[Node]:
    """Every node in the graph's order: the triggers (in the order the graph lists them),
    then breadth first along the edges, each node's ways out in the order the edges are
    listed; a node reached twice keeps its first place. A sound graph has every node
    reachable from a trigger; any that is not (never saved so) comes last, as listed."""
    following: dict[str, list[str]] = {}
    for edge in workflow.edges:
        following.setdefault(edge.source, []).append(edge.target)
    order: list[str] = []
    seen: set[str] = set()
    pending = deque(node.id for node in workflow.triggers())
    seen.update(pending)
    while pending:
        node_id = pending.popleft()
        order.append(node_id)
        for target in following.get(node_id, []):
            if target not in seen and target in workflow.by_id:
                seen.add(target)
                pending.append(target)
    order.extend(node.id for node in workflow.nodes if node.id not in seen)
    return [workflow.by_id[node_id] for node_id in order]


def broadcast_send(workflow: Workflow) -> Node | None:
    """The send node of a graph that is a plain broadcast, else None: a Manual trigger, or
    a Scheduled one firing once (``at``), wired to exactly one Send Message and nothing
    else. Such a BROADCAST runs as a native broadcast (planned in pages, its stats)."""
    if len(workflow.nodes) != 2 or len(workflow.edges) != 1:
        return None
    trigger, send = workflow.nodes[0], workflow.nodes[1]
    if send.kind in TRIGGER_KINDS:
        trigger, send = send, trigger
    once = trigger.kind == "trigger.manual" or (
        trigger.kind == "trigger.scheduled" and getattr(trigger.config, "at", None) is not None
    )
    edge = workflow.edges[0]
    if not once or send.kind != "send" or (edge.source, edge.target) != (trigger.id, send.id):
        return None
    return send
