"""Contact events arriving from Herald's bus: timeline, per-contact summary, trigger reactors.

Every event on the bus whose detail names a tenant reaches the triggers queue through the
bus rule in chalicelib.resources (that rule IS the "forward to the triggers queue": events
posted over HTTP are published to the bus, not queued by hand, so both kinds of producer
share one path). ``receive_bus_event`` then, for each EventBridge envelope:

1. reads the detail (``chalicelib.domain.events.EventDetail``); a malformed one fails and,
   after the queue's retries, rests in the dead-letter queue for someone to look at;
2. finds the contact by id, else email, else phone, in the tenant the detail names. An
   event for a contact the tenant does not have (never created, deleted, or another
   tenant's id) is an orphan: logged, counted in the ``events_orphaned`` metric, dropped.
   Contacts are never created from events: consent comes with a contact, not a click;
3. drops a duplicate: a detail's ``event_id`` (from a producer other than Herald) already
   carried by another bus event in the last 7 days (``store.timeline.claim_event_id``);
4. writes the timeline item, conditional on its key (time + event id): only the first
   delivery succeeds, and only then is the event counted on the contact (``record_event``);
5. hands the event to every reactor registered with ``on_contact_event`` (the campaign
   engine's triggers). Reactors also run on a redelivery (a reactor that failed is why the
   message came back), so a reactor must be idempotent per event id.

The bus is trusted: only principals with PutEvents on it (Herald's functions and whoever
the operator grants) can post, so the tenant id in a detail is believed. The HTTP route
sets it from the API key, never from the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.contacts import (
    Contact,
    is_contact_id,
    normalize_email,
    normalize_phone,
    utc,
)
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.events import (
    BusEnvelope,
    ContactIdentity,
    EventDetail,
    TimelineEvent,
    is_event_name,
)
from chalicelib.domain.tenants import is_tenant_id
from chalicelib.observability import logger, metrics
from chalicelib.store import contacts
from chalicelib.store.events_out import EVENT_SOURCE
from chalicelib.store.timeline import claim_event_id, record_on_timeline

ContactEventReactor = Callable[[str, TimelineEvent, Contact], None]
_REACTORS: dict[str, ContactEventReactor] = {}


class MalformedEvent(Exception):
    """A bus event Herald cannot read; it fails and ends in the dead-letter queue."""


def on_contact_event(reactor: ContactEventReactor) -> ContactEventReactor:
    """Register ``reactor(tenant_id, event, contact)`` to run for every contact event.

    ``contact`` is read after the event was counted, so its ``events`` summary includes it.
    Registering the same function twice is harmless.
    """
    _REACTORS[f"{reactor.__module__}.{reactor.__qualname__}"] = reactor
    return reactor


def receive_bus_event(message: dict[str, Any]) -> None:
    """Record one bus event on its contact and run the reactors (steps in the docstring)."""
    envelope = BusEnvelope.model_validate(message)
    name = envelope.detail_type
    detail = _detail(name, envelope.detail)
    tenant_id = detail.tenant_id
    logger.append_keys(tenant_id=tenant_id)
    contact = find_contact(tenant_id, detail.contact) if detail.contact else None
    if contact is None:
        logger.warning("orphan event dropped", extra={"event": name, "bus_event_id": envelope.id})
        metrics.add_metric(name="events_orphaned", unit="Count", value=1)
        return
    if _seen_before(tenant_id, envelope, detail):
        logger.info("duplicate event dropped", extra={"event": name, "bus_event_id": envelope.id})
        metrics.add_metric(name="events_duplicate", unit="Count", value=1)
        return
    event = TimelineEvent(
        id=detail.event_id or envelope.id,
        name=name,
        occurred_at=utc(detail.occurred_at or envelope.time),  # naive means UTC
        received_at=clock.now(),
        source=envelope.source,
        properties=detail.properties,
    )
    recorded = record_on_timeline(tenant_id, contact.id, event)
    try:
        if recorded:
            contacts.record_event(tenant_id, contact.id, name, event.occurred_at)
        current = contacts.get_contact(tenant_id, contact.id) if _REACTORS else contact
    except NotFound:  # deleted since we found it: nothing left to count or react for
        return
    if recorded:
        metrics.add_metric(name="events_recorded", unit="Count", value=1)
    for reactor in list(_REACTORS.values()):
        reactor(tenant_id, event, current)


def _seen_before(tenant_id: str, envelope: BusEnvelope, detail: EventDetail) -> bool:
    """Whether another bus event carried this producer's ``event_id`` in the last 7 days.

    The claim's owner is the bus event's own id, so SQS redelivering THIS event (a reactor
    failed) is processed again, while a second PutEvents of the same event_id is not.
    Herald's own events are unique already (``POST /v1/events`` checked the caller's id).
    """
    if detail.event_id is None or envelope.source == EVENT_SOURCE:
        return False
    return claim_event_id(tenant_id, detail.event_id, envelope.id, clock.now()) is not None


def _detail(name: str, raw: Any) -> EventDetail:
    try:
        detail = EventDetail.model_validate(raw)
    except ValueError as error:
        raise MalformedEvent(f"event {name!r} has an unreadable detail: {error}") from None
    if not is_tenant_id(detail.tenant_id):
        raise MalformedEvent(f"event {name!r} names no valid tenant")
    if not is_event_name(name):
        raise MalformedEvent(f"{name!r} is not a valid event name")
    return detail


def find_contact(tenant_id: str, identity: ContactIdentity) -> Contact | None:
    """The tenant's contact with this id, else this email, else this phone; None if none."""
    if identity.id and is_contact_id(identity.id):
        try:
            return contacts.get_contact(tenant_id, identity.id)
        except NotFound:
            pass
    lookups: list[tuple[str | None, Callable[[str], str], Callable[[str, str], Contact | None]]]
    lookups = [
        (identity.email, normalize_email, contacts.find_by_email),
        (identity.phone, normalize_phone, contacts.find_by_phone),
    ]
    for given, normalize, find in lookups:
        if not given:
            continue
        try:
            found = find(tenant_id, normalize(given))
        except ValidationFailed:  # an identity no contact could have
            continue
        if found is not None:
            return found
    return None
