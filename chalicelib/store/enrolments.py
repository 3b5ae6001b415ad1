"""Flow enrolments in DynamoDB: the enrolment, its trace, the due index, cap counters.

The step executor (``chalicelib.domain.flows.step``) decides; this module makes each
decision durable exactly once. ``commit_steps`` is the claim of one or more steps taken
in a row: ONE transaction that writes the enrolment as it is after the last, on condition
that it still stands on the first step's (node, visit), together with the steps' trace
entries. A redelivered step finds the condition false and changes nothing (docs/flows.md,
"Exactly once per step").

Layout (key strings from ``chalicelib.domain.flows.timers``; ScopedTable adds the scope):
- ``ENROL#<campaign>`` / ``<contact>``: the enrolment (tenant scope)
- ``TRACE#<campaign>#<contact>`` / ``<visit:010d>#0``: the trace entries of one claim
  (``entries``, in step order; ``visit`` is its first step's), expiring (TTL) after
  TRACE_RETENTION
- ``FLOWDUE#<minute>#<shard>`` / ``<tenant>#<campaign>#<contact>#<visit>`` (system scope):
  the due index the one-minute sweep reads; entries expire, they are never deleted
- ``CAPS#<contact>`` / ``-``: the contact's message counts per hour bucket (``t#<hour>``
  tenant-wide, ``c#<campaign>#<hour>`` per campaign) and a version ``v`` that makes
  ``count_send`` an atomic check-and-add
- ``ENROLLED#<contact>`` / ``<campaign>``: the flows a contact was ever enrolled in, written
  just before its enrolment (``index_contacts``), so an event, an unsubscribe or a deletion
  finds the contact's enrolments with one Query instead of a scan
- ``FLOWDEDUPE#<campaign>#<sha256 of the value>`` / ``-``: a business event (an order id,
  an event id) that enrolled someone; written in the same transaction as the enrolment,
  on condition that it is new, so the same event never enrols twice
- index ``gsi1``: ``ENROLSTATUS#<campaign>#<status>#<shard>`` / ``<contact>`` on every
  enrolment, status ``waiting | active | exited`` (``status_of``): the listing by status.
  16 shards (crc32 of the contact) because every step rewrites the enrolment, and one
  index partition per (flow, status) would take all of a big flow's writes
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.flows.policy import stale_buckets
from chalicelib.domain.flows.step import Enrolment, ExitReason, Step, TraceEntry, TriggerEvent
from chalicelib.domain.flows.timers import (
    DUE_RETENTION,
    FileDue,
    due_entry_of,
    due_key,
    due_partition,
    enrolment_key,
    minute_start,
)
from chalicelib.resources import TableSpec
from chalicelib.store.table import (
    Condition,
    ConditionFailed,
    system_table,
    tenant_table,
    transact_write,
)

TRACE_RETENTION = timedelta(days=90)
DEDUPE_RETENTION = timedelta(days=365)  # how long a business event is remembered per flow
STATUS_SHARDS = 16
# A due entry is ~180 bytes (its key and wake time) and DynamoDB returns up to 1 MB a page
# (~5,500 of them): pages of 4,000 read a shard's 3,125 entries (100,000 due in one
# minute) in one Query, where pages of 1,000 took 4 and pages of 100 took 32.
DUE_PAGE = 4_000
_STATUS_INDEX = "gsi1"
EnrolmentStatus = Literal["waiting", "active", "exited"]
ENROLMENT_STATUSES: tuple[EnrolmentStatus, ...] = ("waiting", "active", "exited")


@dataclass(frozen=True)
class DueEntry:
    """One waiting enrolment the sweep found under a minute."""

    tenant_id: str
    campaign_id: str
    contact_id: str
    visit: int
    wake_at: datetime


@dataclass(frozen=True)
class CapCounts:
    """A contact's counts per hour bucket, as read, with the version a write must match."""

    version: int
    tenant: Mapping[str, int]
    campaign: Mapping[str, int]
    all_buckets: Mapping[str, int]  # attribute name → count, for pruning


# -- enrolments -----------------------------------------------------------------------
def status_of(enrolment: Enrolment) -> EnrolmentStatus:
    """``exited``; ``waiting`` (on a timer or an event); else ``active`` (a step is due,
    or it is held while its flow is paused or a draft)."""
    if enrolment.exited:
        return "exited"
    return "waiting" if enrolment.wake_at is not None else "active"


