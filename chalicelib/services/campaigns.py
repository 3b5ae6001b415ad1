"""Campaign use cases: create, edit, schedule, send now, pause, resume, cancel, delete and
test-send, for every API (the native ``/v1`` routes and each seed dialect).

One rule leaves nothing half-made, whatever the request combines:

1. **Decide in full.** The outcome is computed on the pure domain (``edit``, then the
   move's ``advance``) and everything it names is read and checked: the lists and
   segments of its audience exist; its templates and senders exist and are of its
   channel; the move is legal from the current status. Any refusal raises a domain
   error (chalicelib.domain.errors) before anything is written.
2. **Write in order**: a new SMS template (seed 002's ``sms_body``), the campaign, its
   move. When a later write fails after the decision (a lost race, AWS failing), the
   earlier writes of the same request are undone, so the caller's error is the whole
   story: nothing it asked for stayed behind.

A move that starts sending (schedule, send now) may ask for the tenant's default sender
of the channel when the campaign names none (the seeds have no senders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from chalicelib.channels.http import check_url
from chalicelib.domain import campaigns as domain
from chalicelib.domain.campaigns import (
    DELETABLE_STATUSES,
    Audience,
    Campaign,
    CampaignFields,
    CampaignFilter,
    Family,
    NewCampaign,
    Ordering,
    advance,
    check_channels,
    check_pools,
    new_campaign,
    new_campaign_id,
    resolve_scheduled_at,
)
from chalicelib.domain.contacts import EmailAddress, PhoneNumber
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.senders import Sender, usability
from chalicelib.domain.templates import (
    RenderError,
    SmsTemplate,
    Template,
    check_renders,
    check_template,
)
from chalicelib.observability import logger
from chalicelib.pipeline import scheduling
from chalicelib.pipeline.messages import IterationStart
from chalicelib.pipeline.queues import enqueue
from chalicelib.services.notices import campaign_paused, notify_webhooks
from chalicelib.store import campaigns as store
from chalicelib.store.counters import read_counts, skipped_by_reason
from chalicelib.store.lists import get_lists
from chalicelib.store.segments import get_segments
from chalicelib.store.senders import get_sender, list_senders
from chalicelib.store.templates import create_template, delete_template, get_template

TEST_ADDRESSES_MAX = 10
# A test send goes to addresses on email and SMS; on the other channels to contacts (by
# id), whose device, chat or inbox the channel finds.
_CONTACT_ID = TypeAdapter(Annotated[str, Field(pattern=r"^c_[0-9a-f]{32}$")])
_ADDRESS_TYPES: dict[str, TypeAdapter[str]] = {
    "email": TypeAdapter(EmailAddress),
    "sms": TypeAdapter(PhoneNumber),
    "push": _CONTACT_ID,
    "telegram": _CONTACT_ID,
    "onsite": _CONTACT_ID,
}
# Stands for the SMS template a request's text becomes, while the request is decided.
_PENDING_SMS_TEMPLATE = "pending-sms-template"
_SENDER_PAGE = 100

MoveKind = Literal["schedule", "unschedule", "send_now"]


@dataclass(frozen=True)
class Move:
    """The status change a request asks for besides its edit.

    ``schedule`` needs ``when`` (read in ``timezone``, else the campaign's, when it has no
    offset) and reschedules a scheduled campaign; ``send_now`` starts a draft or scheduled
    campaign at once; ``unschedule`` takes a scheduled one back to draft.
    """

    kind: MoveKind
    when: datetime | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class Plan:
    """A draft's planned time, and whether it is held (settled but not armed: seed 003's
    SCHEDULED). A draft never starts by itself; ``schedule`` without a time arms it at the
    time it holds.

    ``when`` (without an offset: in the campaign's timezone) replaces the time it holds;
    None keeps it, unless ``clear``. ``held`` None keeps the flag.
    """

    when: datetime | None = None
    clear: bool = False
    held: bool | None = None


# -- reads -------------------------------------------------------------------------------
def get(tenant_id: str, campaign_id: str, *, family: Family | None = None) -> Campaign:
    """The campaign; ``family``: only one of that family (the seed dialects speak only of
    broadcasts: a flow is not found through them)."""
    return _of_family(store.get_campaign(tenant_id, campaign_id), family)


def get_by_number(tenant_id: str, number: int, *, family: Family | None = None) -> Campaign:
    return _of_family(store.get_campaign_by_number(tenant_id, number), family)


def _of_family(campaign: Campaign, family: Family | None) -> Campaign:
    if family is not None and campaign.family != family:
        raise NotFound(f"campaign '{campaign.id}' not found", field="campaign_id")
    return campaign


def page(
    tenant_id: str, filters: CampaignFilter, ordering: Ordering, limit: int, cursor: str | None
) -> tuple[list[Campaign], str | None]:
    """One cursor page of the tenant's campaigns matching ``filters``."""
    return store.list_campaigns(tenant_id, filters, ordering, limit, cursor)


def matching(tenant_id: str, filters: CampaignFilter, ordering: Ordering) -> list[Campaign]:
    """Every campaign matching ``filters`` (for APIs that count and number their pages)."""
    return store.matching_campaigns(tenant_id, filters, ordering)


def counts(tenant_id: str, campaign: Campaign) -> dict[str, int]:
    """The campaign's counters (sent, failed, skipped…, events); none before it started."""
    return read_counts(tenant_id, campaign.id) if campaign.started_at is not None else {}


def skipped(counts: Mapping[str, int]) -> dict[str, int]:
    """Recipients not sent to, by reason, out of the campaign's ``counts``."""
    return skipped_by_reason(counts)


# -- checks ------------------------------------------------------------------------------
def check_callback(fields: CampaignFields) -> None:
    """422 when ``event_callback`` aims at an address Herald must never call (SSRF).

    The URL's shape is checked by the model; where it points needs DNS and the loopback
    setting, so that half runs here, for every API that accepts the field.
    """
    if fields.event_callback:
        check_url(fields.event_callback, field="event_callback")


def check_sendable(
    tenant_id: str, campaign: Campaign, pending: Mapping[str, str] | None = None
) -> None:
    """422 naming the first list, segment, template or sender that is missing or of the
    wrong channel: what must hold before a campaign may be scheduled or sent.

    ``pending``: templates this request is about to create (id → channel).
    """
    for problem in audience_problems(tenant_id, campaign.audience):
        raise ValidationFailed(problem["message"], field=problem["field"])
    _check_content(tenant_id, campaign, pending or {})


def audience_problems(tenant_id: str, audience: Audience) -> Iterator[dict[str, str]]:
    """Each list and segment of ``audience`` that does not exist, as ``{field, message}``."""
    sources = (
        ("list", "list_ids", audience.list_ids, get_lists),
        ("segment", "segment_ids", audience.segment_ids, get_segments),
        ("list", "within_list_ids", audience.within_list_ids, get_lists),
    )
    for kind, field, ids, read in sources:
        found = read(tenant_id, ids) if ids else {}
        for index, source_id in enumerate(ids):
            if source_id not in found:
                yield {
                    "field": f"audience.{field}.{index}",
                    "message": f"{kind} '{source_id}' not found",
                }


def _check_content(tenant_id: str, campaign: Campaign, pending: Mapping[str, str]) -> None:
    templates = {**channels_of(get_template, tenant_id, campaign.template_ids), **pending}
    check_channels(campaign, templates, channels_of(get_sender, tenant_id, campaign.sender_ids))


def _check_renders(tenant_id: str, campaign: Campaign) -> None:
    """422 naming ``template_ids.<n>.<part>`` when a template of the campaign breaks the
    sandbox's rules or budgets for a sample contact (``templates.check_renders``)."""
    for index, template_id in enumerate(campaign.template_ids):
        try:
            template = get_template(tenant_id, template_id)
        except NotFound:
            continue  # a template this request creates was checked when it was made
        try:
            check_renders(template)
        except RenderError as error:
            raise RenderError(
                f"template_ids.{index}.{error.field}",
                error.reason,
                f"template '{template_id}' cannot render: {error.detail}",
            ) from None


def channels_of(
    read: Callable[[str, str], Template | Sender], tenant_id: str, ids: list[str]
) -> dict[str, str]:
    """The channel of each id that exists (a pool has at most 20: one GetItem each)."""
    found: dict[str, str] = {}
    for item_id in ids:
        try:
            found[item_id] = read(tenant_id, item_id).channel
        except NotFound:
            continue
    return found


def default_sender(tenant_id: str, channel: str) -> Sender | None:
    """The tenant's first sender of ``channel`` (lowest number), usable ones first: the
    sender of a campaign made through an API that has no senders (the seeds)."""
    senders: list[Sender] = []
    cursor: str | None = None
    while True:
        found, cursor = list_senders(tenant_id, cursor=cursor, limit=_SENDER_PAGE)
        senders.extend(s for s in found if s.channel == channel)
        if cursor is None:
            break
    return min(
        senders,
        key=lambda s: (not usability(s, s.verification).usable, s.number),
        default=None,
    )


# -- deciding --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Decision:
    """What a request will write: the edit (with its template and sender filled in), the
    SMS template to create first, and the move's fields."""

    fields: CampaignFields
    sms_template: SmsTemplate | None
    move: Move | None
    move_fields: dict[str, Any]
    plan: Plan | None


def _decide(
    tenant_id: str,
    before: Campaign,
    fields: CampaignFields,
    now: datetime,
    *,
    move: Move | None,
    plan: Plan | None,
    sms_text: str | None,
    use_default_sender: bool,
) -> _Decision:
    """Refuse (raising) anything the request cannot do; else what it will write."""
    check_callback(fields)
    sms_template = None
    pending: dict[str, str] = {}
    if sms_text is not None:
        sms_template = SmsTemplate(body=sms_text)
        check_template(sms_template)
        fields = _with(fields, template_ids=[_PENDING_SMS_TEMPLATE])
        pending = {_PENDING_SMS_TEMPLATE: "sms"}
    edited = domain.edit(before, fields, now) if fields.model_fields_set or not move else before
    starts = move is not None and move.kind in ("schedule", "send_now")
    if use_default_sender and starts and not edited.sender_ids:
        sender = default_sender(tenant_id, edited.channel)
        if sender is not None:
            fields = _with(fields, sender_ids=[sender.id])
            edited = domain.edit(before, fields, now)
    move_fields = _move_fields(edited, move)
    outcome = advance(edited, _action(edited, move), now, **move_fields) if move else edited
    if plan is not None:
        outcome = _planned(outcome, plan, now)
    if outcome.status == "scheduled":
        check_sendable(tenant_id, outcome, pending)
        # Every schedule and send-now (and every edit of a scheduled campaign) is decided
        # here: a template that can only fail never reaches the send workers.
        _check_renders(tenant_id, outcome)
    return _Decision(fields, sms_template, move, move_fields, plan)


def _with(fields: CampaignFields, **values: Any) -> CampaignFields:
    """``fields`` with ``values`` set as if the caller had sent them."""
    given = {name: getattr(fields, name) for name in fields.model_fields_set}
    return type(fields).model_validate({**given, **values})


def _action(campaign: Campaign, move: Move) -> domain.Action:
    if move.kind == "schedule" and campaign.status == "scheduled":
        return "reschedule"
    return move.kind


def _move_fields(campaign: Campaign, move: Move | None) -> dict[str, Any]:
    """A schedule's time: the one given, else the one the draft holds."""
    if move is None or move.kind != "schedule":
        return {}
    if move.when is not None:
        return {"scheduled_at": resolve_scheduled_at(move.when, move.timezone or campaign.timezone)}
    if campaign.status == "draft" and campaign.scheduled_at is not None:
        return {"scheduled_at": campaign.scheduled_at}
    raise ValidationFailed("a time is needed to schedule the campaign", field="scheduled_at")


def _planned(campaign: Campaign, plan: Plan, now: datetime) -> Campaign:
    at = campaign.scheduled_at
    if plan.when is not None:
        at = resolve_scheduled_at(plan.when, campaign.timezone)
    elif plan.clear:
        at = None
    held = campaign.held if plan.held is None else plan.held
    return domain.planned(campaign, now, scheduled_at=at, held=held)


# -- writing ---------------------------------------------------------------------------------
Undo = Callable[[Callable[[], Any]], None]


@contextmanager
def _undone_on_failure(campaign_id: str | None) -> Iterator[Undo]:
    """Collects how to undo each write made inside; if a later one fails, undoes the
    earlier ones (newest first) and re-raises. An undo that fails too is logged."""
    undos: list[Callable[[], Any]] = []
    try:
        yield undos.append
    except Exception:
        for undo in reversed(undos):
            try:
                undo()
            except Exception:
                logger.exception("could not undo a write", extra={"campaign_id": campaign_id})
        raise


def _write(tenant_id: str, decision: _Decision, undo: Undo, campaign_name: str) -> CampaignFields:
    """Create the decided SMS template (undone on failure); the fields naming it."""
    if decision.sms_template is None:
        return decision.fields
    template = create_template(tenant_id, f"sms_body of {campaign_name}", decision.sms_template)
    undo(lambda: delete_template(tenant_id, template.id))
    return _with(decision.fields, template_ids=[template.id])


def _perform(tenant_id: str, campaign_id: str, decision: _Decision, now: datetime) -> Campaign:
    move = decision.move
    assert move is not None
    if move.kind == "schedule":
        return scheduling.schedule_campaign(
            tenant_id, campaign_id, decision.move_fields["scheduled_at"], move.timezone, now
        )
    if move.kind == "unschedule":
        return scheduling.unschedule(tenant_id, campaign_id, now)
    return scheduling.send_now(tenant_id, campaign_id, now)


def _move_and_plan(
    tenant_id: str, campaign: Campaign, decision: _Decision, now: datetime, undo: Undo
) -> Campaign:
    """The decided move, then the decided plan (a plan follows only an unschedule: the
    decision refuses a plan for a campaign that is not a draft)."""
    if decision.move is not None:
        before = campaign
        campaign = _perform(tenant_id, campaign.id, decision, now)
        if decision.move.kind == "unschedule" and before.scheduled_at is not None:
            armed_at = before.scheduled_at
            undo(lambda: scheduling.schedule_campaign(tenant_id, before.id, armed_at, None, now))
    plan = decision.plan
    if plan is not None:
        campaign = store.update_with(tenant_id, campaign.id, lambda c: _planned(c, plan, now))
    return campaign


def _discard(tenant_id: str, campaign_id: str, now: datetime) -> None:
    """Remove a campaign this request created (cancelled first if it got scheduled)."""
    if store.get_campaign(tenant_id, campaign_id).status not in DELETABLE_STATUSES:
        scheduling.cancel(tenant_id, campaign_id, now)
    store.delete_campaign(tenant_id, campaign_id)


def _reverted(before: Campaign, fields: CampaignFields) -> CampaignFields:
    """The edit that puts back what ``fields`` changed on ``before``."""
    values: dict[str, Any] = {}
    for name in fields.model_fields_set:
        if name in ("template_ids", "sender_ids"):
            values[name] = getattr(before.main_step, name)
        else:
            values[name] = getattr(before, name)
    return CampaignFields.model_validate(values)


# -- use cases -------------------------------------------------------------------------------
def create(
    tenant_id: str,
    fields: NewCampaign,
    now: datetime,
    *,
    move: Move | None = None,
    plan: Plan | None = None,
    sms_text: str | None = None,
    use_default_sender: bool = False,
) -> Campaign:
    """A new draft, and the move the request asks for (a seed may create it scheduled).

    ``sms_text`` becomes the campaign's SMS template; ``use_default_sender``: a campaign
    that starts without a sender gets the tenant's default one for its channel.
    """
    draft = new_campaign(new_campaign_id(now), 0, fields, now)
    decision = _decide(
        tenant_id,
        draft,
        fields,
        now,
        move=move,
        plan=plan,
        sms_text=sms_text,
        use_default_sender=use_default_sender,
    )
    with _undone_on_failure(None) as undo:
        written = _write(tenant_id, decision, undo, fields.name)
        campaign = store.create_campaign(tenant_id, NewCampaign.model_validate(_dump(written)), now)
        undo(lambda: _discard(tenant_id, campaign.id, now))
        campaign = _move_and_plan(tenant_id, campaign, decision, now, undo)
    return campaign


def edit(
    tenant_id: str,
    campaign_id: str,
    fields: CampaignFields,
    now: datetime,
    *,
    move: Move | None = None,
    plan: Plan | None = None,
    sms_text: str | None = None,
    use_default_sender: bool = False,
) -> Campaign:
    """Edit a draft or scheduled campaign (a scheduled one stays ready to start), then
    make the move the request asks for. See ``create`` for the options."""
    before = store.get_campaign(tenant_id, campaign_id)
    decision = _decide(
        tenant_id,
        before,
        fields,
        now,
        move=move,
        plan=plan,
        sms_text=sms_text,
        use_default_sender=use_default_sender,
    )
    with _undone_on_failure(campaign_id) as undo:
        written = _write(tenant_id, decision, undo, fields.name or before.name)
        campaign = before
        if written.model_fields_set:
            campaign = store.update_campaign(tenant_id, campaign_id, written, now)
            revert = _reverted(before, written)
            undo(lambda: store.update_campaign(tenant_id, campaign_id, revert, now))
        campaign = _move_and_plan(tenant_id, campaign, decision, now, undo)
    return campaign


def _dump(fields: CampaignFields) -> dict[str, Any]:
    return {name: getattr(fields, name) for name in fields.model_fields_set}


def schedule(
    tenant_id: str,
    campaign_id: str,
    when: datetime | None,
    timezone: str | None,
    now: datetime,
    *,
    use_default_sender: bool = False,
) -> Campaign:
    """Schedule a draft, or reschedule a scheduled campaign, once all it names is there.

    ``when`` None: the time the draft holds (422 naming ``scheduled_at`` when it holds
    none). ``when`` without an offset is read in ``timezone`` (which the campaign then keeps),
    else in the campaign's timezone.
    """
    return edit(
        tenant_id,
        campaign_id,
        CampaignFields(),
        now,
        move=Move("schedule", when, timezone),
        use_default_sender=use_default_sender,
    )


def send_now(
    tenant_id: str, campaign_id: str, now: datetime, *, use_default_sender: bool = False
) -> Campaign:
    """Start a draft or scheduled campaign now, once all it names is there."""
    return edit(
        tenant_id,
        campaign_id,
        CampaignFields(),
        now,
        move=Move("send_now"),
        use_default_sender=use_default_sender,
    )


def unschedule(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Take a scheduled campaign back to draft; its schedule is deleted."""
    return edit(tenant_id, campaign_id, CampaignFields(), now, move=Move("unschedule"))


def pause(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Pause a sending campaign: its remaining batches wait (webhook ``campaign.paused``)."""
    paused = store.apply_action(tenant_id, campaign_id, "pause", now)
    notify_webhooks([campaign_paused(tenant_id, paused, now)])
    return paused


def resume(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Resume a paused campaign where it stopped.

    An automation paused between iterations (its delivery gate, or a person) starts the
    next iteration at once: resuming is the decision the gate was waiting for.
    """
    resumed = store.apply_action(tenant_id, campaign_id, "resume", now)
    state = resumed.iterations
    if state is not None and state.waiting:
        start = IterationStart(
            tenant_id=tenant_id, campaign_id=campaign_id, iteration=state.current_iteration + 1
        )
        enqueue("control", [start.as_message()])
    return resumed


def cancel(tenant_id: str, campaign_id: str, now: datetime) -> Campaign:
    """Cancel a campaign that is not finished; nothing more is sent."""
    return scheduling.cancel(tenant_id, campaign_id, now)


def delete(
    tenant_id: str, campaign_id: str, now: datetime, *, cancel_first: bool = False
) -> Campaign:
    """Delete a draft or finished campaign; returns it as it was.

    ``cancel_first``: a scheduled campaign is cancelled (so it never starts), then deleted.
    One that is sending is refused either way (409).
    """
    current = store.get_campaign(tenant_id, campaign_id)
    if cancel_first and current.status == "scheduled":
        scheduling.cancel(tenant_id, campaign_id, now)
    else:
        domain.ensure_deletable(current)
    store.delete_campaign(tenant_id, campaign_id)
    return current


def check_test_send(tenant_id: str, campaign_id: str, addresses: list[str]) -> CheckedTestSend:
    """Decide a test send (any state, not counted): every address is of the campaign's
    channel (422 naming ``addresses.<n>``), and its templates and senders exist and fit
    the channel. The sender's ``send_test`` then sends it (it sits above the services)."""
    campaign = store.get_campaign(tenant_id, campaign_id)
    valid = checked_addresses(campaign.channel, addresses)
    check_pools(campaign)
    _check_content(tenant_id, campaign, {})
    return CheckedTestSend(campaign, valid)


def checked_addresses(channel: str, addresses: list[str]) -> list[str]:
    """``addresses`` as valid addresses of ``channel``; 422 naming ``addresses.<n>``."""
    address = _ADDRESS_TYPES[channel]
    valid = []
    for index, given in enumerate(addresses):
        try:
            valid.append(address.validate_python(given))
        except PydanticValidationError as error:
            message = error.errors(include_url=False)[0]["msg"]
            raise ValidationFailed(
                f"not a valid {channel} address: {message}", field=f"addresses.{index}"
            ) from None
    return valid


@dataclass(frozen=True)
class CheckedTestSend:
    """A decided test send: the campaign and the addresses, each valid for its channel."""

    campaign: Campaign
    addresses: list[str]
