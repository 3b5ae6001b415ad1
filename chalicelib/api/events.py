"""Events in: ``POST /v1/events`` puts events about contacts on Herald's bus; and a
contact's timeline, ``GET /v1/contacts/{contact_id}/events``.

Posted events take the same road as any producer's: they are published to the bus
(``publish_events``), whose rule delivers them to the triggers queue, where
chalicelib.pipeline.events records them. The route resolves each contact first, in the
caller's tenant only, so an event for an unknown contact (or another tenant's) is reported
back instead of being lost downstream; the tenant id in the published detail is the API
key's, never the body's (a body naming one is refused as an unknown field). An event
with an ``event_id`` the tenant used in the last 7 days is not published again: its
answer says ``duplicate`` and carries the first one's id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chalice import Blueprint
from pydantic import AwareDatetime, Field, field_validator, model_validator

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.contacts import EmailAddress, PhoneNumber
from chalicelib.domain.events import EventName, Properties, TimelineEvent, new_event_id
from chalicelib.store import contacts as contact_store
from chalicelib.store.events_out import BusEvent, publish_events
from chalicelib.store.timeline import claim_event_id, list_timeline, release_event_id

blueprint = Blueprint(__name__)

EVENTS_PER_CALL = 100
FUTURE_TOLERANCE = timedelta(days=1)


class EventContact(Input):
    """Exactly one of the contact's id, email or phone."""

    id: str | None = Field(default=None, max_length=64)
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EventContact:
        if sum(v is not None for v in (self.id, self.email, self.phone)) != 1:
            raise ValueError("give exactly one of id, email or phone")
        return self


class PostedEvent(Input):
    name: EventName
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Your id of the event, unique per tenant for 7 days: a repeat is answered "
        "with duplicate true and not processed again.",
    )
    contact: EventContact
    properties: Properties = Field(
        default_factory=dict, description="Any JSON object, at most 16 KB serialized."
    )
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When it happened (with a timezone); default: now."
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > clock.now() + FUTURE_TOLERANCE:
            raise ValueError("must not be more than a day in the future")
        return value


class PostEvents(Input):
    events: list[PostedEvent] = Field(min_length=1, max_length=EVENTS_PER_CALL)


class AcceptedEvent(ApiModel):
    index: int = Field(description="Position in the request's events.")
    id: str = Field(description="The event's id, as its timeline entry will show it.")
    duplicate: bool = Field(
        default=False,
        description="Its event_id was seen in the last 7 days: id is the first one's, and "
        "this one is not processed.",
    )


class UnknownContact(ApiModel):
    index: int
    contact: EventContact


class EventsAccepted(ApiModel):
    accepted: list[AcceptedEvent]
    unknown_contacts: list[UnknownContact] = Field(
        description="Events not accepted: no such contact in this tenant."
    )


@endpoint(
    blueprint,
    "/v1/events",
    "POST",
    idempotent=True,
    auth="tenant",
    tag="events",
    status=202,
    summary="Record 1 to 100 events about contacts (timeline, segments, triggers)",
    body=PostEvents,
    response=EventsAccepted,
)
def post_events(call: Call) -> EventsAccepted:
    events: list[PostedEvent] = call.body.events
    owners = _resolve(call.tenant_id, [e.contact for e in events])
    now = clock.now()
    accepted: list[AcceptedEvent] = []
    unknown: list[UnknownContact] = []
    published: list[BusEvent] = []
    claimed: list[tuple[str, str]] = []
    for index, event in enumerate(events):
        contact_id = owners.get(index)
        if contact_id is None:
            unknown.append(UnknownContact(index=index, contact=event.contact))
            continue
        event_id = new_event_id()
        if event.event_id is not None:
            first = claim_event_id(call.tenant_id, event.event_id, event_id, now)
            if first is not None:
                accepted.append(AcceptedEvent(index=index, id=first, duplicate=True))
                continue
            claimed.append((event.event_id, event_id))
        occurred_at = event.occurred_at or now
        detail = {
            "event_id": event_id,
            "contact": {"id": contact_id},
            "properties": event.properties,
            "occurred_at": occurred_at.isoformat(),
        }
        published.append(BusEvent(event.name, detail))
        accepted.append(AcceptedEvent(index=index, id=event_id))
    try:
        publish_events(call.tenant_id, published)
    except Exception:
        for given, owner in claimed:  # not published: a retry must not be a "duplicate"
            release_event_id(call.tenant_id, given, owner)
        raise
    return EventsAccepted(accepted=accepted, unknown_contacts=unknown)


def _resolve(tenant_id: str, refs: list[EventContact]) -> dict[int, str]:
    """Each ref's contact id, by position, for the refs that name an existing contact.

    Two batched reads whatever the mix: the identity items of the emails and phones, then
    the contacts themselves (which also proves that ids given directly exist).
    """
    identities = {i: identity for i, ref in enumerate(refs) if (identity := _identity(ref))}
    owners = contact_store.resolve_identities(tenant_id, identities.values())
    claimed = {i: ref.id for i, ref in enumerate(refs) if ref.id is not None}
    claimed.update({i: owners[key] for i, key in identities.items() if key in owners})
    existing = contact_store.get_contacts(tenant_id, set(claimed.values()))
    return {index: contact_id for index, contact_id in claimed.items() if contact_id in existing}


def _identity(ref: EventContact) -> tuple[str, str] | None:
    if ref.email is not None:
        return ("email", ref.email)
    if ref.phone is not None:
        return ("phone", ref.phone)
    return None


@endpoint(
    blueprint,
    "/v1/contacts/{contact_id}/events",
    "GET",
    auth="tenant",
    tag="events",
    summary="A contact's timeline of events, newest first",
    query=ListQuery,
    response=ListPage[TimelineEvent],
)
def contact_timeline(call: Call) -> ListPage[TimelineEvent]:
    contact = contact_store.get_contact(call.tenant_id, call.params["contact_id"])
    events, cursor = list_timeline(call.tenant_id, contact.id, call.query.limit, call.query.cursor)
    return ListPage[TimelineEvent](items=events, next_cursor=cursor)
