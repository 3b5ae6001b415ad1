"""Static lists: create, read, rename, delete, and add or remove members in bulk."""

from __future__ import annotations

from typing import Annotated

from chalice import Blueprint
from pydantic import Field, model_validator

from chalicelib.api.models import Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain.contacts import Contact, EmailAddress
from chalicelib.domain.lists import (
    DESCRIPTION_MAX_LENGTH,
    MEMBERS_PER_CALL,
    NAME_MAX_LENGTH,
    ContactList,
    MembershipChange,
)
from chalicelib.pipeline.lists import schedule_purge
from chalicelib.services import segment_triggers
from chalicelib.store import contacts as contact_store
from chalicelib.store import lists as store

blueprint = Blueprint(__name__)

EditionId = Annotated[str, Field(min_length=1, max_length=128, description="Edition scope.")]


class CreateList(Input):
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    description: str = Field(default="", max_length=DESCRIPTION_MAX_LENGTH)
    edition_id: EditionId | None = None


class UpdateList(Input):
    """Change any of these. A name or description left out (or null) stays as it is;
    ``edition_id: null`` removes the edition scope, the one thing a list can be without."""

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    edition_id: EditionId | None = None


class ListsQuery(ListQuery):
    edition_id: EditionId | None = None


class Members(Input):
    """Contacts by id and/or by email, at most MEMBERS_PER_CALL in all."""

    contact_ids: list[str] = Field(default_factory=list, max_length=MEMBERS_PER_CALL)
    emails: list[EmailAddress] = Field(default_factory=list, max_length=MEMBERS_PER_CALL)

    @model_validator(mode="after")
    def _between_one_and_limit(self) -> Members:
        total = len(self.contact_ids) + len(self.emails)
        if not 0 < total <= MEMBERS_PER_CALL:
            raise ValueError(f"give 1 to {MEMBERS_PER_CALL} contact_ids and emails in all")
        return self


@endpoint(
    blueprint,
    "/v1/lists",
    "POST",
    auth="tenant",
    tag="lists",
    status=201,
    summary="Create a static list",
    body=CreateList,
    response=ContactList,
)
def create_list(call: Call) -> ContactList:
    body: CreateList = call.body
    return store.create_list(call.tenant_id, body.name, body.description, body.edition_id)


@endpoint(
    blueprint,
    "/v1/lists",
    "GET",
    auth="tenant",
    tag="lists",
    summary="List static lists (optionally one edition's)",
    query=ListsQuery,
    response=ListPage[ContactList],
)
def list_lists(call: Call) -> ListPage[ContactList]:
    query: ListsQuery = call.query
    lists, cursor = store.list_lists(call.tenant_id, query.limit, query.cursor, query.edition_id)
    return ListPage[ContactList](items=lists, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/lists/{list_id}",
    "GET",
    auth="tenant",
    tag="lists",
    summary="Get a static list and its member count",
    response=ContactList,
)
def get_list(call: Call) -> ContactList:
    return store.get_list(call.tenant_id, call.params["list_id"])


@endpoint(
    blueprint,
    "/v1/lists/{list_id}",
    "PATCH",
    auth="tenant",
    tag="lists",
    summary="Rename a list, change its description or edition",
    body=UpdateList,
    response=ContactList,
)
def update_list(call: Call) -> ContactList:
    body: UpdateList = call.body
    changes = {
        name: value
        for name, value in body.model_dump(include=body.model_fields_set).items()
        if value is not None or name == "edition_id"
    }
    if not changes:
        return store.get_list(call.tenant_id, call.params["list_id"])
    return store.update_list(call.tenant_id, call.params["list_id"], changes)


@endpoint(
    blueprint,
    "/v1/lists/{list_id}",
    "DELETE",
    auth="tenant",
    tag="lists",
    status=204,
    summary="Delete a list; its members are let go in the background",
)
def delete_list(call: Call) -> None:
    deleted = store.delete_list(call.tenant_id, call.params["list_id"])
    schedule_purge(call.tenant_id, deleted.id)


@endpoint(
    blueprint,
    "/v1/lists/{list_id}/members",
    "POST",
    auth="tenant",
    tag="lists",
    summary="Add up to 1,000 contacts (ids or emails); unknown ones are reported",
    body=Members,
    response=MembershipChange,
)
def add_members(call: Call) -> MembershipChange:
    body: Members = call.body
    change, added = store.add_members(
        call.tenant_id, call.params["list_id"], body.contact_ids, body.emails
    )
    segment_triggers.queue_check(call.tenant_id, added)
    return change


@endpoint(
    blueprint,
    "/v1/lists/{list_id}/members:remove",
    "POST",
    auth="tenant",
    tag="lists",
    summary="Remove up to 1,000 contacts (ids or emails); unknown ones are reported",
    body=Members,
    response=MembershipChange,
)
def remove_members(call: Call) -> MembershipChange:
    body: Members = call.body
    change, removed = store.remove_members(
        call.tenant_id, call.params["list_id"], body.contact_ids, body.emails
    )
    segment_triggers.queue_check(call.tenant_id, removed)
    return change


@endpoint(
    blueprint,
    "/v1/lists/{list_id}/members",
    "GET",
    auth="tenant",
    tag="lists",
    summary="List a list's members (a page may be short when members were deleted)",
    query=ListQuery,
    response=ListPage[Contact],
)
def list_members(call: Call) -> ListPage[Contact]:
    list_id = call.params["list_id"]
    store.get_list(call.tenant_id, list_id)
    ids, cursor = store.list_member_ids(
        call.tenant_id, list_id, call.query.limit, call.query.cursor
    )
    found = contact_store.get_contacts(call.tenant_id, ids)
    return ListPage[Contact](items=[found[i] for i in ids if i in found], next_cursor=cursor)
