"""Static lists and their members in DynamoDB.

Layout (tenant scope prefix added by ScopedTable):
- ``LISTS / <list id>``              the list: name, number, edition_id, member_count
- ``LIST#<list id> / <contact id>``  one item per member, written with BatchWriteItem

Membership is also written on the contact (``set_list_membership``), which is what
audiences and segments read. A bulk add writes the contact side FIRST and the member
items after, a removal likewise: a call interrupted half-way and retried finds the
contacts without member items again and repeats their (idempotent) contact write, so the
two sides converge. ``member_count`` moves once per bulk call (one ADD, never one write
per member); a call that dies between its member writes and that ADD leaves the count
short by that call's members: the one imprecision we accept for not taking a
transaction per 25 members.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.errors import NotFound
from chalicelib.domain.lists import ContactList, MembershipChange, new_list_id
from chalicelib.store import contacts
from chalicelib.store.numbering import allocate_number, release_number, resolve_number
from chalicelib.store.table import Condition, ConditionFailed, SortRange, tenant_table

_LISTS = "LISTS"
NUMBER_KIND = "list"
MEMBER_PAGE = 500


def _members(list_id: str) -> str:
    return f"LIST#{list_id}"


def _not_found(list_id: str) -> NotFound:
    return NotFound(f"list '{list_id}' not found", field="list_id")


def _stamp(now: datetime | None) -> str:
    return (now or clock.now()).isoformat()


# -- lists ------------------------------------------------------------------------------
def create_list(
    tenant_id: str,
    name: str,
    description: str = "",
    edition_id: str | None = None,
    now: datetime | None = None,
) -> ContactList:
    list_id = new_list_id()
    at = _stamp(now)
    item: dict[str, Any] = {
        "id": list_id,
        "number": allocate_number(tenant_id, NUMBER_KIND, list_id),
        "name": name,
        "description": description,
        "edition_id": edition_id,
        "member_count": 0,
        "created_at": at,
        "updated_at": at,
    }
    tenant_table(tenant_id).put(_LISTS, list_id, item, condition=Condition.absent())
    return ContactList.model_validate(item)


def get_list(tenant_id: str, list_id: str) -> ContactList:
    item = tenant_table(tenant_id).get(_LISTS, list_id)
    if item is None:
        raise _not_found(list_id)
    return ContactList.model_validate(item)


def get_list_by_number(tenant_id: str, number: int) -> ContactList:
    """The list with this numeric id (seed 003 names lists by number)."""
    list_id = resolve_number(tenant_id, NUMBER_KIND, number)
    if list_id is None:
        raise NotFound(f"list {number} not found", field="number")
    return get_list(tenant_id, list_id)


def get_lists(tenant_id: str, list_ids: Iterable[str]) -> dict[str, ContactList]:
    """The lists among ``list_ids`` that exist, by id (BatchGetItem)."""
    found = tenant_table(tenant_id).batch_get((_LISTS, i) for i in list_ids)
    return {sort: ContactList.model_validate(item) for (_, sort), item in found.items()}


def list_lists(
    tenant_id: str, limit: int = 50, cursor: str | None = None, edition_id: str | None = None
) -> tuple[list[ContactList], str | None]:
    """A page of lists; with ``edition_id`` only that edition's (the page may be shorter)."""
    page = tenant_table(tenant_id).query(_LISTS, limit=limit, cursor=cursor)
    lists = [ContactList.model_validate(i) for i in page.items]
    if edition_id is not None:
        lists = [item for item in lists if item.edition_id == edition_id]
    return lists, page.cursor


def update_list(
    tenant_id: str, list_id: str, changes: dict[str, Any], now: datetime | None = None
) -> ContactList:
    """Set ``changes`` (name, description, edition_id); a None value removes the attribute."""
    removed = [name for name, value in changes.items() if value is None]
    try:
        item = tenant_table(tenant_id).update(
            _LISTS,
            list_id,
            set_values={**changes, "updated_at": _stamp(now)},
            remove=removed,
            condition=Condition.present(),
        )
    except ConditionFailed:
        raise _not_found(list_id) from None
    return ContactList.model_validate(item)


def delete_list(tenant_id: str, list_id: str) -> ContactList:
    """Delete the list and release its number; its members are removed by ``purge_members``.

    The list is gone for every reader at once (adds to it fail, audiences refuse it);
    clearing its id from possibly millions of contacts is paged work for a queue.
    """
    try:
        item = tenant_table(tenant_id).delete(_LISTS, list_id, condition=Condition.present())
    except ConditionFailed:
        raise _not_found(list_id) from None
    assert item is not None  # the condition guarantees it existed
    deleted = ContactList.model_validate(item)
    release_number(tenant_id, NUMBER_KIND, deleted.number)
    return deleted


def purge_members(tenant_id: str, list_id: str, limit: int = MEMBER_PAGE) -> tuple[bool, list[str]]:
    """Remove up to ``limit`` members of a deleted list; whether none remain, and the ids
    of the contacts this page removed."""
    table = tenant_table(tenant_id)
    page = table.query(_members(list_id), limit=limit, consistent=True)
    contact_ids = [str(item["contact_id"]) for item in page.items]
    _unset_on_contacts(tenant_id, list_id, contact_ids)
    table.batch_delete((_members(list_id), i) for i in contact_ids)
    return page.cursor is None, contact_ids


