"""Flow use cases (docs/flows.md): create and edit a workflow, move it through its life
(activate, pause, resume, complete, cancel), delete it, dry-run an edit, test a node.

As for broadcasts (chalicelib.services.campaigns), a request is decided in full before
anything is written: the graph is sound (``load_workflow``, at the API's edge), and what
it names of the tenant's data is there and fits (every template and sender of every send
node exists and speaks the node's channel, every template renders in the sandbox, every
segment and list exists). Every problem found is reported at once, as the graph's own
problems are (a 422 whose ``details`` list them).

After every write that changes a flow's status or graph its triggers are published
(``store.flow_triggers.publish``), so events and segment changes enrol into exactly the
live flows; its EventBridge Scheduler schedules (``ends_at``, ``trigger.scheduled``) are
armed or disarmed to match (``pipeline.flow_scheduling``). A side effect that fails after
the status was written puts the status back (the caller sees the error, nothing stays
half-done); publishing is idempotent and repeated by the next change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain import campaigns as domain
from chalicelib.domain.campaigns import (
    FINAL_STATUSES,
    Action,
    Campaign,
    CampaignFields,
    NewCampaign,
    Step,
    check_flow_ready,
    new_campaign,
    new_campaign_id,
    transition,
)
from chalicelib.domain.errors import (
    InvalidTransition,
    NotFound,
    ValidationFailed,
    ValidationFailures,
)
from chalicelib.domain.flows.graph import Node, Workflow, load_workflow
from chalicelib.domain.flows.nodes import SegmentTrigger, SendAction
from chalicelib.domain.flows.step import ExitReason
from chalicelib.domain.templates import RenderError, check_renders
from chalicelib.pipeline import flow_scheduling
from chalicelib.pipeline.messages import FlowWake
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import enrolments as enrolment_service
from chalicelib.services import segment_triggers
from chalicelib.services.campaigns import (
    CheckedTestSend,
    audience_problems,
    channels_of,
    checked_addresses,
    default_sender,
)
from chalicelib.services.notices import campaign_paused, notify_webhooks
from chalicelib.store import campaigns as store
from chalicelib.store import enrolments, flow_triggers
from chalicelib.store.segments import get_segments
from chalicelib.store.senders import get_sender
from chalicelib.store.templates import get_template

Problem = dict[str, str]


# -- checks ------------------------------------------------------------------------------
def problems(tenant_id: str, campaign: Campaign) -> list[Problem]:
    """Everything of the tenant's data the flow names that is missing or does not fit."""
    found = list(audience_problems(tenant_id, campaign.audience))
    if campaign.workflow is not None:
        for index, node in enumerate(campaign.workflow.nodes):
            found.extend(_node_problems(tenant_id, index, node))
    return found


def _node_problems(tenant_id: str, index: int, node: Node) -> Iterator[Problem]:
    where = f"workflow.nodes.{index}.config"
    config = node.config
    if isinstance(config, SegmentTrigger) and not get_segments(tenant_id, [config.segment_id]):
        yield _problem(f"{where}.segment_id", node, f"segment '{config.segment_id}' not found")
    if not isinstance(config, SendAction):
        return
    pools = (
        ("template", "template_ids", config.template_ids, get_template),
        ("sender", "sender_ids", config.sender_ids or [], get_sender),
    )
    for kind, field, ids, read in pools:
        channels = channels_of(read, tenant_id, ids)
        for n, item_id in enumerate(ids):
            channel = channels.get(item_id)
            if channel is None:
                yield _problem(f"{where}.{field}.{n}", node, f"{kind} '{item_id}' not found")
            elif channel != config.channel:
                yield _problem(
                    f"{where}.{field}.{n}",
                    node,
                    f"{kind} '{item_id}' is for {channel}; this node sends {config.channel}",
                )
            elif kind == "template":
                yield from _render_problems(tenant_id, f"{where}.{field}.{n}", node, item_id)


def _render_problems(tenant_id: str, field: str, node: Node, template_id: str) -> Iterator[Problem]:
    """A template that breaks the sandbox's rules or budgets (``check_renders``)."""
    try:
        check_renders(get_template(tenant_id, template_id))
    except RenderError as error:
        message = f"template '{template_id}' cannot render: {error.detail}"
        yield _problem(f"{field}.{error.field}", node, message)


