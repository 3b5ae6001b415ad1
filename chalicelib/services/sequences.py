"""Sequences (seed 001) as use cases: the campaign, its steps, its status and enrolment.

What a sequence is and how its steps become a flow is ``chalicelib.domain.sequences``;
this module reads what a decision needs, writes it, and publishes the flow's triggers
after every status or graph change (``store.flow_triggers``). Each step's content is a
Herald email template, written before the campaign that refers to it and removed again
when the campaign write is refused, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from chalicelib.domain import sequences as domain
from chalicelib.domain.campaigns import Campaign, CampaignFilter, CampaignStatus, new_campaign_id
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.sequences import SequenceStep
from chalicelib.domain.templates import EmailTemplate, check_template
from chalicelib.services import enrolments, flows
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store
from chalicelib.store import counters, flow_triggers, senders, templates


# -- reads ---------------------------------------------------------------------------------
def get(tenant_id: str, campaign_id: str) -> Campaign:
    """The sequence; NotFound for any other campaign and for a (soft) deleted one."""
    campaign = store.get_campaign(tenant_id, campaign_id)
    if campaign.type != domain.SEQUENCE_TYPE or campaign.dialect_fields.get("is_deleted"):
        raise NotFound(f"campaign '{campaign_id}' not found", field="campaign_id")
    return campaign


def every(tenant_id: str) -> list[Campaign]:
    """The tenant's sequences that are not deleted, newest first."""
    found = store.matching_campaigns(tenant_id, CampaignFilter(), "-created")
    return [
        c
        for c in found
        if c.type == domain.SEQUENCE_TYPE and not c.dialect_fields.get("is_deleted")
    ]


def counts(tenant_id: str, campaign: Campaign) -> dict[str, int]:
    """The campaign's counters with its steps' (``step_counter``), one BatchGetItem."""
    return counters.read_counts(tenant_id, campaign.id)


def sender_addresses(tenant_id: str, sender_ids: list[str]) -> list[str]:
    """The From addresses of a pool, in its order (a sender deleted since is left out)."""
    addresses = []
    for sender_id in sender_ids:
        try:
            sender = senders.get_sender(tenant_id, sender_id)
        except NotFound:
            continue
        if sender.from_email:
            addresses.append(sender.from_email)
    return addresses


def check_sender(tenant_id: str, sender_id: str) -> bool:
    """Whether ``sender_id`` is one of the tenant's email senders."""
    try:
        return senders.get_sender(tenant_id, sender_id).channel == "email"
    except NotFound:
        return False


# -- the campaign ----------------------------------------------------------------------------
def create(
    tenant_id: str, changes: Mapping[str, Any], status: CampaignStatus | None, now: datetime
) -> Campaign:
    """A new sequence (a draft, then moved to ``status`` if one is given)."""
    unit = get_settings().sequence_delay_unit_seconds
    draft = domain.new_sequence(new_campaign_id(now), changes, now, unit)
    campaign = store.add_campaign(tenant_id, draft)
    if status is not None:
        campaign = _move(tenant_id, campaign, status, now)
    return campaign


def edit(
    tenant_id: str,
    campaign_id: str,
    changes: Mapping[str, Any],
    status: CampaignStatus | None,
    now: datetime,
) -> Campaign:
    """Apply a client's changes, then move to ``status`` (the edit comes first, so a
    paused sequence can be changed and resumed in one request)."""
    get(tenant_id, campaign_id)
    unit = get_settings().sequence_delay_unit_seconds
    campaign = store.update_with(
        tenant_id, campaign_id, lambda before: domain.edited(before, changes, now, unit)
    )
    if status is not None:
        campaign = _move(tenant_id, campaign, status, now)
    flow_triggers.publish(tenant_id, campaign)
    return campaign


