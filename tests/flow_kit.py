"""Flows for tests: a campaign of the flow family put straight into the store.

Streams that need a live flow before the flow API exists (the worker, enrolment,
segment triggers) build one here from a workflow payload, exactly as the domain
defines it (``load_workflow``, ``flow_steps``), and publish its triggers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign, flow_steps, new_campaign_id
from chalicelib.domain.events import TimelineEvent
from chalicelib.domain.flows.graph import load_workflow
from chalicelib.domain.flows.step import TriggerEvent
from chalicelib.services.enrolments import enrol_contacts
from chalicelib.store import enrolments, flow_triggers
from chalicelib.store.campaigns import add_campaign


def put_flow(
    tenant_id: str,
    workflow: dict[str, Any],
    *,
    status: str = "active",
    now: datetime | None = None,
    **fields: Any,
) -> Campaign:
    """Store a flow campaign (default ``active``) with ``workflow`` and ``fields``."""
    at = now or clock.now()
    graph = load_workflow(workflow)
    steps = flow_steps(graph)
    campaign = Campaign.model_validate(
        {
            "id": new_campaign_id(at),
            "number": 0,
            "name": fields.pop("name", "Flow"),
            "type": fields.pop("type", "workflow"),
            "channel": steps[0].channel if steps else "email",
            "steps": [s.model_dump() for s in steps] or [{"channel": "email"}],
            "workflow": graph.model_dump(),
            "status": status,
            "created_at": at,
            "updated_at": at,
            **fields,
        }
    )
    stored = add_campaign(tenant_id, campaign)
    flow_triggers.publish(tenant_id, stored)
    return stored


def enrol_contact(
    tenant_id: str,
    campaign: Campaign,
    contact_id: str,
    *,
    event: TriggerEvent | None = None,
    now: datetime | None = None,
) -> None:
    """Enrol a contact on the flow's trigger through the enrolment service, which queues
    its first wake (held, without a wake, while the flow is a draft or paused)."""
    at = now or clock.now()
    fired = None
    if event is not None:
        fired = TimelineEvent(
            id=event.id,
            name=event.name,
            occurred_at=event.occurred_at,
            received_at=at,
            source="test",
            properties=dict(event.properties),
        )
    [answer] = enrol_contacts(tenant_id, campaign.id, [contact_id], at, event=fired)
    assert answer.outcome == "enrolled", answer


def outcomes(tenant_id: str, campaign_id: str, contact_id: str) -> list[tuple[str, str]]:
    """The trace as (node, outcome) pairs, oldest first."""
    trace = enrolments.read_trace(tenant_id, campaign_id, contact_id)
    return [(entry.node_id, entry.outcome) for entry in trace]
