"""An event-triggered send (seed 000's ``event_triggered_send``) as a flow.

``compile_event_triggered`` turns "when one of these events happens to a contact in this
audience, send it one email, at most once per cooldown and N a day" into the flow
runtime's terms (docs/flows.md), so nothing about it runs outside the flow engine:

* one ``trigger.event`` node per event name (``on-<event>``);
* the audience (the seed's ``segment_query``), when it has rules, as an
  ``attribute_check`` (``audience``): ``yes`` goes on, ``no`` exits (``outside``);
* one ``send`` node (``send``) rotating the templates and senders per contact;
* ``reentry: every <cooldown> seconds``: a contact enters again (and so gets another
  email) only a cooldown after its last entry;
* ``campaign_frequency_cap``: at most ``daily_cap`` messages per contact from this
  campaign in any rolling 24 hours (the contact's calendar day would need its timezone
  at every send; a rolling window is the same for everyone and what the policy counts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from chalicelib.domain.flows.graph import Reentry, Workflow, load_workflow
from chalicelib.domain.flows.policy import CampaignCap
from chalicelib.domain.flows.timing import Duration
from chalicelib.domain.segments import SegmentGroup

SEND_NODE = "send"
AUDIENCE_NODE = "audience"


def trigger_node_id(event: str) -> str:
    return "on-" + re.sub(r"[^A-Za-z0-9_-]", "-", event)[:60]


def compile_event_triggered(
    events: Sequence[str],
    audience: SegmentGroup | None,
    template_ids: Sequence[str],
    sender_ids: Sequence[str],
) -> Workflow:
    """The flow graph of an event-triggered send (see the module docstring)."""
    triggers = [
        {"id": trigger_node_id(event), "kind": "trigger.event", "config": {"event_type": event}}
        for event in dict.fromkeys(events)
    ]
    nodes: list[dict[str, Any]] = list(triggers)
    first = SEND_NODE
    edges: list[dict[str, Any]] = []
    if audience is not None and audience.rules:
        first = AUDIENCE_NODE
        nodes += [
            {
                "id": AUDIENCE_NODE,
                "kind": "attribute_check",
                "config": {"rules": audience.model_dump(mode="json")},
            },
            {"id": "outside", "kind": "exit", "config": {}},
        ]
        edges += [
            {"source": AUDIENCE_NODE, "target": SEND_NODE, "branch": "yes"},
            {"source": AUDIENCE_NODE, "target": "outside", "branch": "no"},
        ]
    nodes.append(
        {
            "id": SEND_NODE,
            "kind": "send",
            "config": {
                "channel": "email",
                "template_ids": list(template_ids),
                "sender_ids": list(sender_ids) or None,
            },
        }
    )
    edges = [{"source": t["id"], "target": first} for t in triggers] + edges
    return load_workflow({"nodes": nodes, "edges": edges})


def cooldown_reentry(cooldown_seconds: int) -> Reentry:
    return Reentry(mode="every", interval=Duration(amount=cooldown_seconds, unit="seconds"))


def daily_cap(messages: int) -> CampaignCap:
    return CampaignCap(max_messages=messages, per_hours=24)