def start(
    tenant_id: str,
    enrolment: Enrolment,
    previous: Enrolment | None,
    *,
    dedupe: Sequence[str] = (),
    now: datetime | None = None,
) -> bool:
    """Write a new enrolment, with the ``dedupe`` values (the business events that must
    enrol once) in the same transaction when there are any; False when another enrolment
    got there first or a dedupe value was seen already (the caller reads again to tell
    which). ``previous`` is the exited enrolment it replaces, if any. The contact's index
    item is ``index_contacts``'s, written first."""
    table = tenant_table(tenant_id)
    partition, sort = enrolment_key(enrolment.campaign_id, enrolment.contact_id)
    condition = Condition.absent() if previous is None else _standing_on(previous)
    stored, index = _stored(enrolment), _status_index(enrolment)
    try:
        if not dedupe:
            table.put(partition, sort, stored, condition=condition, index_keys=index)
            return True
        expires = int(((now or enrolment.entered_at) + DEDUPE_RETENTION).timestamp())
        requests = [
            table.put_request(partition, sort, stored, condition=condition, index_keys=index)
        ]
        requests += [
            table.put_request(
                _dedupe_partition(enrolment.campaign_id, value),
                "-",
                {TableSpec.ttl_attribute: expires},
                condition=Condition.absent(),
            )
            for value in dict.fromkeys(dedupe)
        ]
        transact_write(requests)
    except ConditionFailed:
        return False
    return True


def index_contacts(tenant_id: str, campaign_id: str, contact_ids: Iterable[str]) -> int:
    """Note the flow in each contact's index (``ENROLLED#<contact>``), 25 a BatchWriteItem,
    before their enrolments are written: an index item whose enrolment lost its race names
    a flow where the contact has no enrolment of this attempt, which readers take as it is
    (they read the enrolments themselves); an enrolment is never missing from the index."""
    return tenant_table(tenant_id).batch_put(
        (_contact_partition(c), campaign_id, {"campaign_id": campaign_id}) for c in contact_ids
    )


def read(tenant_id: str, campaign_id: str, contact_id: str) -> Enrolment | None:
    item = tenant_table(tenant_id).get(*enrolment_key(campaign_id, contact_id))
    return enrolment_from_item(campaign_id, contact_id, item) if item else None


def read_many(tenant_id: str, campaign_id: str, contact_ids: Iterable[str]) -> dict[str, Enrolment]:
    """The enrolments of ``contact_ids`` in one flow, by contact (BatchGetItem, consistent)."""
    keys = [enrolment_key(campaign_id, c) for c in contact_ids]
    found = tenant_table(tenant_id).batch_get(keys, consistent=True)
    return {sort: enrolment_from_item(campaign_id, sort, item) for (_, sort), item in found.items()}


def enrolments_of_contact(tenant_id: str, contact_id: str) -> list[Enrolment]:
    """Every enrolment of one contact, in any flow, exited ones included: one Query of the
    contact's index, one BatchGetItem of the enrolments."""
    table = tenant_table(tenant_id)
    campaigns = [
        item["campaign_id"]
        for item in table.query_all(_contact_partition(contact_id), consistent=True)
    ]
    found = table.batch_get((enrolment_key(c, contact_id) for c in campaigns), consistent=True)
    return [
        enrolment_from_item(c, contact_id, item)
        for c in campaigns
        if (item := found.get(enrolment_key(c, contact_id))) is not None
    ]


def list_by_status(
    tenant_id: str,
    campaign_id: str,
    statuses: Sequence[EnrolmentStatus] = ENROLMENT_STATUSES,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Enrolment], str | None]:
    """A page of a flow's enrolments in ``statuses`` and the cursor of the next (None at
    the end). Walks each status's shards in order; read from an index, so a step taken a
    moment ago may not show yet."""
    position, shard, inner = _decode_cursor(cursor, len(statuses))
    table = tenant_table(tenant_id)
    found: list[Enrolment] = []
    while len(found) < limit:
        page = table.query(
            _status_partition(campaign_id, statuses[position], shard),
            index=_STATUS_INDEX,
            limit=limit - len(found),
            cursor=inner,
        )
        found.extend(
            enrolment_from_item(campaign_id, item["contact_id"], item) for item in page.items
        )
        inner = page.cursor
        if inner is None:
            shard += 1
            if shard == STATUS_SHARDS:
                position, shard = position + 1, 0
                if position == len(statuses):
                    return found, None
    return found, _encode_cursor(position, shard, inner)


