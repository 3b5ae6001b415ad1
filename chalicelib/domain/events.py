"""Contact events: what arrives on Herald's bus about a contact, and what the timeline keeps.

Whoever produces an event (``POST /v1/events``, Herald's own ``contact.saved``, a tenant's
system with PutEvents rights on the bus) puts the same ``detail`` on the bus:
``{tenant_id, contact: {id | email | phone}, properties?, occurred_at?, event_id?}``, with
the event name as the detail-type. ``EventDetail`` is that contract, read leniently
(unknown keys ignored) because producers outside Herald write it too.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from chalicelib.domain.model import Model

EVENT_NAME_MAX_LENGTH = 100
EVENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
PROPERTIES_MAX_BYTES = 16 * 1024
_EVENT_NAME = re.compile(EVENT_NAME_PATTERN)


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON (no NaN or infinities), at most PROPERTIES_MAX_BYTES serialized."""
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise ValueError(f"not a JSON object: {error}") from None
    if size > PROPERTIES_MAX_BYTES:
        raise ValueError(f"is {size} bytes serialized; the limit is {PROPERTIES_MAX_BYTES}")
    return value


def is_event_name(value: str) -> bool:
    return len(value) <= EVENT_NAME_MAX_LENGTH and bool(_EVENT_NAME.match(value))


EventName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=EVENT_NAME_MAX_LENGTH,
        pattern=EVENT_NAME_PATTERN,
        description="e.g. purchase, lead.created; letters, digits and _ . : -",
    ),
]
Properties = Annotated[dict[str, Any], AfterValidator(_properties)]


class ContactIdentity(Model):
    """Who an event is about, by any of the identities a contact has (id wins, then email)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    email: str | None = None
    phone: str | None = None


class EventDetail(Model):
    """The ``detail`` of a contact event on the bus."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    contact: ContactIdentity | None = None
    properties: Properties = Field(default_factory=dict)
    occurred_at: datetime | None = None
    event_id: str | None = Field(
        default=None,
        max_length=100,
        description="The event's id: Herald's for events it accepted over HTTP; another "
        "producer's own id is unique per tenant for 7 days (a repeat is dropped). "
        "Without one, the bus event id is used.",
    )


class BusEnvelope(Model):
    """The parts of an EventBridge event Herald reads (the triggers queue gets it as is).

    Deliberately not Powertools' EventBridgeModel: that one requires every envelope field
    (``account``, ``region``…), which Herald never reads and the embedded bus leaves out.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type")
    source: str
    time: datetime
    detail: dict[str, Any]


class TimelineEvent(Model):
    """One event on a contact's timeline, as stored and returned (newest first)."""

    id: str
    name: str
    occurred_at: datetime
    received_at: datetime
    source: str
    properties: dict[str, Any] = Field(default_factory=dict)
