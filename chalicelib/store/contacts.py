"""Contacts in DynamoDB: sharded for bulk writes, unique by email and by phone per tenant.

Layout (tenant scope prefix added by ScopedTable):
- ``CONTACTS#<shard> / <contact id>``   the contact; ``shard`` = crc32(id) mod CONTACT_SHARDS,
  so a bulk import spreads its writes over CONTACT_SHARDS partitions instead of one hot
  one, and a planner can read a tenant's contacts in CONTACT_SHARDS parallel streams.
- ``CONTACT_EMAIL#<email> / CONTACT``   identity items: ``{contact_id}``. Written in the same
- ``CONTACT_PHONE#<phone> / CONTACT``   transaction as the contact with ``attribute_not_exists``,
  so two concurrent creates of one email cannot both succeed.

On the contact item, besides the profile: ``version`` (bumped by every profile write; a
patch is conditional on it, so an identity move never races another patch), ``lists`` (a
string set, absent when empty), per push device ``dev#<sha256 of its token>`` (a map:
platform, token, endpoint, sender, time; one per token, so registering again is
idempotent) and, per event name, ``ev#<name>#n``, ``ev#<name>#first``,
``ev#<name>#last``. Those are top-level attributes so that ``record_event`` is one
UpdateItem (ADD and ``if_not_exists`` cannot create a nested map and update it at once);
profile writes never touch them, so a patch never loses a concurrent event or list change.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from chalicelib.domain.contacts import (
    PROFILE_FIELDS,
    Contact,
    ContactFields,
    ContactFilter,
    ContactStatus,
    Device,
    EventSummary,
    Identity,
    apply_changes,
    contact_saved_detail,
    identity_keys,
    is_contact_id,
    new_contact,
    status_changes,
    utc,
)
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.domain.imports import ChunkPlan
from chalicelib.store.events_out import BusEvent
from chalicelib.store.expressions import ExpressionUpdate, delete_request
from chalicelib.store.table import (
    Condition,
    ConditionFailed,
    SortRange,
    tenant_table,
    transact_write,
)

CONTACT_SHARDS = 16
_IDENTITY_SORT = "CONTACT"
_EVENT_PREFIX = "ev#"
_DEVICE_PREFIX = "dev#"
_WRITE_ATTEMPTS = 3  # optimistic retries when a patch or delete meets a concurrent write
_FILTER_READ_FACTOR = 10  # a filtered page examines at most this many times ``limit`` contacts


# -- keys -------------------------------------------------------------------------------
def contact_shard(contact_id: str) -> int:
    """The shard a contact lives in: stable for its id, spread evenly over CONTACT_SHARDS."""
    return zlib.crc32(contact_id.encode()) % CONTACT_SHARDS


@dataclass(frozen=True)
class ContactPart:
    """A part of a tenant's contacts that one reader walks alone: some shards, and within
    each of them a range of contact ids. The parts of one split cover every contact once."""

    shards: tuple[int, ...] = tuple(range(CONTACT_SHARDS))
    ids: SortRange | None = None


EVERY_CONTACT = ContactPart()
_ID_SPACE = 0x10000  # ids are "c_" + hex: split on their first four hex digits


def contact_part(part: int, parts: int) -> ContactPart:
    """Part ``part`` of ``parts`` equal parts (``parts`` divides CONTACT_SHARDS or is a
    multiple of it): whole shards while there are more shards than parts, then each shard
    cut into id ranges. Ranges cover the whole sort-key space (the first starts at nothing,
    the last ends at nothing), so an id of any form falls in exactly one part."""
    if not valid_part_count(parts) or not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts}: parts must divide or be a multiple of 16")
    if parts <= CONTACT_SHARDS:
        return ContactPart(shards=tuple(range(part, CONTACT_SHARDS, parts)))
    cuts = parts // CONTACT_SHARDS
    return ContactPart(shards=(part % CONTACT_SHARDS,), ids=id_range(part // CONTACT_SHARDS, cuts))


def id_range(piece: int, pieces: int) -> SortRange | None:
    """Piece ``piece`` of the contact-id space cut into ``pieces`` equal ranges (on the ids'
    first four hex digits); None for one piece (everything). The first range starts at
    nothing and the last ends at nothing, so every key falls in exactly one piece."""
    if pieces == 1:
        return None
    first = None if piece == 0 else f"c_{piece * _ID_SPACE // pieces:04x}"
    end = None if piece == pieces - 1 else f"c_{(piece + 1) * _ID_SPACE // pieces:04x}"
    return SortRange(first, end)


def valid_part_count(parts: int) -> bool:
    """Whether ``contact_part`` can split the contacts into this many parts."""
    if parts <= CONTACT_SHARDS:
        return parts >= 1 and CONTACT_SHARDS % parts == 0
    return parts % CONTACT_SHARDS == 0 and parts // CONTACT_SHARDS <= _ID_SPACE


def _contacts_partition(shard: int) -> str:
    return f"CONTACTS#{shard}"


def _contact_key(contact_id: str) -> tuple[str, str]:
    return _contacts_partition(contact_shard(contact_id)), contact_id


def _identity_partition(identity: Identity) -> str:
    kind, value = identity
    return f"CONTACT_{kind.upper()}#{value}"


# -- items ------------------------------------------------------------------------------
_STORED_FIELDS = (*PROFILE_FIELDS, "id", "unsubscribed_at", "created_at", "updated_at")


def _stamp(at: datetime) -> str:
    """One fixed ISO format in UTC, so stored times compare correctly as strings."""
    return utc(at).isoformat(timespec="microseconds")


def _stored(contact: Contact, names: Iterable[str]) -> dict[str, Any]:
    """The item attributes for ``names`` (None means: remove the attribute)."""
    values: dict[str, Any] = {}
    for name in names:
        value = getattr(contact, name)
        values[name] = _stamp(value) if isinstance(value, datetime) else value
    return values


def _new_contact_item(contact: Contact) -> dict[str, Any]:
    return {**_stored(contact, _STORED_FIELDS), "version": 1}


def _contact_from_item(item: dict[str, Any]) -> Contact:
    """The Contact an item holds, with its list memberships and event summaries gathered."""
    events: dict[str, dict[str, Any]] = {}
    for attribute, value in item.items():
        if attribute.startswith(_EVENT_PREFIX):
            name, _, part = attribute[len(_EVENT_PREFIX) :].rpartition("#")
            events.setdefault(name, {})[part] = value
    devices = [v for k, v in item.items() if k.startswith(_DEVICE_PREFIX)]
    return Contact.model_validate(
        {
            **{k: v for k, v in item.items() if k in _STORED_FIELDS},
            "devices": sorted(devices, key=lambda device: str(device["registered_at"])),
            "lists": sorted(item.get("lists") or ()),
            "events": {
                name: EventSummary(count=e["n"], first_at=e["first"], last_at=e["last"])
                for name, e in events.items()
                if {"n", "first", "last"} <= e.keys()
            },
        }
    )


def _owned_by(contact_id: str) -> Condition:
    return Condition.equals("contact_id", contact_id)


# -- reads ------------------------------------------------------------------------------
def get_contact(tenant_id: str, contact_id: str) -> Contact:
    """The contact, or NotFound (field ``contact_id``), also for ids of another tenant."""
    return read_versioned(tenant_id, contact_id)[0]


def get_contacts(tenant_id: str, ids: Iterable[str]) -> dict[str, Contact]:
    """The contacts among ``ids`` that exist (BatchGetItem, 100 keys a call), by id."""
    keys = [_contact_key(i) for i in ids if is_contact_id(i)]
    found = tenant_table(tenant_id).batch_get(keys)
    return {sort: _contact_from_item(item) for (_, sort), item in found.items()}


def find_by_email(tenant_id: str, email: str) -> Contact | None:
    """The contact whose email is ``email`` (already normalized), if any."""
    return _find_by_identity(tenant_id, ("email", email))


def find_by_phone(tenant_id: str, phone: str) -> Contact | None:
    """The contact whose phone is ``phone`` (E.164), if any."""
    return _find_by_identity(tenant_id, ("phone", phone))


def _find_by_identity(tenant_id: str, identity: Identity) -> Contact | None:
    owner = tenant_table(tenant_id).get(_identity_partition(identity), _IDENTITY_SORT)
    if owner is None:
        return None
    try:
        return get_contact(tenant_id, owner["contact_id"])
    except NotFound:
        return None


def resolve_identities(tenant_id: str, identities: Iterable[Identity]) -> dict[Identity, str]:
    """Which contact id owns each identity, for those that are taken (consistent reads)."""
    wanted = list(dict.fromkeys(identities))
    by_key = {(_identity_partition(i), _IDENTITY_SORT): i for i in wanted}
    found = tenant_table(tenant_id).batch_get(by_key, consistent=True)
    return {by_key[key]: str(item["contact_id"]) for key, item in found.items()}


def scan_shard(
    tenant_id: str, shard: int, cursor: str | None = None, limit: int = 500
) -> tuple[list[Contact], str | None]:
    """One page of one shard, in id order; pass the cursor back for the next page."""
    if not 0 <= shard < CONTACT_SHARDS:
        raise ValueError(f"shard {shard} is not in 0..{CONTACT_SHARDS - 1}")
    page = tenant_table(tenant_id).query(_contacts_partition(shard), limit=limit, cursor=cursor)
    return [_contact_from_item(i) for i in page.items], page.cursor


def scan_contacts(
    tenant_id: str, cursor: str | None = None, limit: int = 500, part: ContactPart = EVERY_CONTACT
) -> tuple[list[Contact], str | None]:
    """Up to ``limit`` contacts of the tenant (of ``part`` of them) and a cursor; None once
    every shard of the part is read.

    Walks the shards in order; each contact appears exactly once over a full walk (a
    contact created or deleted meanwhile may or may not appear).
    """
    items, cursor = _scan_items(tenant_id, cursor, limit, part)
    return [_contact_from_item(i) for i in items], cursor


def _scan_items(
    tenant_id: str, cursor: str | None, limit: int, part: ContactPart = EVERY_CONTACT
) -> tuple[list[dict[str, Any]], str | None]:
    shard, inner = _decode_scan_cursor(tenant_id, cursor, part)
    items: list[dict[str, Any]] = []
    table = tenant_table(tenant_id)
    while len(items) < limit:
        page = table.query(
            _contacts_partition(shard),
            limit=limit - len(items),
            cursor=inner,
            sort_range=part.ids,
        )
        items.extend(page.items)
        inner = page.cursor
        if inner is None:
            following = part.shards.index(shard) + 1
            if following == len(part.shards):
                return items, None
            shard = part.shards[following]
    return items, _encode_scan_cursor(tenant_id, shard, inner)


def _encode_scan_cursor(tenant_id: str, shard: int, inner: str | None) -> str:
    plain = json.dumps({"tenant": tenant_id, "shard": shard, "after": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def _decode_scan_cursor(
    tenant_id: str, cursor: str | None, part: ContactPart = EVERY_CONTACT
) -> tuple[int, str | None]:
    """The shard and the position in it; a cursor of another tenant or part is refused."""
    if not cursor:
        return part.shards[0], None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        shard, inner = plain["shard"], plain["after"]
        if plain["tenant"] != tenant_id:
            raise ValueError("another tenant's cursor")
        if not isinstance(shard, int) or shard not in part.shards:
            raise ValueError("bad shard")
        if inner is not None and not isinstance(inner, str):
            raise ValueError("bad position")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ValidationFailed("cursor is not valid", field="cursor") from error
    return shard, inner


def list_contacts(
    tenant_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    where: ContactFilter | None = None,
) -> tuple[list[Contact], str | None]:
    """A page of contacts. ``email``/``phone`` are key lookups (one page, no cursor).

    ``where`` is checked on each contact read: a filtered page reads at most
    ``_FILTER_READ_FACTOR * limit`` contacts, so it may hold fewer than ``limit`` (even
    none) while a cursor is still returned; the listing ends when the cursor is null.
    """
    where = where or ContactFilter()
    if email or phone:
        found = find_by_email(tenant_id, email) if email else find_by_phone(tenant_id, str(phone))
        if found and phone and found.phone != phone:
            found = None
        return ([found] if found and where.matches(found) else []), None
    if not where.active:
        return scan_contacts(tenant_id, cursor, limit)
    matched: list[Contact] = []
    examined = 0
    while len(matched) < limit and examined < limit * _FILTER_READ_FACTOR:
        page, cursor = scan_contacts(tenant_id, cursor, limit - len(matched))
        examined += len(page)
        matched.extend(c for c in page if where.matches(c))
        if cursor is None:
            break
    return matched, cursor


# -- writes -----------------------------------------------------------------------------
CONTACT_SAVED = "contact.saved"


def saved_event(
    contact: Contact,
    *,
    created: bool,
    changed: list[str],
    source: str | None = None,
    campaign_id: str | None = None,
) -> BusEvent:
    """The ``contact.saved`` event for a contact just written (publish with publish_events).

    A flow's change says ``source: "flow"`` and its ``campaign_id`` in the properties: the
    flow that made the change is never triggered by it."""
    detail = contact_saved_detail(contact, created=created, changed=changed)
    if source is not None:
        origin = {"source": source, "campaign_id": campaign_id}
        detail = {**detail, "properties": {**detail["properties"], **origin}}
    return BusEvent(CONTACT_SAVED, detail, time=contact.updated_at)


def _now() -> datetime:
    return datetime.now(UTC)


def create_contact(tenant_id: str, fields: ContactFields, now: datetime | None = None) -> Contact:
    """Create a contact; Conflict (409, field email or phone) when an identity is taken.

    The contact and its identity items are written in one transaction, each identity
    conditional on not existing: a concurrent create of the same email loses cleanly.
    """
    contact = new_contact(fields, now or _now())
    table = tenant_table(tenant_id)
    requests = [
        table.put_request(
            *_contact_key(contact.id), _new_contact_item(contact), condition=Condition.absent()
        )
    ]
    requests += [
        table.put_request(
            _identity_partition(identity),
            _IDENTITY_SORT,
            {"contact_id": contact.id},
            condition=Condition.absent(),
        )
        for identity in identity_keys(contact)
    ]
    try:
        transact_write(requests)
    except ConditionFailed:
        _raise_identity_conflict(tenant_id, identity_keys(contact), contact.id)
        raise
    return contact


def _raise_identity_conflict(tenant_id: str, identities: list[Identity], contact_id: str) -> None:
    """Raise Conflict naming the first identity another contact owns (if one does)."""
    owners = resolve_identities(tenant_id, identities)
    for identity in identities:
        owner = owners.get(identity)
        if owner is not None and owner != contact_id:
            kind, _ = identity
            raise Conflict(f"contact '{owner}' already has this {kind}", field=kind)


def update_contact(
    tenant_id: str, contact_id: str, fields: ContactFields, now: datetime | None = None
) -> tuple[Contact, list[str]]:
    """Apply a partial update; returns the contact and the names of the fields that changed.

    A changed email or phone moves its identity item in the same transaction as the
    contact; Conflict (409) if the new one belongs to another contact.
    """
    for _ in range(_WRITE_ATTEMPTS):
        current, version = read_versioned(tenant_id, contact_id)
        updated, changed = apply_changes(current, fields, now or _now())
        if not changed:
            return current, []
        try:
            _write_profile(tenant_id, current, updated, changed, version)
        except ConditionFailed:
            new_identities = [i for i in identity_keys(updated) if i not in identity_keys(current)]
            _raise_identity_conflict(tenant_id, new_identities, contact_id)
            continue  # the contact changed under us: read it again
        return updated, changed
    raise Conflict("the contact is being changed concurrently; retry", field="contact_id")


def read_versioned(tenant_id: str, contact_id: str) -> tuple[Contact, int]:
    """The contact and its version (consistent read); NotFound when there is none."""
    key = contact_key(contact_id)
    item = tenant_table(tenant_id).get(*key) if key else None
    if item is None:
        raise NotFound(f"contact '{contact_id}' not found", field="contact_id")
    return versioned(item)


def contact_key(contact_id: str) -> tuple[str, str] | None:
    """The key ``read_versioned`` reads (None for a malformed id), for a batched read."""
    return _contact_key(contact_id) if is_contact_id(contact_id) else None


def versioned(item: dict[str, Any]) -> tuple[Contact, int]:
    """The contact an item read by ``contact_key`` holds, and its version."""
    return _contact_from_item(item), int(item.get("version", 0))


def change_request(
    tenant_id: str, after: Contact, changed: list[str], version: int
) -> dict[str, Any]:
    """An Update for ``transact_write``: the ``changed`` profile fields of ``after``, on
    condition that the contact is still at ``version`` (a flow step's contact change joins
    the step's claim this way; identity fields are not a flow's to change)."""
    update = _profile_update(after, changed)
    table = tenant_table(tenant_id)
    return {
        "Update": update.request(
            table, _contact_key(after.id), Condition.equals("version", version)
        )
    }


def _profile_update(contact: Contact, changed: Iterable[str]) -> ExpressionUpdate:
    update = ExpressionUpdate()
    names = [*changed, "updated_at"]
    if "status" in names:
        names.append("unsubscribed_at")
    for name, value in _stored(contact, names).items():
        update.assign(name, value)
    return update.add("version", 1)


def _write_profile(
    tenant_id: str, before: Contact, after: Contact, changed: list[str], version: int
) -> None:
    """One transaction: the profile (if still at ``version``) and any identity moves."""
    table = tenant_table(tenant_id)
    update = _profile_update(after, changed)
    condition = Condition.equals("version", version)
    requests = [{"Update": update.request(table, _contact_key(after.id), condition)}]
    old, new = set(identity_keys(before)), set(identity_keys(after))
    requests += [
        delete_request(table, (_identity_partition(i), _IDENTITY_SORT), _owned_by(after.id))
        for i in sorted(old - new)
    ]
    requests += [
        table.put_request(
            _identity_partition(i),
            _IDENTITY_SORT,
            {"contact_id": after.id},
            condition=Condition.absent(),
        )
        for i in sorted(new - old)
    ]
    transact_write(requests)


def delete_contact(tenant_id: str, contact_id: str) -> Contact:
    """Delete a contact and its identity items; returns what was deleted.

    Static-list membership items belong to the lists store: the returned contact's
    ``lists`` says which lists still name this id, and readers of list members must skip
    ids that ``get_contacts`` no longer returns.
    """
    table = tenant_table(tenant_id)
    for _ in range(_WRITE_ATTEMPTS):
        contact, version = read_versioned(tenant_id, contact_id)
        owned = [
            i
            for i, owner in resolve_identities(tenant_id, identity_keys(contact)).items()
            if owner == contact_id
        ]
        requests = [
            delete_request(table, _contact_key(contact_id), Condition.equals("version", version))
        ]
        requests += [
            delete_request(table, (_identity_partition(i), _IDENTITY_SORT), _owned_by(contact_id))
            for i in owned
        ]
        try:
            transact_write(requests)
        except ConditionFailed:
            continue
        return contact
    raise Conflict("the contact is being changed concurrently; retry", field="contact_id")


def set_status(tenant_id: str, contact_id: str, status: ContactStatus, at: datetime) -> Contact:
    """Move a contact to ``status`` (unsubscribing stamps ``unsubscribed_at``).

    A read, then one write conditional on the version read; retried if it lost a race.
    """
    for _ in range(_WRITE_ATTEMPTS):
        current, version = read_versioned(tenant_id, contact_id)
        changes = status_changes(current, status, utc(at))
        if not changes:
            return current
        updated = current.model_copy(update={**changes, "updated_at": _now()})
        update = _profile_update(updated, ["status"])
        try:
            item = update.run(
                tenant_table(tenant_id),
                _contact_key(contact_id),
                Condition.equals("version", version),
            )
        except ConditionFailed:
            continue
        return _contact_from_item(item)
    raise Conflict("the contact is being changed concurrently; retry", field="contact_id")


def set_list_membership(tenant_id: str, contact_id: str, list_id: str, member: bool) -> None:
    """Add ``list_id`` to (or remove it from) the contact's ``lists``; idempotent, one write.

    NotFound (field ``contact_id``) when the contact does not exist.
    """
    update = ExpressionUpdate()
    if member:
        update.add("lists", {list_id})
    else:
        update.delete_from_set("lists", {list_id})
    _run_on_contact(tenant_id, contact_id, update, Condition.present())


def record_event(tenant_id: str, contact_id: str, name: str, at: datetime) -> None:
    """Count one occurrence of event ``name``: count + 1, first_at kept, last_at = max.

    One UpdateItem when events arrive in order; an older event than the last one seen
    takes a second write (count, and first_at if it is older still).
    """
    stamp = _stamp(at)
    count, first, last = (f"{_EVENT_PREFIX}{name}#{part}" for part in ("n", "first", "last"))
    in_order = ExpressionUpdate().set_if_absent(first, stamp).assign(last, stamp).add(count, 1)
    newer = Condition(
        "attribute_exists(pk) AND (attribute_not_exists(#c_l) OR #c_l <= :c_at)",
        {"#c_l": last},
        {":c_at": stamp},
    )
    try:
        _run_on_contact(tenant_id, contact_id, in_order, newer)
        return
    except ConditionFailed:
        pass
    _run_on_contact(tenant_id, contact_id, ExpressionUpdate().add(count, 1), Condition.present())
    older_than_first = Condition("#c_f > :c_at", {"#c_f": first}, {":c_at": stamp})
    with contextlib.suppress(ConditionFailed):  # not older than the first: nothing to move
        _run_on_contact(
            tenant_id, contact_id, ExpressionUpdate().assign(first, stamp), older_than_first
        )


def _device_attribute(token: str) -> str:
    return _DEVICE_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:32]


def register_device(tenant_id: str, contact_id: str, device: Device) -> Contact:
    """Put ``device`` on the contact under its token (the same token again replaces it:
    one device per token). NotFound (field ``contact_id``) for an unknown contact."""
    stored = {**device.model_dump(mode="json"), "registered_at": _stamp(device.registered_at)}
    update = ExpressionUpdate().assign(_device_attribute(device.token), stored)
    return _contact_from_item(_run_on_contact(tenant_id, contact_id, update, Condition.present()))


def remove_device(tenant_id: str, contact_id: str, token: str) -> None:
    """Take the device with ``token`` off the contact (a no-op if it is gone already)."""
    update = ExpressionUpdate().assign(_device_attribute(token), None)
    with contextlib.suppress(NotFound):
        _run_on_contact(tenant_id, contact_id, update, Condition.present())


def _run_on_contact(
    tenant_id: str, contact_id: str, update: ExpressionUpdate, condition: Condition
) -> dict[str, Any]:
    """Run ``update`` on the contact; NotFound if it does not exist (whatever failed)."""
    if not is_contact_id(contact_id):
        raise NotFound(f"contact '{contact_id}' not found", field="contact_id")
    table = tenant_table(tenant_id)
    try:
        return update.run(table, _contact_key(contact_id), condition)
    except ConditionFailed:
        if table.get(*_contact_key(contact_id)) is None:
            raise NotFound(f"contact '{contact_id}' not found", field="contact_id") from None
        raise


def write_import_plan(tenant_id: str, plan: ChunkPlan) -> None:
    """Write what one import chunk decided: new contacts and claimed identities with
    BatchWriteItem, changed fields of existing contacts with one UpdateItem each, then
    the identity items given up.

    Not a transaction (BatchWriteItem has no conditions): every write is idempotent, so a
    chunk that fails half-way is simply run again. A concurrent API write of the same
    email between the chunk's read of the identities and this write can leave the last
    writer owning the identity; docs/contacts.md says so.
    """
    table = tenant_table(tenant_id)
    contacts = ((*_contact_key(c.id), _new_contact_item(c)) for c in plan.created.values())
    identities = (
        (_identity_partition(i), _IDENTITY_SORT, {"contact_id": owner})
        for i, owner in plan.claimed.items()
    )
    table.batch_put(chain(contacts, identities))
    for contact, changed in plan.updated.values():
        if changed:
            with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to update
                _run_on_contact(
                    tenant_id, contact.id, _profile_update(contact, changed), Condition.present()
                )
    table.batch_delete((_identity_partition(i), _IDENTITY_SORT) for i in plan.released)


# -- segment membership states (docs/flows.md, "Segment triggers") ---------------------
# Top-level ``seg#<segment id>`` attributes, like the event summaries: one conditional
# SET moves one segment's state without reading or rewriting anything else.
_SEGMENT_PREFIX = "seg#"
SegmentStates = dict[str, str]


def _segment_states(item: dict[str, Any]) -> SegmentStates:
    return {
        attribute[len(_SEGMENT_PREFIX) :]: str(value)
        for attribute, value in item.items()
        if attribute.startswith(_SEGMENT_PREFIX)
    }


def get_with_segment_states(
    tenant_id: str, contact_ids: Iterable[str]
) -> dict[str, tuple[Contact, SegmentStates]]:
    """The contacts among ``contact_ids`` that exist, each with its stored segment states
    (consistent BatchGetItem: a change just written is seen)."""
    keys = [_contact_key(i) for i in dict.fromkeys(contact_ids) if is_contact_id(i)]
    found = tenant_table(tenant_id).batch_get(keys, consistent=True)
    return {
        sort: (_contact_from_item(item), _segment_states(item)) for (_, sort), item in found.items()
    }


def scan_with_segment_states(
    tenant_id: str, cursor: str | None = None, limit: int = 500
) -> tuple[list[tuple[Contact, SegmentStates]], str | None]:
    """``scan_contacts``, each contact with its stored segment states."""
    items, cursor = _scan_items(tenant_id, cursor, limit)
    return [(_contact_from_item(i), _segment_states(i)) for i in items], cursor


def move_segment_state(
    tenant_id: str, contact_id: str, segment_id: str, new: str, expected: str | None
) -> bool:
    """Set the contact's state for ``segment_id`` to ``new`` if it is still ``expected``
    (None: no state). False when another writer moved it first, or the contact is gone:
    of two deliveries of one change, only one moves the state."""
    attribute = f"{_SEGMENT_PREFIX}{segment_id}"
    if expected is None:
        condition = Condition(
            "attribute_exists(pk) AND attribute_not_exists(#c_s)", {"#c_s": attribute}
        )
    else:
        condition = Condition(
            "attribute_exists(pk) AND #c_s = :c_s", {"#c_s": attribute}, {":c_s": expected}
        )
    try:
        ExpressionUpdate().assign(attribute, new).run(
            tenant_table(tenant_id), _contact_key(contact_id), condition
        )
    except ConditionFailed:
        return False
    return True