def all_in_status(
    tenant_id: str, campaign_id: str, statuses: Sequence[EnrolmentStatus]
) -> Iterator[Enrolment]:
    """Every enrolment of a flow in ``statuses``, page by page."""
    cursor: str | None = None
    while True:
        page, cursor = list_by_status(tenant_id, campaign_id, statuses, limit=500, cursor=cursor)
        yield from page
        if cursor is None:
            return


def purge_contact(tenant_id: str, contact_id: str) -> int:
    """Delete everything the flows keep about a deleted contact: its enrolments, their
    traces, its index and its cap counters. Returns how many items went."""
    table = tenant_table(tenant_id)
    keys: list[tuple[str, str]] = []
    for item in table.query_all(_contact_partition(contact_id), consistent=True):
        campaign_id = item["campaign_id"]
        trace = _trace_partition(campaign_id, contact_id)
        keys += [(trace, sort) for sort in _trace_sort_keys(tenant_id, campaign_id, contact_id)]
        keys.append(enrolment_key(campaign_id, contact_id))
        keys.append((_contact_partition(contact_id), campaign_id))
    keys.append((_caps_partition(contact_id), "-"))
    return table.batch_delete(keys)


def _trace_sort_keys(tenant_id: str, campaign_id: str, contact_id: str) -> list[str]:
    return [
        f"{int(item['visit']):010d}#{int(item['n'])}"
        for item in tenant_table(tenant_id).query_all(
            _trace_partition(campaign_id, contact_id), consistent=True
        )
    ]


def _contact_partition(contact_id: str) -> str:
    return f"ENROLLED#{contact_id}"


def _dedupe_partition(campaign_id: str, value: str) -> str:
    return f"FLOWDEDUPE#{campaign_id}#{hashlib.sha256(value.encode()).hexdigest()}"


def _status_partition(campaign_id: str, status: EnrolmentStatus, shard: int) -> str:
    return f"ENROLSTATUS#{campaign_id}#{status}#{shard:02d}"


def _status_index(enrolment: Enrolment) -> dict[str, tuple[str, str]]:
    shard = zlib.crc32(enrolment.contact_id.encode()) % STATUS_SHARDS
    partition = _status_partition(enrolment.campaign_id, status_of(enrolment), shard)
    return {_STATUS_INDEX: (partition, enrolment.contact_id)}