# -- members ----------------------------------------------------------------------------
def resolve_contacts(
    tenant_id: str, contact_ids: list[str], emails: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """Existing contact ids for the given ids and (normalized) emails, and the unknown ones.

    Two batched reads: identity items for the emails, then the contacts themselves.
    Returns (known contact ids, unknown ids, unknown emails), in the order given.
    """
    owners = contacts.resolve_identities(tenant_id, [("email", e) for e in emails])
    by_email = {email: owners.get(("email", email)) for email in emails}
    wanted = list(dict.fromkeys([*contact_ids, *(i for i in by_email.values() if i)]))
    existing = contacts.get_contacts(tenant_id, wanted)
    unknown_ids = [i for i in dict.fromkeys(contact_ids) if i not in existing]
    unknown_emails = [e for e, owner in by_email.items() if owner not in existing]
    return [i for i in wanted if i in existing], unknown_ids, unknown_emails


def _current_members(tenant_id: str, list_id: str, contact_ids: list[str]) -> set[str]:
    found = tenant_table(tenant_id).batch_get(
        ((_members(list_id), i) for i in contact_ids), consistent=True
    )
    return {sort for _, sort in found}


def add_members(
    tenant_id: str, list_id: str, contact_ids: list[str], emails: list[str]
) -> tuple[MembershipChange, list[str]]:
    """Add contacts (by id or email) to a list; unknown contacts are reported, not fatal.
    Returns what changed and the ids of the contacts added."""
    get_list(tenant_id, list_id)
    known, unknown_ids, unknown_emails = resolve_contacts(tenant_id, contact_ids, emails)
    already = _current_members(tenant_id, list_id, known)
    new = [i for i in known if i not in already]
    for contact_id in new:
        contacts.set_list_membership(tenant_id, contact_id, list_id, True)
    table = tenant_table(tenant_id)
    table.batch_put((_members(list_id), i, {"contact_id": i}) for i in new)
    change = MembershipChange(
        changed=len(new),
        unchanged=len(already),
        unknown_contact_ids=unknown_ids,
        unknown_emails=unknown_emails,
        member_count=_add_to_count(tenant_id, list_id, len(new)),
    )
    return change, new


def remove_members(
    tenant_id: str, list_id: str, contact_ids: list[str], emails: list[str]
) -> tuple[MembershipChange, list[str]]:
    """Remove contacts (by id or email) from a list; ids that are members but whose
    contact was deleted are removed too. Returns what changed and the ids removed."""
    get_list(tenant_id, list_id)
    known, unknown_ids, unknown_emails = resolve_contacts(tenant_id, contact_ids, emails)
    # A deleted contact's member item outlives it: look its id up as a member as well.
    candidates = list(dict.fromkeys([*known, *unknown_ids]))
    members = _current_members(tenant_id, list_id, candidates)
    gone = [i for i in candidates if i in members]
    _unset_on_contacts(tenant_id, list_id, gone)
    tenant_table(tenant_id).batch_delete((_members(list_id), i) for i in gone)
    change = MembershipChange(
        changed=len(gone),
        unchanged=len(known) - len([i for i in known if i in members]),
        unknown_contact_ids=[i for i in unknown_ids if i not in members],
        unknown_emails=unknown_emails,
        member_count=_add_to_count(tenant_id, list_id, -len(gone)),
    )
    return change, gone


def _unset_on_contacts(tenant_id: str, list_id: str, contact_ids: list[str]) -> None:
    for contact_id in contact_ids:
        try:
            contacts.set_list_membership(tenant_id, contact_id, list_id, False)
        except NotFound:
            continue  # the contact was deleted: only its member item is left to remove


def _add_to_count(tenant_id: str, list_id: str, delta: int) -> int:
    """One ADD per bulk call; returns the new count (a zero delta just reads it)."""
    if not delta:
        return get_list(tenant_id, list_id).member_count
    try:
        item = tenant_table(tenant_id).update(
            _LISTS, list_id, add_values={"member_count": delta}, condition=Condition.present()
        )
    except ConditionFailed:  # the list was deleted meanwhile; the purge undoes our writes
        raise _not_found(list_id) from None
    return int(item["member_count"])


def list_member_ids(
    tenant_id: str,
    list_id: str,
    limit: int = 50,
    cursor: str | None = None,
    ids: SortRange | None = None,
) -> tuple[list[str], str | None]:
    """One page of member contact ids (within ``ids``), in id order (may name since-deleted
    contacts)."""
    page = tenant_table(tenant_id).query(
        _members(list_id), limit=limit, cursor=cursor, sort_range=ids
    )
    return [str(item["contact_id"]) for item in page.items], page.cursor


def iter_list_members(
    tenant_id: str, list_id: str, page_size: int = MEMBER_PAGE
) -> Iterator[list[str]]:
    """Every member contact id of a list, a page at a time (never all held at once)."""
    cursor: str | None = None
    while True:
        ids, cursor = list_member_ids(tenant_id, list_id, page_size, cursor)
        if ids:
            yield ids
        if cursor is None:
            return