def _sender_problems(tenant_id: str, workflow: Workflow) -> Iterator[Problem]:
    """A send node without senders uses the tenant's default sender of its channel: one
    must exist before the flow may send."""
    defaults: dict[str, bool] = {}
    for index, node in enumerate(workflow.nodes):
        config = node.config
        if not isinstance(config, SendAction) or config.sender_ids:
            continue
        if config.channel not in defaults:
            defaults[config.channel] = default_sender(tenant_id, config.channel) is not None
        if not defaults[config.channel]:
            yield _no_sender(index, node, config.channel)


def _no_sender(index: int, node: Node, channel: str) -> Problem:
    return _problem(
        f"workflow.nodes.{index}.config.sender_ids",
        node,
        f"no sender_ids and the tenant has no {channel} sender",
    )


def _problem(field: str, node: Node, message: str) -> Problem:
    return {"field": field, "message": f"node '{node.id}': {message}"}


def _refuse(found: list[Problem]) -> None:
    if found:
        raise ValidationFailures(found)


# -- create and edit ---------------------------------------------------------------------
def create(tenant_id: str, fields: NewCampaign, now: datetime) -> Campaign:
    """A new draft workflow; 422 listing every problem of what it names."""
    draft = new_campaign(new_campaign_id(now), 0, fields, now)
    _refuse(problems(tenant_id, draft))
    campaign = store.add_campaign(tenant_id, draft)
    _publish(tenant_id, campaign, now)
    return campaign


def edit(tenant_id: str, campaign_id: str, fields: CampaignFields, now: datetime) -> Campaign:
    """Edit a draft or paused flow (an active one is 409 ``campaign_locked``: pause first).

    Contacts standing on a node the edit removes are woken, and leave the flow with
    reason ``node_removed`` when their step finds the node gone.
    """
    before = store.get_campaign(tenant_id, campaign_id)
    decided = domain.edit(before, fields, now)
    if decided is before:
        return before
    _refuse(problems(tenant_id, decided))
    after = store.update_with(tenant_id, campaign_id, lambda c: domain.edit(c, fields, now))
    _publish(tenant_id, after, now)
    flow_scheduling.follow(tenant_id, after, now)  # a paused flow's ends_at may have moved
    wake_removed(tenant_id, before, after)
    return after


def _publish(tenant_id: str, campaign: Campaign, now: datetime) -> None:
    """Make the trigger index say what the flow triggers now, and let the segments it
    starts or stops watching take their new baseline at once (docs/flows.md, "Segment
    triggers")."""
    flow_triggers.publish(tenant_id, campaign)
    segment_triggers.on_watch_changed(tenant_id, now)


def removed_nodes(before: Workflow | None, after: Workflow | None) -> list[str]:
    """The ids of ``before``'s nodes that ``after`` no longer has, in graph order."""
    if before is None:
        return []
    kept = set(after.by_id) if after is not None else set()
    return [node.id for node in before.nodes if node.id not in kept]


def wake_removed(tenant_id: str, before: Campaign, after: Campaign) -> int:
    """Queue a FlowWake for every enrolment standing on a node the edit removed: the step
    executor exits it with ``node_removed``. Returns how many were woken."""
    gone = removed_nodes(before.workflow, after.workflow)
    if not gone:
        return 0
    wakes = [
        FlowWake(
            tenant_id=tenant_id,
            campaign_id=after.id,
            contact_id=enrolment.contact_id,
            visit=enrolment.visit,
        ).as_message()
        for enrolment in enrolments.standing_on(tenant_id, after.id, gone)
    ]
    if wakes:
        enqueue("flows", wakes)
    return len(wakes)


@dataclass(frozen=True)
class EditCheck:
    """A dry run of a graph edit: its problems, and who waits on the nodes it removes."""

    problems: list[Problem]
    waiting_on_removed: dict[str, int]


def check_edit(tenant_id: str, campaign_id: str, payload: object) -> EditCheck:
    """What applying ``payload`` as the flow's graph would do, writing nothing."""
    campaign = store.get_campaign(tenant_id, campaign_id)
    if campaign.family != "flow":
        raise ValidationFailed("only a flow has a workflow to check", field="campaign_id")
    try:
        workflow = load_workflow(payload)
    except ValidationFailures as failures:
        return EditCheck(problems=failures.details, waiting_on_removed={})
    candidate = campaign.model_copy(update={"workflow": workflow})
    found = problems(tenant_id, candidate)
    gone = removed_nodes(campaign.workflow, workflow)
    waiting = dict.fromkeys(gone, 0)
    for enrolment in enrolments.standing_on(tenant_id, campaign.id, gone):
        waiting[enrolment.node_id] += 1
    return EditCheck(problems=found, waiting_on_removed=waiting)


