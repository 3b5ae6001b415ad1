"""Contacts: create, read, update (partial), delete, list. Saving one emits ``contact.saved``;
deleting one, or changing its status to unsubscribed, bounced or complained, ends its
flows (chalicelib.services.enrolments)."""

from __future__ import annotations

from typing import Annotated, Any

from chalice import Blueprint
from pydantic import BeforeValidator, Field

from chalicelib.api.models import Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.contacts import (
    Contact,
    ContactFields,
    ContactFilter,
    ContactStatus,
    EmailAddress,
    PhoneNumber,
)
from chalicelib.domain.flows.step import ExitReason
from chalicelib.observability import logger, metrics
from chalicelib.services import enrolments as flow_entry
from chalicelib.store import contacts as store
from chalicelib.store.events_out import publish_events

blueprint = Blueprint(__name__)


class ContactInput(ContactFields, Input):
    """A contact's fields. On PATCH only the fields sent change; null clears a field."""


def _restore_plus(value: Any) -> Any:
    """A ``+`` left unencoded in a query string arrives as a space: read it as the ``+``."""
    if isinstance(value, str) and value[:1] in (" ", *"0123456789"):
        return "+" + value.strip()
    return value


class ContactListQuery(ListQuery):
    """Pagination and filters. ``email`` and ``phone`` are exact lookups; ``status``, ``tag``
    and ``list_id`` are checked on each contact read, so a page may come back short (even
    empty) with a ``next_cursor``: follow the cursor until it is null."""

    email: EmailAddress | None = None
    phone: Annotated[PhoneNumber | None, BeforeValidator(_restore_plus)] = None
    status: ContactStatus | None = None
    tag: str | None = Field(default=None, max_length=64)
    list_id: str | None = Field(default=None, max_length=128)


def _announce(tenant_id: str, contact: Contact, *, created: bool, changed: list[str]) -> None:
    """Publish ``contact.saved``; the contact is saved already, so a failure is logged, not
    returned (the caller retrying would only meet a 409 or an unchanged contact)."""
    try:
        publish_events(tenant_id, [store.saved_event(contact, created=created, changed=changed)])
    except Exception:
        logger.exception("contact.saved not published", extra={"contact_id": contact.id})
        metrics.add_metric(name="events_not_published", unit="Count", value=1)


@endpoint(
    blueprint,
    "/v1/contacts",
    "POST",
    idempotent=True,
    auth="tenant",
    tag="contacts",
    status=201,
    summary="Create a contact (409 naming the existing contact if its email or phone is taken)",
    body=ContactInput,
    response=Contact,
)
def create_contact(call: Call) -> Contact:
    contact = store.create_contact(call.tenant_id, call.body)
    _announce(call.tenant_id, contact, created=True, changed=sorted(call.body.model_fields_set))
    return contact


@endpoint(
    blueprint,
    "/v1/contacts",
    "GET",
    auth="tenant",
    tag="contacts",
    summary="List contacts, filtered by email, phone, status, tag or list_id",
    query=ContactListQuery,
    response=ListPage[Contact],
)
def list_contacts(call: Call) -> ListPage[Contact]:
    query: ContactListQuery = call.query
    where = ContactFilter(status=query.status, tag=query.tag, list_id=query.list_id)
    contacts, cursor = store.list_contacts(
        call.tenant_id,
        limit=query.limit,
        cursor=query.cursor,
        email=query.email,
        phone=query.phone,
        where=where,
    )
    return ListPage[Contact](items=contacts, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}",
    "GET",
    auth="tenant",
    tag="contacts",
    summary="Get a contact",
    response=Contact,
)
def get_contact(call: Call) -> Contact:
    return store.get_contact(call.tenant_id, call.params["contact_id"])


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}",
    "PATCH",
    auth="tenant",
    tag="contacts",
    summary="Change some of a contact's fields (null clears one; attributes merge by key)",
    body=ContactInput,
    response=Contact,
)
def update_contact(call: Call) -> Contact:
    contact, changed = store.update_contact(call.tenant_id, call.params["contact_id"], call.body)
    if changed:
        _announce(call.tenant_id, contact, created=False, changed=changed)
    if "status" in changed:
        flow_entry.exit_on_status(call.tenant_id, contact, clock.now())
    return contact


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}",
    "DELETE",
    auth="tenant",
    tag="contacts",
    status=204,
    summary="Delete a contact and free its email and phone (it leaves every flow)",
)
def delete_contact(call: Call) -> None:
    contact = store.get_contact(call.tenant_id, call.params["contact_id"])
    # Flows first: if the deletion then fails, a retry finds the contact and finishes;
    # the other way round, a retry would meet a 404 and leave its enrolments behind.
    flow_entry.exit_contact_everywhere(call.tenant_id, contact.id, ExitReason.DELETED, clock.now())
    store.delete_contact(call.tenant_id, contact.id)
