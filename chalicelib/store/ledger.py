"""The send ledger: leases on units of work, and one record per message sent.

SES has no idempotency token, so "exactly once" lives here (docs/engine.md has the whole
argument). Two kinds of item:

Work items, one per unit of work that a queue message names: a planner page
(``PLAN#<campaign>`` / page number) or a send batch (``BATCH#<campaign>`` / batch id). A
worker first takes the item's lease with one conditional UpdateItem; a second delivery of
the same message while the lease runs is told ``busy``, one after the unit finished is
told ``done``. Whatever a unit must never redo differently on a retry (the planner's page
of recipients, a batch's deferred children) is stored on its item (``remember``,
``mark_once``); ``finish`` marks it done and keeps its outcome counts on it, which the
completion check reconciles the campaign's counters with (docs/engine.md: why no
transaction).

Message records, one per (campaign, step, contact, channel) for a broadcast, and per
(campaign, step, contact, channel, occurrence) for a flow (the occurrence is the enrolment's
visit: a node sent again on re-entry or in a loop is a new message, a retry of the same
step is not), written with one conditional PutItem right after the provider accepted the
message (or refused it for good). A batch retried after a crash reads its recipients'
records with one BatchGetItem and skips those already sent; a flow step reads its one
record in one BatchGetItem with its address's suppression entries (``store.send_reads``).

Layout (ScopedTable adds the tenant scope ``T#<tenant>#`` to every partition):
- ``PLAN#<campaign>`` / ``<page:06d>``: lease_until, attempt, planned (the page's batches,
  members, skips, next cursor), done_at, outcome
- ``BATCH#<campaign>`` / ``<batch id>``: lease_until, attempt, children_<attempt> (batches
  split off for quiet hours), done_at, outcome
- ``LEDGER#<campaign>#<step>#<shard 00..15>`` / ``<contact>#<channel>`` (a flow's:
  ``<contact>#<channel>#<occurrence>``): the message record
  (status, message_id, provider_message_id, address, batch_id, template_id, sender_id,
  sent_at, error, expires_at; then whatever feedback adds). Frequency caps are counted
  elsewhere, only for campaigns that have one (``store.enrolments``, ``CAPS#<contact>``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ConfigDict

from chalicelib.domain.delivery import parse_message_key
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.model import Model
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

WorkKind = Literal["PLAN", "BATCH", "FLOWFIRE"]
LEDGER_SHARDS = 16
RETENTION = timedelta(days=180)  # message records expire (TTL) after this
_LIST_READS_PER_CALL = 2 * LEDGER_SHARDS  # DynamoDB pages one listing call reads at most


# -- work items ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkUnit:
    """One unit of work a queue message names: a planner page or a send batch."""

    tenant_id: str
    campaign_id: str
    kind: WorkKind
    unit_id: str

    @property
    def key(self) -> tuple[str, str]:
        return f"{self.kind}#{self.campaign_id}", self.unit_id


@dataclass(frozen=True)
class LeaseResult:
    """The outcome of ``take_lease``.

    ``taken``: the caller holds the unit until ``until``; ``state`` is everything earlier
    attempts stored on it (``attempt`` > 1 means one of them may have done part of it).
    ``busy``: another worker holds it until ``until``. ``done``: it finished already.
    """

    status: Literal["taken", "busy", "done"]
    attempt: int = 0
    until: datetime | None = None
    state: dict[str, Any] = field(default_factory=dict)


def take_lease(unit: WorkUnit, now: datetime, seconds: int) -> LeaseResult:
    """Claim a unit of work for ``seconds`` (one conditional UpdateItem).

    The claim succeeds when the unit is not done and nobody's lease is running; an expired
    lease is taken over (its holder crashed or ran out of time).
    """
    table = tenant_table(unit.tenant_id)
    until = now + timedelta(seconds=seconds)
    free = Condition(
        "attribute_not_exists(#c_done) AND (attribute_not_exists(#c_lease) OR #c_lease <= :c_now)",
        {"#c_done": "done_at", "#c_lease": "lease_until"},
        {":c_now": int(now.timestamp())},
    )
    try:
        item = table.update(
            *unit.key,
            # The unit's id again as an attribute: a Query of the units (the watchdog's)
            # does not return the keys.
            set_values={"lease_until": int(until.timestamp()), "unit_id": unit.unit_id},
            add_values={"attempt": 1},
            condition=free,
        )
    except ConditionFailed:
        current = table.get(*unit.key) or {}
        if current.get("done_at"):
            return LeaseResult("done", attempt=int(current.get("attempt", 0)), state=current)
        held_until = datetime.fromtimestamp(int(current.get("lease_until", 0)), UTC)
        return LeaseResult("busy", attempt=int(current.get("attempt", 0)), until=held_until)
    return LeaseResult("taken", attempt=int(item["attempt"]), until=until, state=item)


def release_lease(unit: WorkUnit, attempt: int) -> bool:
    """Give a unit back before its lease runs out (the holder re-queued the rest of it).

    Only the holder of ``attempt`` may: a holder whose lease ran out while it still ran
    (a stalled process) must not free the lease a newer attempt took over. False when
    the lease is no longer ours.
    """
    try:
        tenant_table(unit.tenant_id).update(
            *unit.key,
            set_values={"lease_until": 0},
            condition=Condition(
                "attribute_exists(pk) AND #c_a = :c_a AND attribute_not_exists(#c_d)",
                {"#c_a": "attempt", "#c_d": "done_at"},
                {":c_a": attempt},
            ),
        )
    except ConditionFailed:
        return False
    return True


def mark_once(unit: WorkUnit, marker: str, value: Any) -> bool:
    """Set ``marker`` on a unit unless it is set already (one conditional UpdateItem).

    False means an earlier attempt (or a concurrent one) set it first.
    """
    try:
        tenant_table(unit.tenant_id).update(
            *unit.key,
            set_values={marker: value},
            condition=Condition("attribute_not_exists(#c_m)", {"#c_m": marker}),
        )
    except ConditionFailed:
        return False
    return True


def finish(unit: WorkUnit, now: datetime, counts: Mapping[str, int]) -> bool:
    """Mark a unit done, keeping its outcome counts on it; False if it was done already.

    The counts kept here are the truth the completion check reconciles the campaign's
    counters with (``unit_outcomes``).
    """
    try:
        tenant_table(unit.tenant_id).update(
            *unit.key,
            set_values={"done_at": now.isoformat(), "outcome": dict(counts)},
            condition=Condition("attribute_not_exists(#c_d)", {"#c_d": "done_at"}),
        )
    except ConditionFailed:
        return False
    return True


def unit_outcomes(tenant_id: str, campaign_id: str, kind: WorkKind) -> Iterator[dict[str, Any]]:
    """Every unit of a kind of one campaign, as stored (read once, when it completes)."""
    return tenant_table(tenant_id).query_all(f"{kind}#{campaign_id}", limit=500, consistent=True)


def remember(unit: WorkUnit, values: Mapping[str, Any]) -> None:
    """Store ``values`` on a unit the caller holds (e.g. the planner's page of batches)."""
    tenant_table(unit.tenant_id).update(*unit.key, set_values=values)


# -- planned markers ----------------------------------------------------------------------
def _planned_key(campaign_id: str, contact_id: str) -> tuple[str, str]:
    return f"PLANNED#{campaign_id}#{ledger_shard(contact_id):02d}", contact_id


def mark_planned(
    tenant_id: str, campaign_id: str, contact_ids: Iterable[str], now: datetime
) -> None:
    """Remember that the planner took these contacts (one BatchWriteItem per 25; writing
    one twice is harmless). A walk over several lists de-duplicates on these markers."""
    expires_at = int((now + RETENTION).timestamp())
    tenant_table(tenant_id).batch_put(
        (*_planned_key(campaign_id, contact_id), {"expires_at": expires_at})
        for contact_id in contact_ids
    )


def planned_among(tenant_id: str, campaign_id: str, contact_ids: Sequence[str]) -> set[str]:
    """The contacts among ``contact_ids`` the planner took already (consistent BatchGetItem)."""
    keys = [_planned_key(campaign_id, contact_id) for contact_id in contact_ids]
    found = tenant_table(tenant_id).batch_get(keys, consistent=True)
    return {sort for _, sort in found}


# -- message records ----------------------------------------------------------------------
class MessageRecord(Model):
    """One message of a campaign step to one contact on one channel.

    ``status`` starts as ``sent`` (the provider accepted it) or ``failed`` (it refused for
    good); feedback moves it on (delivered, opened, bounced…) and may add attributes such
    as ``delivered_at``, kept as extra fields.
    """

    model_config = ConfigDict(extra="allow")

    campaign_id: str
    step: str
    contact_id: str
    channel: str
    message_id: str
    status: str
    address: str
    batch_id: str
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    template_id: str | None = None
    sender_id: str | None = None
    error: str | None = None
    occurrence: str | None = None  # a flow message's enrolment visit (None: a broadcast's)


def ledger_shard(contact_id: str) -> int:
    return zlib.crc32(contact_id.encode()) % LEDGER_SHARDS


def _ledger_partition(campaign_id: str, step: str, shard: int) -> str:
    return f"LEDGER#{campaign_id}#{step}#{shard:02d}"


def _message_key(
    campaign_id: str, step: str, contact_id: str, channel: str, occurrence: str | None = None
) -> tuple[str, str]:
    sort = (
        f"{contact_id}#{channel}" if occurrence is None else f"{contact_id}#{channel}#{occurrence}"
    )
    return _ledger_partition(campaign_id, step, ledger_shard(contact_id)), sort


def _stored(record: MessageRecord) -> dict[str, Any]:
    stored = record.model_dump(mode="json", exclude_none=True)
    stamp = record.sent_at or datetime.now(UTC)
    stored["expires_at"] = int((stamp + RETENTION).timestamp())
    return stored


def record_message(tenant_id: str, record: MessageRecord) -> bool:
    """Write a message's record if it has none yet (one conditional PutItem).

    False means another attempt recorded it first: the caller must count a duplicate
    prevented, not a second send.
    """
    try:
        tenant_table(tenant_id).put(
            *_key_of_record(record),
            _stored(record),
            condition=Condition.absent(),
        )
    except ConditionFailed:
        return False
    return True


def _key_of_record(record: MessageRecord) -> tuple[str, str]:
    return _message_key(
        record.campaign_id, record.step, record.contact_id, record.channel, record.occurrence
    )


def record_messages(tenant_id: str, records: Sequence[MessageRecord]) -> None:
    """Write the records of a group of messages with one BatchWriteItem per 25 (a group
    commit), unconditionally: BatchWriteItem takes no condition.

    Only for records no one else can have written: a send batch's lease holder, well
    inside its lease, for recipients its own ledger read found without a record (the
    sender's ``_commit`` is that guard; docs/engine.md, "Group commit"). Anyone else
    writes with ``record_message``, which never overwrites a record.
    """
    tenant_table(tenant_id).batch_put(
        (*_key_of_record(record), _stored(record)) for record in records
    )


def messages_among(
    tenant_id: str,
    campaign_id: str,
    step: str,
    channel: str,
    contact_ids: Iterable[str],
    *,
    consistent: bool = True,
) -> dict[str, MessageRecord]:
    """The records that exist for these contacts, by contact id (one BatchGetItem per 100).

    ``consistent=False`` halves the read cost; right only when no record can have been
    written in the last second (see the sender's first attempt at a batch).
    """
    keys = [_message_key(campaign_id, step, c, channel) for c in contact_ids]
    found = tenant_table(tenant_id).batch_get(keys, consistent=consistent)
    records = (MessageRecord.model_validate(item) for item in found.values())
    return {record.contact_id: record for record in records}


def step_messages_of(
    tenant_id: str, campaign_id: str, step: str, contact_id: str, channel: str
) -> list[MessageRecord]:
    """Every record of one flow step to one contact (each visit's, in no set order; one
    consistent Query): a sequence's later step finds the messages it answers."""
    partition = _ledger_partition(campaign_id, step, ledger_shard(contact_id))
    items = tenant_table(tenant_id).query_all(
        partition, sort_prefix=f"{contact_id}#{channel}#", consistent=True
    )
    return [MessageRecord.model_validate(item) for item in items]


def message_key(campaign_id: str, message_id: str) -> tuple[str, str]:
    """The item key of a message's record (NotFound for an id that is not Herald's)."""
    return _key_of_message(campaign_id, message_id)


def _key_of_message(campaign_id: str, message_id: str) -> tuple[str, str]:
    try:
        step, contact_id, channel, occurrence = parse_message_key(message_id)
    except ValueError:
        raise NotFound(f"message '{message_id}' not found", field="message_id") from None
    return _message_key(campaign_id, step, contact_id, channel, occurrence)


def find_message(tenant_id: str, campaign_id: str, message_id: str) -> MessageRecord | None:
    """A message's record if it has one (one consistent GetItem)."""
    item = tenant_table(tenant_id).get(*_key_of_message(campaign_id, message_id))
    return MessageRecord.model_validate(item) if item else None


def get_message(tenant_id: str, campaign_id: str, message_id: str) -> MessageRecord:
    """A message by Herald's message id (from the SES tag); NotFound if it has no record."""
    record = find_message(tenant_id, campaign_id, message_id)
    if record is None:
        raise NotFound(f"message '{message_id}' not found", field="message_id")
    return record


_PRESENT = Condition.present()


@functools.lru_cache(maxsize=64)
def _status_among(statuses: tuple[str, ...]) -> Condition:
    """The condition that a message exists with one of ``statuses`` (made once per set of
    statuses: feedback asks with one of a few sets for every event)."""
    placeholders = {f":c_s{i}": s for i, s in enumerate(statuses)} or {":c_s": ""}
    return Condition(
        f"attribute_exists(pk) AND #c_st IN ({', '.join(placeholders)})",
        {"#c_st": "status"},
        placeholders,
    )


def set_message_status(
    tenant_id: str,
    campaign_id: str,
    message_id: str,
    status: str,
    *,
    only_from: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> MessageRecord | None:
    """Move a message to ``status`` (and set ``values``), one conditional UpdateItem.

    ``only_from`` limits the move to messages currently in one of those statuses (feedback
    passes the statuses ranked below the new one, so late and duplicate events change
    nothing). Returns the updated record, or None when the condition kept it unchanged;
    NotFound when the message has no record.
    """
    key = _key_of_message(campaign_id, message_id)
    condition = _PRESENT if only_from is None else _status_among(tuple(only_from))
    table = tenant_table(tenant_id)
    try:
        item = table.update(
            *key, set_values={**(values or {}), "status": status}, condition=condition
        )
    except ConditionFailed:
        if table.get(*key) is None:
            raise NotFound(f"message '{message_id}' not found", field="message_id") from None
        return None
    return MessageRecord.model_validate(item)


def mark_message_event(
    tenant_id: str, campaign_id: str, message_id: str, attribute: str, value: Any
) -> MessageRecord | None:
    """Set ``attribute`` on an existing message only if it is not set yet (one conditional
    UpdateItem, no read).

    Feedback records when an event first happened this way when the event does not move
    the status (a delivery reported after the open), right after ``set_message_status``
    found the record. The record as it now is means this call recorded it; None that it
    was recorded already (a duplicate) or that the message has no record.
    """
    first_time = Condition(
        "attribute_exists(pk) AND attribute_not_exists(#c_a)", {"#c_a": attribute}
    )
    try:
        item = tenant_table(tenant_id).update(
            *_key_of_message(campaign_id, message_id),
            set_values={attribute: value},
            condition=first_time,
        )
    except ConditionFailed:
        return None
    return MessageRecord.model_validate(item)


def list_messages(
    tenant_id: str,
    campaign_id: str,
    steps: Sequence[str],
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MessageRecord], str | None]:
    """A page of a campaign's messages (optionally of one status) and the next cursor.

    Walks every step's shards in order. With a status filter a page may hold fewer than
    ``limit`` records (even none) while a cursor is still returned: each call reads at
    most ``_LIST_READS_PER_CALL`` DynamoDB pages. The listing ends when the cursor is None.
    """
    table = tenant_table(tenant_id)
    position, inner = _decode_list_cursor(cursor, len(steps) * LEDGER_SHARDS)
    found: list[MessageRecord] = []
    reads = 0
    while position < len(steps) * LEDGER_SHARDS and len(found) < limit:
        if reads == _LIST_READS_PER_CALL:
            return found, _encode_list_cursor(position, inner)
        step, shard = steps[position // LEDGER_SHARDS], position % LEDGER_SHARDS
        page = table.query(
            _ledger_partition(campaign_id, step, shard), limit=limit - len(found), cursor=inner
        )
        reads += 1
        found.extend(
            MessageRecord.model_validate(item)
            for item in page.items
            if status is None or item.get("status") == status
        )
        inner = page.cursor
        if inner is None:
            position += 1
    if position >= len(steps) * LEDGER_SHARDS:
        return found, None
    return found, _encode_list_cursor(position, inner)


def _encode_list_cursor(position: int, inner: str | None) -> str:
    plain = json.dumps({"at": position, "after": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def _decode_list_cursor(cursor: str | None, positions: int) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position, inner = plain["at"], plain["after"]
        if not isinstance(position, int) or not 0 <= position < positions:
            raise ValueError("position out of range")
        if inner is not None and not isinstance(inner, str):
            raise ValueError("bad inner cursor")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ValidationFailed("cursor is not valid", field="cursor") from error
    return position, inner