# -- the life cycle ----------------------------------------------------------------------
def activate(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Start a draft flow: its triggers enrol from now on (before ``starts_at`` entries
    are refused as ``before_start``). 422 when it is not ready."""
    current = store.get_campaign(tenant_id, campaign_id)
    transition(current.status, "activate", current.family)  # 409 before any 422
    check_flow_ready(current, now)
    assert current.workflow is not None
    _refuse(problems(tenant_id, current) + list(_sender_problems(tenant_id, current.workflow)))
    return _move(tenant_id, campaign_id, "activate", now)


def pause(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Hold an active flow: triggers still enrol (held), nothing advances."""
    return _move(tenant_id, campaign_id, "pause", now)


def resume(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    return _move(tenant_id, campaign_id, "resume", now)


def complete(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """End a flow as done (on request or at ``ends_at``): nobody enters any more."""
    return _move(tenant_id, campaign_id, "complete", now)


def cancel(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    return _move(tenant_id, campaign_id, "cancel", now)


def lifecycle(tenant_id: str, campaign_id: str, action: Action, now: datetime) -> Campaign:
    """The flow move ``action`` by name, for dialects that set a status field (seed 001's
    ``status``, seed 000's ``enabled``): the same checks and consequences as the routes."""
    if action == "activate":
        return activate(tenant_id, campaign_id, now)
    return _move(tenant_id, campaign_id, action, now)


def _move(tenant_id: str, campaign_id: str, action: Action, now: datetime) -> Campaign:
    """One status change of a flow and what must follow it. A broadcast asked to make a
    flow's move is refused as the state machine refuses it (409 naming its state)."""
    current = store.get_campaign(tenant_id, campaign_id)
    if current.family != "flow":
        raise InvalidTransition(current.status, domain.ACTION_TARGETS_BY_FAMILY["flow"][action])
    done = store.change(tenant_id, campaign_id, action, now)
    try:
        flow_scheduling.follow(tenant_id, done.after, now)
    except Exception:
        store.restore(tenant_id, done, now)
        flow_scheduling.follow(tenant_id, done.before, now)
        raise
    _publish(tenant_id, done.after, now)
    after = done.after
    if after.status == "active":  # activated or resumed: whoever was held moves on
        enrolment_service.wake_held(tenant_id, campaign_id, now)
    elif after.status == "paused":
        notify_webhooks([campaign_paused(tenant_id, after, now)])
    elif after.status in FINAL_STATUSES:
        enrolment_service.remove_flow_enrolments(
            tenant_id, campaign_id, ExitReason.CAMPAIGN_ENDED, now
        )
    return after


def delete(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Delete a draft or finished flow; its triggers, schedules and enrolments (a draft
    may hold some, enrolled by hand) go with it."""
    domain.ensure_deletable(store.get_campaign(tenant_id, campaign_id))
    enrolment_service.remove_flow_enrolments(tenant_id, campaign_id, ExitReason.CAMPAIGN_ENDED, now)
    deleted = store.delete_campaign(tenant_id, campaign_id)
    flow_triggers.withdraw(tenant_id, campaign_id)
    flow_scheduling.disarm(deleted)
    return deleted


# -- test sends --------------------------------------------------------------------------
def check_node_test(
    tenant_id: str, campaign_id: str, node_id: str, addresses: list[str]
) -> CheckedTestSend:
    """Decide a test send of one send node: the node's message to ``addresses`` (422 when
    the node is not a send node; its content checked as at save)."""
    campaign = store.get_campaign(tenant_id, campaign_id)
    workflow = campaign.workflow
    node = workflow.by_id.get(node_id) if workflow is not None else None
    if node is None:
        raise NotFound(f"node '{node_id}' not found", field="node_id")
    config = node.config
    if not isinstance(config, SendAction):
        raise ValidationFailed(f"node '{node_id}' is a {node.kind}, not a send", field="node_id")
    valid = checked_addresses(config.channel, addresses)
    assert workflow is not None
    index = workflow.nodes.index(node)
    _refuse(list(_node_problems(tenant_id, index, node)))
    senders = list(config.sender_ids or [])
    if not senders:
        default = default_sender(tenant_id, config.channel)
        if default is None:
            _refuse([_no_sender(index, node, config.channel)])
        else:
            senders = [default.id]
    step = Step(channel=config.channel, template_ids=list(config.template_ids), sender_ids=senders)
    message = campaign.model_copy(update={"channel": config.channel, "steps": [step]})
    return CheckedTestSend(message, valid)
