"""Campaigns in DynamoDB, their status changes, and the index of scheduled start times.

Layout (scope prefixes added by ScopedTable):
- ``T#<tenant>#CAMPAIGNS / <campaign id>``   the campaign; ids sort by creation time, so
  "newest first" is a reverse Query of the partition
- ``T#<tenant>#NUMBER#campaign / <n>``       its numeric id (chalicelib.store.numbering)
- ``SYS#DUE / <scheduled_at>#<tenant>#<id>`` one entry per scheduled campaign (and per
  live flow with an ``ends_at``, marked ``due: end``), in time order across all tenants:
  the overdue sweep reads only the entries that are past due, never any tenant's campaigns

Every write of a campaign is conditional on the status and ``revision`` it was read with
(optimistic locking) and bumps the revision, so two concurrent actions cannot both
succeed from the same state: the loser re-reads and is refused by the state machine
(``InvalidTransition`` naming the state it found), which is how a start cannot happen
twice. A due entry is written BEFORE the campaign becomes scheduled and removed AFTER it
stops being scheduled, so a scheduled campaign always has one; a leftover entry (a lost
race, a failed removal) is harmless because a start that is not due is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from chalicelib.domain.campaigns import (
    Action,
    Campaign,
    CampaignFields,
    CampaignFilter,
    NewCampaign,
    Ordering,
    SortKey,
    advance,
    edit,
    ensure_deletable,
    is_campaign_id,
    new_campaign,
    new_campaign_id,
    sort_key,
    with_progress,
)
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.observability import logger
from chalicelib.store.numbering import allocate_number, release_number, resolve_number
from chalicelib.store.table import (
    Condition,
    ConditionFailed,
    ScopedTable,
    system_table,
    tenant_table,
)

DueKind = Literal["start", "end"]
_CAMPAIGNS = "CAMPAIGNS"
_DUE = "DUE"
NUMBER_KIND = "campaign"
# Listings that are not in key order read the tenant's campaigns into memory; a tenant
# has at most thousands of campaigns, and past this many such a listing is refused.
LISTING_CAP = 10_000
_READ_PAGE = 1000
_WRITE_ATTEMPTS = 5
_POSITION_PREFIX = "o."


@dataclass(frozen=True)
class Change:
    """A campaign as it was read and as it was written by one action."""

    before: Campaign
    after: Campaign


@dataclass(frozen=True)
class DueEntry:
    """A scheduled campaign's start time, or a live flow's end (``ends_at``), in the
    cross-tenant due index."""

    tenant_id: str
    campaign_id: str
    scheduled_at: datetime
    due: DueKind = "start"


def _document(campaign: Campaign) -> dict[str, Any]:
    return campaign.model_dump(mode="json", exclude_none=True)


def _not_found(campaign_id: str) -> NotFound:
    return NotFound(f"campaign '{campaign_id}' not found", field="campaign_id")


# -- reads -----------------------------------------------------------------------------
def get_campaign(tenant_id: str, campaign_id: str) -> Campaign:
    """The campaign (strongly consistent read); NotFound for an unknown or malformed id."""
    key = campaign_key(campaign_id)
    item = tenant_table(tenant_id).get(*key) if key else None
    if item is None:
        raise _not_found(campaign_id)
    return Campaign.model_validate(item)


def campaign_key(campaign_id: str) -> tuple[str, str] | None:
    """The key ``get_campaign`` reads (None for a malformed id), for a batched read."""
    return (_CAMPAIGNS, campaign_id) if is_campaign_id(campaign_id) else None


def get_campaign_by_number(tenant_id: str, number: int) -> Campaign:
    """The campaign with this numeric id (seed 003 names campaigns by number)."""
    campaign_id = resolve_number(tenant_id, NUMBER_KIND, number)
    if campaign_id is None:
        raise NotFound(f"campaign {number} not found", field="number")
    return get_campaign(tenant_id, campaign_id)


def list_campaigns(
    tenant_id: str,
    filters: CampaignFilter,
    ordering: Ordering = "-created",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Campaign], str | None]:
    """One page of the tenant's campaigns and the cursor of the next (None at the end).

    Unfiltered and by creation time, a page is one Query in key order. Anything else
    (filters, other orderings) reads the partition page by page, at most ``LISTING_CAP``
    campaigns, filters and sorts in memory, and pages by position: the cursor holds the
    last item's sort key, so items created or deleted between pages shift nothing.
    """
    table = tenant_table(tenant_id)
    if ordering in ("created", "-created") and not filters.active:
        if cursor and cursor.startswith(_POSITION_PREFIX):
            raise ValidationFailed("cursor belongs to another listing", field="cursor")
        page = table.query(
            _CAMPAIGNS, limit=limit, cursor=cursor, newest_first=ordering == "-created"
        )
        return [Campaign.model_validate(i) for i in page.items], page.cursor
    descending = ordering.startswith("-")
    matching = matching_campaigns(tenant_id, filters, ordering)
    if cursor:
        position = _decode_position(cursor, ordering)
        matching = [c for c in matching if _beyond(sort_key(c, ordering), position, descending)]
    page_items = matching[:limit]
    more = len(matching) > limit
    return page_items, _encode_position(
        ordering, sort_key(page_items[-1], ordering)
    ) if more else None


def matching_campaigns(
    tenant_id: str, filters: CampaignFilter, ordering: Ordering = "-created"
) -> list[Campaign]:
    """Every campaign that ``filters`` match, in ``ordering``: what a listing by numbered
    pages needs (its count, any offset). Reads the partition; at most ``LISTING_CAP``."""
    return sorted(
        (c for c in _read_all(tenant_table(tenant_id)) if filters.matches(c)),
        key=lambda c: sort_key(c, ordering),
        reverse=ordering.startswith("-"),
    )


def _read_all(table: ScopedTable) -> list[Campaign]:
    campaigns: list[Campaign] = []
    for item in table.query_all(_CAMPAIGNS, limit=_READ_PAGE):
        if len(campaigns) == LISTING_CAP:
            raise ValidationFailed(
                f"more than {LISTING_CAP} campaigns: only the unfiltered listing by creation "
                "time is available",
                field="ordering",
            )
        campaigns.append(Campaign.model_validate(item))
    return campaigns


def _encode_position(ordering: Ordering, key: SortKey) -> str:
    raw = json.dumps({"o": ordering, "k": list(key)}, separators=(",", ":")).encode()
    return _POSITION_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_position(cursor: str, ordering: Ordering) -> SortKey:
    invalid = ValidationFailed("cursor is not valid for this listing", field="cursor")
    if not cursor.startswith(_POSITION_PREFIX):
        raise invalid
    encoded = cursor.removeprefix(_POSITION_PREFIX)
    try:
        plain = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        raise invalid from None
    key = plain.get("k") if isinstance(plain, dict) else None
    if plain.get("o") != ordering or not isinstance(key, list) or len(key) != 3:
        raise invalid
    missing, value, campaign_id = key
    if not isinstance(missing, bool) or not isinstance(campaign_id, str):
        raise invalid
    if not (value is None or isinstance(value, (str, int))):
        raise invalid
    return (missing, value, campaign_id)


def _beyond(key: SortKey, position: SortKey, descending: bool) -> bool:
    try:
        return key < position if descending else key > position
    except TypeError:  # a hand-made cursor with a value of the wrong type
        raise ValidationFailed("cursor is not valid for this listing", field="cursor") from None


# -- writes ----------------------------------------------------------------------------
def create_campaign(tenant_id: str, fields: NewCampaign, now: datetime) -> Campaign:
    """A new draft; its number is allocated only once the fields are known to be valid."""
    return add_campaign(tenant_id, new_campaign(new_campaign_id(now), 0, fields, now))


def add_campaign(tenant_id: str, draft: Campaign) -> Campaign:
    """Store a new campaign decided in full by the caller, numbering it first."""
    campaign = draft.model_copy(
        update={"number": allocate_number(tenant_id, NUMBER_KIND, draft.id)}
    )
    tenant_table(tenant_id).put(
        _CAMPAIGNS, campaign.id, _document(campaign), condition=Condition.absent()
    )
    return campaign


def update_campaign(
    tenant_id: str, campaign_id: str, fields: CampaignFields, now: datetime
) -> Campaign:
    """Apply a PATCH; CampaignLocked unless the campaign is a draft or scheduled."""
    return update_with(tenant_id, campaign_id, lambda before: edit(before, fields, now))


def update_with(
    tenant_id: str, campaign_id: str, decide: Callable[[Campaign], Campaign]
) -> Campaign:
    """Write ``decide(campaign)`` over the campaign as one conditional write (re-read and
    re-decided when another write came first); ``decide`` refuses by raising."""
    for _ in range(_WRITE_ATTEMPTS):
        before = get_campaign(tenant_id, campaign_id)
        after = decide(before)
        if after is before:
            return before
        try:
            return _commit(tenant_id, before, after)
        except ConditionFailed:
            continue
    raise _busy()


def delete_campaign(tenant_id: str, campaign_id: str) -> Campaign:
    """Delete a campaign that cannot send any more (draft or finished); returns it.

    Its counters and ledger stay where the pipeline wrote them (their own partitions).
    """
    for _ in range(_WRITE_ATTEMPTS):
        before = get_campaign(tenant_id, campaign_id)
        ensure_deletable(before)
        try:
            tenant_table(tenant_id).delete(_CAMPAIGNS, campaign_id, condition=_unchanged(before))
        except ConditionFailed:
            continue
        release_number(tenant_id, NUMBER_KIND, before.number)
        return before
    raise _busy()


def change(
    tenant_id: str, campaign_id: str, action: Action, now: datetime, **fields: Any
) -> Change:
    """Apply ``action`` (see ``chalicelib.domain.campaigns.advance``) as one conditional write.

    A concurrent write makes the condition fail: the campaign is read again and the
    action re-decided from what is there, so a second ``start`` finds ``calculating`` and
    raises InvalidTransition instead of starting twice.
    """
    for _ in range(_WRITE_ATTEMPTS):
        before = get_campaign(tenant_id, campaign_id)
        after = advance(before, action, now, **fields)
        try:
            return Change(before, _commit(tenant_id, before, after))
        except ConditionFailed:
            continue
    raise _busy()


def apply_action(
    tenant_id: str, campaign_id: str, action: Action, now: datetime, **fields: Any
) -> Campaign:
    """The campaign after ``action``; what the pipeline calls (start, planned, complete…)."""
    return change(tenant_id, campaign_id, action, now, **fields).after


def record_progress(tenant_id: str, campaign_id: str, now: datetime, **fields: Any) -> Campaign:
    """Record pipeline progress (``PROGRESS_FIELDS``) without changing the status."""
    for _ in range(_WRITE_ATTEMPTS):
        before = get_campaign(tenant_id, campaign_id)
        try:
            return _commit(tenant_id, before, with_progress(before, now, **fields))
        except ConditionFailed:
            continue
    raise _busy()


def restore(tenant_id: str, done: Change, now: datetime) -> Campaign | None:
    """Undo ``done`` if nothing has changed the campaign since; None if something has.

    Used when the side effect that must accompany a status change (the schedule, the
    start message) failed, so that the campaign does not claim what did not happen.
    """
    previous = done.before.model_copy(update={"updated_at": now})
    try:
        return _commit(tenant_id, done.after, previous)
    except ConditionFailed:
        return None


def _busy() -> Conflict:
    return Conflict("the campaign kept changing during this request; try again", field="status")


def _unchanged(campaign: Campaign) -> Condition:
    """The stored campaign is still the one read: same status, same revision."""
    return Condition(
        "#cond_status = :cond_status AND #cond_revision = :cond_revision",
        {"#cond_status": "status", "#cond_revision": "revision"},
        {":cond_status": campaign.status, ":cond_revision": campaign.revision},
    )


def _commit(tenant_id: str, before: Campaign, after: Campaign) -> Campaign:
    """Write ``after`` over ``before`` (conditional on ``before``), keeping the due index."""
    written = after.model_copy(update={"revision": before.revision + 1})
    due_before, due_after = _due_at(before), _due_at(written)
    if due_after is not None and due_after != due_before:
        _put_due(tenant_id, written.id, due_after, "end" if written.family == "flow" else "start")
    old, new = _document(before), _document(written)
    tenant_table(tenant_id).update(
        _CAMPAIGNS,
        written.id,
        set_values={k: v for k, v in new.items() if old.get(k) != v},
        remove=[k for k in old if k not in new],
        condition=_unchanged(before),
    )
    if due_before is not None and due_before != due_after:
        _drop_due(tenant_id, written.id, due_before)
    return written


# -- the due index -----------------------------------------------------------------------
def _due_at(campaign: Campaign) -> datetime | None:
    if campaign.family == "flow":
        return campaign.ends_at if campaign.status in ("active", "paused") else None
    return campaign.scheduled_at if campaign.status == "scheduled" else None


def _due_key(tenant_id: str, campaign_id: str, at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}#{tenant_id}#{campaign_id}"


def _put_due(tenant_id: str, campaign_id: str, at: datetime, due: DueKind) -> None:
    item = {"tenant_id": tenant_id, "campaign_id": campaign_id, "scheduled_at": at.isoformat()}
    if due != "start":
        item["due"] = due
    system_table().put(_DUE, _due_key(tenant_id, campaign_id, at), item)


def _drop_due(tenant_id: str, campaign_id: str, at: datetime) -> None:
    """Best effort: a leftover entry only makes the sweep send a start that is refused."""
    try:
        system_table().delete(_DUE, _due_key(tenant_id, campaign_id, at))
    except ClientError:
        logger.warning(
            "could not remove a due entry", extra={"campaign_id": campaign_id}, exc_info=True
        )


def due_entries(until: datetime, limit: int) -> list[DueEntry]:
    """The oldest ``limit`` entries due at or before ``until``, across all tenants.

    Reads in time order and stops at the first entry past ``until``: the cost is the
    overdue entries plus at most one page, however many campaigns are scheduled later.
    """
    entries: list[DueEntry] = []
    cursor = None
    while len(entries) < limit:
        page = system_table().query(_DUE, limit=min(100, limit), cursor=cursor, consistent=True)
        for item in page.items:
            entry = DueEntry(
                tenant_id=item["tenant_id"],
                campaign_id=item["campaign_id"],
                scheduled_at=datetime.fromisoformat(item["scheduled_at"]),
                due=item.get("due", "start"),
            )
            if entry.scheduled_at > until or len(entries) == limit:
                return entries
            entries.append(entry)
        if page.cursor is None:
            break
        cursor = page.cursor
    return entries


def forget_due(entries: Iterable[DueEntry]) -> None:
    """Remove swept entries (25 per BatchWriteItem)."""
    system_table().batch_delete(
        (_DUE, _due_key(e.tenant_id, e.campaign_id, e.scheduled_at)) for e in entries
    )
