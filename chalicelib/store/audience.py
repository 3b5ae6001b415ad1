"""A tenant's audience (lists or segments, minus exclusions), streamed a page at a time.

Nothing here holds a whole audience: every function reads one page of contacts, decides
each with a predicate compiled once (chalicelib.domain.audience), and forgets the page.

Two ways to walk, chosen by the spec:
- **With any segment**: one pass over ALL the tenant's contacts (``scan_contacts``), each
  tested against the OR of the lists and segments. A segment can only be decided by
  looking at every contact, so this costs one read per contact in the tenant however
  small the audience; and it de-duplicates for free, since each contact is read once.
- **Lists only**: the lists' member items are walked list after list and only those
  contacts are read (BatchGetItem), costing one read per membership instead of one per
  contact in the tenant. A contact in two lists is met twice: the caller says which
  contacts it has taken already (``taken``), and a later list drops them. That is decided
  on what was actually taken, never on the contact's current ``lists``: membership can
  change while a long walk runs (a contact added to a list already walked would be lost,
  one removed from it taken twice). The planner answers from its per-campaign planned
  markers (``store.ledger.planned_among``); ``iter_audience`` from the ids it yielded.

The contact's ``lists`` is the truth for membership at the moment a page is read.
``audience_page`` is the resumable form for the campaign planner: at most ``limit``
contacts are examined per call, so a page may come back short or even empty while a
cursor is still returned; the walk is over when the cursor is None. Relative dates in
segments (``-7d``) are fixed by ``now``: a planner passes the same ``now`` for every page
of one plan.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.audience import AudienceSpec, audience_predicate, excluded
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.segments import SegmentGroup, compile_tree
from chalicelib.store.contacts import contact_part, get_contacts, id_range, scan_contacts
from chalicelib.store.lists import get_lists, list_member_ids
from chalicelib.store.segments import get_segments

PAGE_SIZE = 500
# Which of these contact ids the walk's owner has taken already (from an earlier list).
Taken = Callable[[Sequence[str]], Collection[str]]


def preview_segment(
    tenant_id: str, tree: SegmentGroup, sample_size: int = 10, now: datetime | None = None
) -> tuple[int, list[Contact]]:
    """How many contacts match ``tree``, and the first ``sample_size`` of them."""
    test = compile_tree(tree, now or clock.now())
    count = 0
    sample: list[Contact] = []
    cursor: str | None = None
    while True:
        page, cursor = scan_contacts(tenant_id, cursor, PAGE_SIZE)
        for contact in page:
            if test(contact):
                count += 1
                if len(sample) < sample_size:
                    sample.append(contact)
        if cursor is None:
            return count, sample


def load_segment_trees(tenant_id: str, spec: AudienceSpec) -> dict[str, SegmentGroup]:
    """The trees of every segment the spec names; NotFound naming the first missing list
    or segment (a deleted list or segment must not silently shrink an audience)."""
    segments = get_segments(tenant_id, spec.all_segment_ids)
    for segment_id in spec.all_segment_ids:
        if segment_id not in segments:
            raise NotFound(f"segment '{segment_id}' not found", field="segment_ids")
    lists = get_lists(tenant_id, spec.all_list_ids)
    for list_id in spec.all_list_ids:
        if list_id not in lists:
            raise NotFound(f"list '{list_id}' not found", field="list_ids")
    return {segment_id: segment.tree for segment_id, segment in segments.items()}


def audience_page(
    tenant_id: str,
    spec: AudienceSpec,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    now: datetime | None = None,
    *,
    taken: Taken | None = None,
    part: int = 0,
    parts: int = 1,
) -> tuple[list[Contact], str | None]:
    """The audience members among the next ``limit`` contacts examined, and the cursor.

    In a walk of several lists, members of the second and later lists that ``taken``
    names are left out (without ``taken``, a contact in two lists comes twice).
    ``part`` of ``parts`` walks only that part of the contacts (``contact_part`` of a scan,
    ``id_range`` of each list): the parts of one audience are disjoint, a contact always
    in the same part, and together they are the whole audience.
    """
    trees = load_segment_trees(tenant_id, spec)
    at = now or clock.now()
    if spec.segment_ids:
        inner = _decode(cursor, "scan")[1]
        page, after = scan_contacts(tenant_id, inner, limit, contact_part(part, parts))
        member = audience_predicate(spec, trees, at)
        return [c for c in page if member(c)], _encode("scan", 0, after) if after else None
    index, inner = _decode(cursor, "lists")
    if index >= len(spec.list_ids):
        raise ValidationFailed("cursor does not belong to this audience", field="cursor")
    list_id = spec.list_ids[index]
    ids, after = list_member_ids(tenant_id, list_id, limit, inner, id_range(part, parts))
    if index > 0 and taken is not None and ids:
        already = taken(ids)
        ids = [contact_id for contact_id in ids if contact_id not in already]
    found = get_contacts(tenant_id, ids)
    exclude = excluded(spec, trees, at)
    members = [
        contact
        for contact_id in ids
        if (contact := found.get(contact_id)) is not None
        and list_id in contact.lists
        and (exclude is None or not exclude(contact))
    ]
    if after is not None:
        return members, _encode("lists", index, after)
    if index + 1 < len(spec.list_ids):
        return members, _encode("lists", index + 1, None)
    return members, None


def iter_audience(
    tenant_id: str,
    segment_ids: Sequence[str] = (),
    list_ids: Sequence[str] = (),
    *,
    exclude_segment_ids: Sequence[str] = (),
    exclude_list_ids: Sequence[str] = (),
    now: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[list[Contact]]:
    """Every audience member, in non-empty pages, each contact exactly once."""
    spec = AudienceSpec(
        segment_ids=list(segment_ids),
        list_ids=list(list_ids),
        exclude_segment_ids=list(exclude_segment_ids),
        exclude_list_ids=list(exclude_list_ids),
    )
    at = now or clock.now()
    cursor: str | None = None
    yielded: set[str] = set()
    while True:
        members, cursor = audience_page(
            tenant_id, spec, cursor, page_size, at, taken=yielded.intersection
        )
        yielded.update(contact.id for contact in members)
        if members:
            yield members
        if cursor is None:
            return


def _encode(mode: str, index: int, inner: str | None) -> str:
    plain = json.dumps({"mode": mode, "index": index, "after": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def _decode(cursor: str | None, mode: str) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    try:
        plain: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        index, inner = plain["index"], plain["after"]
        if plain["mode"] != mode or not isinstance(index, int) or index < 0:
            raise ValueError("cursor of another walk")
        if inner is not None and not isinstance(inner, str):
            raise ValueError("bad position")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ValidationFailed("cursor does not belong to this audience", field="cursor") from error
    return index, inner
