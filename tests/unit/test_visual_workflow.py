"""The visual editor's graph (seed 004) and the runtime's: every node type both ways,
problems named by the editor's fields, and the position order of a graph whose node list
is in another order."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.errors import ValidationFailures
from chalicelib.domain.flows.visual import (
    VISUAL_KINDS,
    broadcast_send,
    in_position_order,
    load_visual,
    visual_of,
)

DATA: dict[str, dict[str, Any]] = {
    "EVENT": {"eventType": "order.placed", "dedupeKey": "order_id"},
    "SEGMENT_ENTRY": {"segmentId": "s_vip"},
    "SEGMENT_EXIT": {"segmentId": "s_vip"},
    "SCHEDULED": {"cron": "0 9 * * 1", "timezone": "Europe/Berlin"},
    "MANUAL": {},
    "SEND_MESSAGE": {"channel": "email", "templateIds": ["tpl_1"], "senderIds": ["snd_1"]},
    "SET_FIELD": {"field": "attributes.plan", "value": "pro"},
    "ADD_TAG": {"tag": "vip"},
    "REMOVE_TAG": {"tag": "trial"},
    "WEBHOOK": {"url": "https://crm.example.com/hook", "body": {"stage_name": "won"}},
    "UPDATE_SCORE": {"delta": 10},
    "NOTIFY_INBOX": {"title": "Call them"},
    "ATTRIBUTE_CHECK": {
        "rules": {
            "condition": "AND",
            "rules": [{"field": "lead_score", "operator": "gte", "value": 50}],
        }
    },
    "EVENT_CHECK": {
        "eventType": "order.placed",
        "within": {"amount": 7, "unit": "days"},
        "minCount": 2,
    },
    "AB_SPLIT": {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]},
    "DELAY": {"amount": 2, "unit": "seconds"},
    "WAIT_UNTIL": {"localTime": "09:00"},
    "WAIT_FOR_EVENT": {"eventType": "order.placed", "timeout": {"amount": 1, "unit": "days"}},
    "EXIT": {},
}


def node(node_id: str, kind: str, x: float = 0, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "position": {"x": x, "y": 0}, "data": data or DATA[kind]}


def edge(source: str, target: str, handle: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"id": f"{source}>{target}", "source": source, "target": target}
    if handle:
        found["sourceHandle"] = handle
    return found


@pytest.mark.parametrize("kind", [k for k in VISUAL_KINDS if k not in ("EVENT", "EXIT")])
def test_every_node_type_maps_to_its_runtime_kind_and_back(kind: str) -> None:
    trigger = VISUAL_KINDS[kind].startswith("trigger.")
    nodes = [node("n", kind)] if trigger else [node("start", "EVENT"), node("n", kind)]
    edges = [] if trigger else [edge("start", "n")]
    if not trigger and kind in ("ATTRIBUTE_CHECK", "EVENT_CHECK", "AB_SPLIT", "WAIT_FOR_EVENT"):
        nodes.append(node("end", "EXIT"))
        edges.append(edge("n", "end"))
    workflow = load_visual({"nodes": nodes, "edges": edges})
    runtime = workflow.by_id["n"]
    assert runtime.kind == VISUAL_KINDS[kind]
    shown = next(n for n in visual_of(workflow)["nodes"] if n["id"] == "n")
    assert shown["type"] == kind and shown["data"] == DATA[kind]


def test_data_is_the_config_in_camel_case_and_handles_are_branches() -> None:
    workflow = load_visual(
        {
            "nodes": [
                node("start", "EVENT"),
                {**node("check", "ATTRIBUTE_CHECK"), "width": 150, "selected": True},
                node("yes", "ADD_TAG", label="Tag big spenders", tag="big"),
                node("no", "EXIT"),
            ],
            "edges": [
                edge("start", "check"),
                edge("check", "yes", "yes"),
                {**edge("check", "no", "no"), "animated": True},
            ],
        }
    )
    assert workflow.by_id["start"].config.model_dump()["dedupe_key"] == "order_id"
    assert [(e.source, e.target, e.branch) for e in workflow.edges] == [
        ("start", "check", None),
        ("check", "yes", "yes"),
        ("check", "no", "no"),
    ]


def test_problems_name_the_editors_fields() -> None:
    with pytest.raises(ValidationFailures) as refused:
        load_visual(
            {
                "nodes": [
                    node("start", "EVENT"),
                    {"id": "x", "type": "TELEPORT", "data": {}},
                    node("send", "SEND_MESSAGE", channel="email", templateIds=[]),
                    node("split", "AB_SPLIT"),
                ],
                "edges": [edge("start", "send"), edge("send", "split"), edge("split", "send", "c")],
            }
        )
    fields = {p["field"] for p in refused.value.details}
    assert "workflow.nodes.1.type" in fields
    with pytest.raises(ValidationFailures) as refused:
        load_visual(
            {
                "nodes": [
                    node("start", "EVENT"),
                    node("send", "SEND_MESSAGE", channel="email", templateIds=[]),
                ],
                "edges": [edge("start", "send")],
            }
        )
    assert refused.value.details[0]["field"] == "workflow.nodes.1.data.templateIds"
    with pytest.raises(ValidationFailures) as refused:
        load_visual(
            {
                "nodes": [node("start", "EVENT"), node("split", "AB_SPLIT"), node("end", "EXIT")],
                "edges": [edge("start", "split"), edge("split", "end", "c")],
            }
        )
    assert "workflow.edges.1.sourceHandle" in {p["field"] for p in refused.value.details}
    with pytest.raises(ValidationFailures) as refused:
        load_visual({"nodes": "none"})
    assert refused.value.field == "workflow.nodes"


def test_position_order_is_the_graphs_order_whatever_the_node_list_says() -> None:
    workflow = load_visual(
        {
            "nodes": [
                node("inbox", "NOTIFY_INBOX"),
                node("push", "SEND_MESSAGE", channel="push", templateIds=["tpl_p"]),
                node("split", "AB_SPLIT"),
                node("wait", "DELAY"),
                node("telegram", "SEND_MESSAGE", channel="telegram", templateIds=["tpl_t"]),
                node("mail", "SEND_MESSAGE"),
                node("start", "EVENT"),
            ],
            "edges": [
                edge("telegram", "inbox"),
                edge("push", "inbox"),
                edge("split", "push", "a"),
                edge("split", "telegram", "b"),
                edge("wait", "split"),
                edge("mail", "wait"),
                edge("start", "mail"),
            ],
        }
    )
    order = [n.id for n in in_position_order(workflow)]
    assert order == ["start", "mail", "wait", "split", "push", "telegram", "inbox"]


def test_a_broadcast_is_a_manual_or_one_time_trigger_and_one_send() -> None:
    def graph(trigger: dict[str, Any], *more: dict[str, Any]) -> Any:
        nodes = [node("send", "SEND_MESSAGE"), trigger, *more]
        edges = [edge(trigger["id"], "send")] + [edge("send", m["id"]) for m in more]
        return load_visual({"nodes": nodes, "edges": edges})

    assert broadcast_send(graph(node("go", "MANUAL"))) is not None
    once = node("go", "SCHEDULED", at="2026-12-24T09:00:00Z")
    assert broadcast_send(graph(once)).id == "send"  # type: ignore[union-attr]
    assert broadcast_send(graph(node("go", "SCHEDULED"))) is None  # a cron repeats
    assert broadcast_send(graph(node("go", "EVENT"))) is None
    assert broadcast_send(graph(node("go", "MANUAL"), node("tag", "ADD_TAG"))) is None
