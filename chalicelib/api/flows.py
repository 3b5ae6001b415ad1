"""Workflows' own routes: activate and complete them, dry-run a graph edit, test a node.

A workflow is a campaign (``type: "workflow"``) made, read, edited and deleted through
``/v1/campaigns`` and paused, resumed and cancelled by the same actions as a broadcast
(chalicelib.api.campaigns); what only a flow does is here. The model and its rules are
in docs/flows.md.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.campaigns import CampaignDetail, TestSend, TestSendResults
from chalicelib.api.models import ApiModel, Input
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.pipeline.send.trial import send_test
from chalicelib.services import flows, limits

blueprint = Blueprint(__name__)
_PATH = "/v1/campaigns/{campaign_id}"


class WorkflowCheck(Input):
    workflow: dict[str, Any] = Field(description="The graph to check: {nodes, edges}.")


class Problem(ApiModel):
    field: str
    message: str


class RemovedNode(ApiModel):
    node_id: str
    waiting: int = Field(description="Contacts standing on it now; the edit exits them.")


class WorkflowCheckResult(ApiModel):
    valid: bool
    problems: list[Problem] = Field(
        description="Every problem of the graph, or of what it names (templates, senders, "
        "segments), as a save would report them."
    )
    removed_nodes: list[RemovedNode] = Field(
        description="Nodes of the current graph the edit removes; applied, their contacts "
        "exit with reason node_removed."
    )


@endpoint(
    blueprint,
    f"{_PATH}/activate",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Activate a draft workflow: its triggers enrol from now on",
    response=CampaignDetail,
)
def activate_flow(call: Call) -> CampaignDetail:
    campaign = flows.activate(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/complete",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Complete an active or paused workflow: nobody enters, everyone waiting exits",
    response=CampaignDetail,
)
def complete_flow(call: Call) -> CampaignDetail:
    campaign = flows.complete(call.tenant_id, call.params["campaign_id"], clock.now())
    return CampaignDetail.read(call.tenant_id, campaign)


@endpoint(
    blueprint,
    f"{_PATH}/workflow/check",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Dry-run a graph edit: its problems and how many contacts wait on removed nodes",
    body=WorkflowCheck,
    response=WorkflowCheckResult,
)
def check_workflow(call: Call) -> WorkflowCheckResult:
    body: WorkflowCheck = call.body
    result = flows.check_edit(call.tenant_id, call.params["campaign_id"], body.workflow)
    return WorkflowCheckResult(
        valid=not result.problems,
        problems=[Problem.model_validate(p) for p in result.problems],
        removed_nodes=[
            RemovedNode(node_id=node_id, waiting=waiting)
            for node_id, waiting in result.waiting_on_removed.items()
        ],
    )


@endpoint(
    blueprint,
    f"{_PATH}/nodes/{{node_id}}/test",
    "POST",
    auth="tenant",
    tag="campaigns",
    summary="Send one send node's message to the given addresses only (not counted)",
    body=TestSend,
    response=TestSendResults,
)
def test_node(call: Call) -> TestSendResults:
    body: TestSend = call.body
    decided = flows.check_node_test(
        call.tenant_id, call.params["campaign_id"], call.params["node_id"], body.addresses
    )
    limits.charge_test_send(call.tenant_id, decided.campaign.channel, decided.addresses)
    return TestSendResults(results=send_test(call.tenant_id, decided.campaign, decided.addresses))