def _encode_cursor(position: int, shard: int, inner: str | None) -> str:
    plain = json.dumps({"status": position, "shard": shard, "after": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, statuses: int) -> tuple[int, int, str | None]:
    """The status (its position in the listing's), the shard and the position in it (the
    table refuses a position of another tenant's or flow's partition)."""
    if not cursor:
        return 0, 0, None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position, shard, inner = plain["status"], plain["shard"], plain["after"]
        if not isinstance(position, int) or not 0 <= position < statuses:
            raise ValueError("bad status")
        if not isinstance(shard, int) or not 0 <= shard < STATUS_SHARDS:
            raise ValueError("bad shard")
        if inner is not None and not isinstance(inner, str):
            raise ValueError("bad position")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ValidationFailed("cursor is not valid", field="cursor") from error
    return position, shard, inner


def commit_step(
    tenant_id: str, step: Step, now: datetime, also: Sequence[Mapping[str, Any]] = ()
) -> bool:
    """Claim ``step`` and record it (``commit_steps`` of one step)."""
    return commit_steps(tenant_id, [step], now, also)


def commit_steps(
    tenant_id: str, steps: Sequence[Step], now: datetime, also: Sequence[Mapping[str, Any]] = ()
) -> bool:
    """Claim ``steps`` (each taken from where the one before left the enrolment) and
    record them: the enrolment after the last and their trace, all or nothing.

    ONE transaction whatever the number of steps: the enrolment, on condition that it
    still stands on the first step's (node, visit); one trace item holding every entry of
    the steps; and ``also``, more requests of the same transaction (the contact's change,
    the steps' counts), which so happen exactly when the steps do. False when the
    transaction was refused: the claim was taken already (a duplicate delivery, a racing
    worker, an event that moved the enrolment meanwhile) or a condition of ``also``
    failed (the contact changed since it was read); the caller reads the enrolment again
    to tell which.
    """
    if not steps:
        raise ValueError("a claim needs a step")
    table = tenant_table(tenant_id)
    after = steps[-1].enrolment
    _, node_id, visit = steps[0].claim
    partition, sort = enrolment_key(after.campaign_id, after.contact_id)
    claim = Condition(
        "#node = :node AND #visit = :visit",
        {"#node": "node_id", "#visit": "visit"},
        {":node": node_id, ":visit": visit},
    )
    requests = [
        table.put_request(
            partition, sort, _stored(after), condition=claim, index_keys=_status_index(after)
        )
    ]
    entries = [_plain(asdict(entry)) for step in steps for entry in step.trace]
    if entries:
        # One item per claim (its first visit is unique to it): a walk of five steps
        # writes one trace item, not five (each a write unit, doubled in a transaction).
        stored = {
            "visit": visit,
            "n": 0,
            "entries": entries,
            TableSpec.ttl_attribute: int((now + TRACE_RETENTION).timestamp()),
        }
        trace_partition = _trace_partition(after.campaign_id, after.contact_id)
        requests.append(table.put_request(trace_partition, f"{visit:010d}#0", stored))
    requests.extend(dict(request) for request in also)
    try:
        transact_write(requests)
    except ConditionFailed:
        return False
    return True


def read_trace(tenant_id: str, campaign_id: str, contact_id: str) -> list[TraceEntry]:
    """Every step of the contact's enrolment still kept, oldest first (an item holds the
    entries of one claim; an item of an older layout, one entry)."""
    items = tenant_table(tenant_id).query_all(_trace_partition(campaign_id, contact_id))
    return [_trace_entry(entry) for item in items for entry in item.get("entries", [item])]


def _standing_on(enrolment: Enrolment) -> Condition:
    return Condition.equals("visit", enrolment.visit)


def _trace_partition(campaign_id: str, contact_id: str) -> str:
    return f"TRACE#{campaign_id}#{contact_id}"


# -- the due index --------------------------------------------------------------------
def file_due(tenant_id: str, enrolment: Enrolment, due: FileDue) -> None:
    """File a waiting enrolment under its minute and shard (idempotent: same key, same item)."""
    if enrolment.wake_at is None:
        raise ValueError("only a waiting enrolment has a wake time to file")
    partition, sort = due_key(
        due, tenant_id, enrolment.campaign_id, enrolment.contact_id, visit=enrolment.visit
    )
    expires = int((minute_start(due.minute) + DUE_RETENTION).timestamp())
    stored = {"wake_at": enrolment.wake_at.isoformat(), TableSpec.ttl_attribute: expires}
    system_table().put(partition, sort, stored)  # the rest is in the key: due_entry_of


def any_due(due: FileDue) -> bool:
    """Whether anything is filed under one minute and shard (one item read at most)."""
    return bool(system_table().query(due_partition(due), limit=1, consistent=True).items)


def due_entries(due: FileDue) -> Iterator[DueEntry]:
    """The entries filed under one minute and shard, ``DUE_PAGE`` a page, read from their
    sort keys (``due_entry_of``) and wake times (an entry filed before 2026-12-07 also
    holds its ids as attributes: they are the key's)."""
    entries = system_table().keyed_all(due_partition(due), limit=DUE_PAGE, consistent=True)
    for sort, item in entries:
        yield DueEntry(*due_entry_of(sort), wake_at=datetime.fromisoformat(item["wake_at"]))


# -- cap counters ---------------------------------------------------------------------
def cap_counts(tenant_id: str, contact_id: str, campaign_id: str) -> CapCounts:
    """The contact's counts as they are now (a strongly consistent GetItem)."""
    item = tenant_table(tenant_id).get(_caps_partition(contact_id), "-") or {}
    return _cap_counts(item, campaign_id)


def cap_counts_among(
    tenant_id: str, contact_ids: Iterable[str], campaign_id: str
) -> dict[str, CapCounts]:
    """Counts of many contacts by contact id, one eventually consistent BatchGetItem per
    100: a stale read costs nothing but a retry, since ``count_send`` checks the version."""
    ids = list(dict.fromkeys(contact_ids))
    found = tenant_table(tenant_id).batch_get(
        (_caps_partition(contact_id), "-") for contact_id in ids
    )
    return {
        contact_id: _cap_counts(found.get((_caps_partition(contact_id), "-"), {}), campaign_id)
        for contact_id in ids
    }


def _cap_counts(item: Mapping[str, Any], campaign_id: str) -> CapCounts:
    counts = {k: int(v) for k, v in item.items() if k.startswith(("t#", "c#"))}
    campaign_prefix = f"c#{campaign_id}#"
    return CapCounts(
        version=int(item.get("v", 0)),
        tenant={k[2:]: n for k, n in counts.items() if k.startswith("t#")},
        campaign={
            k[len(campaign_prefix) :]: n for k, n in counts.items() if k.startswith(campaign_prefix)
        },
        all_buckets=counts,
    )


def count_send(
    tenant_id: str,
    contact_id: str,
    campaign_id: str,
    *,
    read_as: CapCounts,
    bucket: str,
    now: datetime,
) -> bool:
    """Add one message in ``bucket`` to both scopes, if nothing changed since ``read_as``.

    False when another sender counted a message meanwhile: read again and decide again.
    Buckets no cap can read any more are removed in the same write.
    """
    condition = (
        Condition.absent() if read_as.version == 0 else Condition.equals("v", read_as.version)
    )
    hour_of = {name: name.rsplit("#", 1)[1] for name in read_as.all_buckets}
    stale = set(stale_buckets(hour_of.values(), now))
    try:
        tenant_table(tenant_id).update(
            _caps_partition(contact_id),
            "-",
            add_values={f"t#{bucket}": 1, f"c#{campaign_id}#{bucket}": 1, "v": 1},
            remove=[name for name, hour in hour_of.items() if hour in stale],
            condition=condition,
        )
    except ConditionFailed:
        return False
    return True


def uncount_send(tenant_id: str, contact_id: str, campaign_id: str, *, bucket: str) -> None:
    """Take back a message ``count_send`` added that never went out (a spent quota, the
    batch out of time, a provider's refusal), so the retry that sends it is not capped by
    its own count. It only ever gives a slot back, so it needs no version."""
    try:
        tenant_table(tenant_id).update(
            _caps_partition(contact_id),
            "-",
            add_values={f"t#{bucket}": -1, f"c#{campaign_id}#{bucket}": -1, "v": 1},
            condition=Condition.present(),
        )
    except ConditionFailed:
        return  # nothing was counted (pruned or never written): nothing to give back


def _caps_partition(contact_id: str) -> str:
    return f"CAPS#{contact_id}"


# -- serialising ----------------------------------------------------------------------
def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _stored(enrolment: Enrolment) -> dict[str, Any]:
    stored = _plain(asdict(enrolment))
    if enrolment.trigger_event is not None:
        stored["trigger_event"] = _plain(asdict(enrolment.trigger_event))
    return stored


def enrolment_from_item(campaign_id: str, contact_id: str, item: Mapping[str, Any]) -> Enrolment:
    def when(name: str) -> datetime | None:
        value = item.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    entered, arrived = when("entered_at"), when("arrived_at")
    if entered is None or arrived is None:
        raise ValueError(f"enrolment {campaign_id}/{contact_id} is missing its times")
    reason, event = item.get("exit_reason"), item.get("trigger_event")
    return Enrolment(
        campaign_id=campaign_id,
        contact_id=contact_id,
        node_id=item["node_id"],
        visit=int(item["visit"]),
        entered_at=entered,
        arrived_at=arrived,
        wake_at=when("wake_at"),
        waiting_for=item.get("waiting_for"),
        variant=item.get("variant"),
        split_id=item.get("split_id"),
        exit_reason=ExitReason(reason) if reason else None,
        trigger_event=_trigger_event(event) if isinstance(event, dict) else None,
    )


def _trigger_event(item: Mapping[str, Any]) -> TriggerEvent:
    return TriggerEvent(
        id=item["id"],
        name=item["name"],
        occurred_at=datetime.fromisoformat(item["occurred_at"]),
        properties=item.get("properties") or {},
    )


def _trace_entry(item: Mapping[str, Any]) -> TraceEntry:
    until = item.get("until")
    return TraceEntry(
        node_id=item["node_id"],
        visit=int(item["visit"]),
        at=datetime.fromisoformat(item["at"]),
        outcome=item["outcome"],
        reason=item.get("reason"),
        branch=item.get("branch"),
        until=datetime.fromisoformat(until) if until else None,
    )


# -- who stands where (flow-api) ---------------------------------------------------------
def standing_on(tenant_id: str, campaign_id: str, node_ids: Iterable[str]) -> Iterator[Enrolment]:
    """The flow's enrolments that have not exited and stand on one of ``node_ids``: the
    contacts an edit that removes those nodes moves out (``workflow/check`` counts them).
    Reads the not-exited ones through the status index (an edit is rare, made by hand)."""
    wanted = set(node_ids)
    if not wanted:
        return
    for enrolment in all_in_status(tenant_id, campaign_id, ("waiting", "active")):
        if enrolment.node_id in wanted:
            yield enrolment