def delete(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Soft delete: ``is_deleted`` is set and a live sequence is cancelled first, so a
    deleted sequence sends nothing more; its record, counters and ledger stay."""
    campaign = get(tenant_id, campaign_id)
    if campaign.status in ("active", "paused"):
        campaign = _move(tenant_id, campaign, "cancelled", now)
    return edit(tenant_id, campaign.id, {"is_deleted": True}, None, now)


def _move(tenant_id: str, campaign: Campaign, target: CampaignStatus, now: datetime) -> Campaign:
    """Move a sequence along the flow state machine to ``target`` (``domain.moves``), each
    action through the flow service's life cycle (readiness, triggers, schedules, held
    enrolments woken, live ones ended)."""
    for action in domain.moves(campaign.status, target):
        campaign = flows.lifecycle(tenant_id, campaign.id, action, now)
    return campaign


# -- steps -----------------------------------------------------------------------------------
StepsChange = Callable[[list[SequenceStep]], list[SequenceStep]]


def step(campaign: Campaign, step_id: str) -> SequenceStep:
    found = next((s for s in domain.steps_of(campaign) if s.id == step_id), None)
    if found is None:
        raise NotFound(f"step '{step_id}' not found", field="step_id")
    return found


def add_step(
    tenant_id: str, campaign_id: str, fields: Mapping[str, Any], now: datetime
) -> tuple[Campaign, SequenceStep]:
    """A new step (``step_order`` defaults to after the last one) with its template."""
    campaign = get(tenant_id, campaign_id)
    existing = domain.steps_of(campaign)
    domain.check_editable(campaign)
    last = max((s.step_order for s in existing), default=0)
    values = {"step_order": last + 1, **fields, "id": str(uuid.uuid4())}
    draft = SequenceStep.model_validate(
        {**values, "template_id": "", "created_at": now, "updated_at": now}
    )
    template = templates.create_template(
        tenant_id, f"Sequence step {draft.id}", _content(draft, [*existing, draft])
    )
    made = draft.model_copy(update={"template_id": template.id})
    try:
        campaign = _store_steps(tenant_id, campaign.id, lambda steps: [*steps, made], now)
    except BaseException:
        templates.delete_template(tenant_id, template.id)  # nothing half-written
        raise
    _write_templates(tenant_id, domain.steps_of(campaign))
    return campaign, made


def edit_step(
    tenant_id: str, campaign_id: str, step_id: str, fields: Mapping[str, Any], now: datetime
) -> tuple[Campaign, SequenceStep]:
    """A step with ``fields`` changed; its template (and the ``Re:`` subjects) follow."""
    campaign = get(tenant_id, campaign_id)
    before = step(campaign, step_id)
    after = SequenceStep.model_validate({**before.model_dump(), **fields, "updated_at": now})
    _content(after, domain.steps_of(campaign))  # refused content refuses before any write
    campaign = _store_steps(
        tenant_id, campaign.id, lambda steps: [after if s.id == step_id else s for s in steps], now
    )
    _write_templates(tenant_id, domain.steps_of(campaign))
    return campaign, after


def remove_step(tenant_id: str, campaign_id: str, step_id: str, now: datetime) -> Campaign:
    campaign = get(tenant_id, campaign_id)
    removed = step(campaign, step_id)
    campaign = _store_steps(
        tenant_id, campaign.id, lambda steps: [s for s in steps if s.id != step_id], now
    )
    with contextlib.suppress(NotFound):  # removed by an earlier attempt of this request
        templates.delete_template(tenant_id, removed.template_id)
    _write_templates(tenant_id, domain.steps_of(campaign))
    return campaign


def _store_steps(tenant_id: str, campaign_id: str, change: StepsChange, now: datetime) -> Campaign:
    unit = get_settings().sequence_delay_unit_seconds
    campaign = store.update_with(
        tenant_id,
        campaign_id,
        lambda before: domain.with_steps(before, change(domain.steps_of(before)), now, unit),
    )
    flow_triggers.publish(tenant_id, campaign)
    return campaign


def _content(step: SequenceStep, steps: list[SequenceStep]) -> EmailTemplate:
    """A step's template content; ValidationFailed (naming subject, html or text) for
    content Herald's templates refuse."""
    try:
        content = EmailTemplate(
            subject=domain.template_subject(step, steps) or "(no subject)",
            html=domain.template_html(step),
            text=step.body_text if step.body_text.strip() else None,
        )
    except PydanticValidationError as error:
        problem = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in problem["loc"]) or None
        raise ValidationFailed(problem["msg"], field=field) from None
    check_template(content)
    return content


def _write_templates(tenant_id: str, steps: list[SequenceStep]) -> None:
    """Every step's template as its step now reads (a later step's ``Re:`` subject
    follows the first step's)."""
    for each in steps:
        content = _content(each, steps)
        try:
            current = templates.get_template(tenant_id, each.template_id)
            if current.content != content:
                templates.update_template(tenant_id, each.template_id, content=content)
        except NotFound:
            continue


# -- enrolment -------------------------------------------------------------------------------
def enrol(
    tenant_id: str, campaign_id: str, contact_ids: list[str], now: datetime
) -> list[enrolments.EnrolmentAnswer]:
    """Enrol contacts through the flow-entry service (answers in input order); it queues
    each enrolment's FlowWake itself."""
    campaign = get(tenant_id, campaign_id)
    return enrolments.enrol_contacts(tenant_id, campaign.id, contact_ids, now)
