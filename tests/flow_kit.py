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
from chalicelib.domain.flows.graph import load_workflow
from chalicelib.store import flow_triggers
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
