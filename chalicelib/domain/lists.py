"""Static lists: named sets of contacts that change only when someone adds or removes members.

Membership lives twice, on purpose: on the contact (``Contact.lists``, so a segment or an
audience is decided from the contact alone) and as one item per member under the list (so
a list's members can be paged without reading every contact). The contact side is the
truth for audiences; the store keeps the two in step (see chalicelib.store.lists).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from chalicelib.domain.model import Model

MEMBERS_PER_CALL = 1000
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000


def new_list_id() -> str:
    return "l_" + uuid.uuid4().hex


class ContactList(Model):
    """A static list as stored and returned."""

    id: str
    number: int = Field(description="The list's small integer id (seed-003 API).")
    name: str
    description: str = ""
    edition_id: str | None = Field(
        default=None, description="Optional scope naming the edition (seed-002 API) it belongs to."
    )
    member_count: int = Field(
        default=0,
        description="Members added minus members removed; counts a deleted contact until it "
        "is removed from the list.",
    )
    created_at: datetime
    updated_at: datetime


class MembershipChange(Model):
    """What one bulk add or remove did; unknown contacts are reported, never fatal."""

    changed: int = Field(description="Contacts added (or removed) by this call.")
    unchanged: int = Field(description="Contacts that already were (or were not) members.")
    unknown_contact_ids: list[str] = Field(default_factory=list)
    unknown_emails: list[str] = Field(default_factory=list)
    member_count: int
