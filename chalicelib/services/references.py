"""What campaigns refer to (lists, segments, senders, templates), read for the APIs that
name them their own way: by a seed's numbers, or whole collections a tenant keeps small.

Reads only; each raises NotFound for what is not there, which the caller names as the
parameter that referred to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from chalicelib.domain.lists import ContactList
from chalicelib.domain.segments import Segment
from chalicelib.domain.senders import Sender
from chalicelib.domain.templates import Template
from chalicelib.services import senders as sender_service
from chalicelib.store import lists, segments, senders, templates

T = TypeVar("T")
_PAGE = 100


def _every_item(read_page: Callable[[str | None, int], tuple[list[T], str | None]]) -> list[T]:
    """Every item of a cursor-paged store listing (collections a tenant keeps small)."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        found, cursor = read_page(cursor, _PAGE)
        items.extend(found)
        if cursor is None:
            return items


# -- lists -----------------------------------------------------------------------------------
def contact_list_by_number(tenant_id: str, number: int) -> ContactList:
    return lists.get_list_by_number(tenant_id, number)


def contact_lists(tenant_id: str, list_ids: Iterable[str]) -> dict[str, ContactList]:
    """Those of ``list_ids`` that exist, by id."""
    return lists.get_lists(tenant_id, list_ids)


def all_contact_lists(tenant_id: str) -> list[ContactList]:
    return _every_item(lambda cursor, limit: lists.list_lists(tenant_id, limit, cursor))


# -- segments ----------------------------------------------------------------------------------
def segment(tenant_id: str, segment_id: str) -> Segment:
    return segments.get_segment(tenant_id, segment_id)


def segment_by_number(tenant_id: str, number: int) -> Segment:
    return segments.get_segment_by_number(tenant_id, number)


def segments_by_id(tenant_id: str, segment_ids: Iterable[str]) -> dict[str, Segment]:
    """Those of ``segment_ids`` that exist, by id."""
    return segments.get_segments(tenant_id, segment_ids)


def all_segments(tenant_id: str) -> list[Segment]:
    return _every_item(lambda cursor, limit: segments.list_segments(tenant_id, limit, cursor))


# -- senders and templates -------------------------------------------------------------------
def sender(tenant_id: str, sender_id: str) -> Sender:
    return senders.get_sender(tenant_id, sender_id)


def sender_by_number(tenant_id: str, number: int) -> Sender:
    return senders.get_sender_by_number(tenant_id, number)


def all_senders(tenant_id: str) -> list[Sender]:
    return _every_item(
        lambda cursor, limit: senders.list_senders(tenant_id, cursor=cursor, limit=limit)
    )


def with_live_verification(tenant_id: str, found: Sender) -> Sender:
    """``found`` with its SES status asked now (cached briefly, remembered), as
    GET /v1/senders/{id} shows it; an SMS sender as it is."""
    return sender_service.checked(tenant_id, found)


def template(tenant_id: str, template_id: str) -> Template:
    return templates.get_template(tenant_id, template_id)
