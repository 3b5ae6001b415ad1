"""Contacts: who Herald sends to, and the rules every contact obeys wherever it comes from.

The same field types validate a contact arriving through ``POST /v1/contacts``, a
``PATCH``, or one row of a bulk import, so the three cannot disagree about what a valid
email, phone, timezone or attribute object is. Identity is the case-folded email and the
E.164 phone: those are the keys that make a contact unique within a tenant.

``lists`` and ``events`` are denormalised onto the contact (kept up to date by
``chalicelib.store.contacts.set_list_membership`` and ``record_event``) so that a segment
can be evaluated from a contact alone, without one query per contact.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
import uuid
import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.model import Model

ContactStatus = Literal["subscribed", "unsubscribed", "bounced", "complained"]
Identity = tuple[str, str]  # ("email" | "phone", normalized value): unique per tenant

ATTRIBUTES_MAX_BYTES = 16 * 1024  # serialized JSON; keeps a contact far below DynamoDB's 400 KB
ATTRIBUTES_MAX_DEPTH = 16  # DynamoDB refuses documents nested deeper than 32 levels
NAME_MAX_LENGTH = 200
TAG_MAX_LENGTH = 64
TAGS_MAX = 100
LEAD_SCORE_LIMIT = 10**9
_DYNAMO_NUMBER_LIMIT = 10**38  # the largest magnitude DynamoDB can store
_CONTACT_ID = re.compile(r"^c_[0-9a-f]{32}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}$")
_FORBIDDEN_IN_TEXT = frozenset("\r\n\x00")

# The fields a caller may set; everything else on a contact is derived by Herald.
PROFILE_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "attributes",
    "tags",
    "lead_score",
    "status",
    "email_consent_at",
    "sms_consent_at",
    "telegram_chat_id",
)
TELEGRAM_ADDRESS_PREFIX = "telegram:"  # a chat as an address (suppression, the ledger)
_TELEGRAM_CHAT_ID = re.compile(r"^-?[0-9]{1,20}$")


# -- identity ---------------------------------------------------------------------------
def new_contact_id() -> str:
    return "c_" + uuid.uuid4().hex


def imported_contact_id(import_id: str, line: int) -> str:
    """The id a contact created by ``line`` of an import gets: the same on every retry.

    Deterministic ids make a re-run chunk recognise the contacts it created the first
    time (and count them as created again, not as updated).
    """
    digest = hashlib.sha256(f"{import_id}:{line}".encode()).hexdigest()
    return "c_" + digest[:32]


def is_contact_id(value: str) -> bool:
    return bool(_CONTACT_ID.match(value))


def normalize_email(value: str) -> str:
    """The identity form of an email: syntax-checked, then lower-cased as a whole.

    Lower-casing the local part too is deliberate: mailbox providers treat it
    case-insensitively in practice, and two contacts for ``Ann@x.com`` and ``ann@x.com``
    would be a duplicate, not two people.
    """
    try:
        return _email(value)
    except ValueError as error:
        raise ValidationFailed(str(error), field="email") from None


def normalize_phone(value: str, default_region: str | None = None) -> str:
    """A phone number in E.164 (``+4915112345678``); without a ``+`` it needs a region."""
    try:
        return _phone(value, default_region)
    except ValueError as error:
        raise ValidationFailed(str(error), field="phone") from None


def _email(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("email must be a string")
    # Imported on first use: email_validator compiles its RFC grammar at import, and most
    # functions never validate an address.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None
    return checked.normalized.lower()


def _phone(value: str, default_region: str | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError("phone must be a string")
    import phonenumbers  # on first use, like email_validator above

    try:
        parsed = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number (use E.164, e.g. +4915112345678)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _phone_e164(value: str) -> str:
    # A validator with a second parameter would be handed pydantic's ValidationInfo.
    return _phone(value)


# -- field types ------------------------------------------------------------------------
def _plain_text(value: str) -> str:
    """Names end up in email headers: a CR, LF or NUL there is an injection, not a name."""
    if any(ch in _FORBIDDEN_IN_TEXT for ch in value):
        raise ValueError("must not contain CR, LF or NUL characters")
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    zones = _iana_zones()
    if zones:
        if value not in zones:
            raise ValueError(f"not an IANA timezone: {value!r} (e.g. Europe/Berlin)")
        return value
    try:  # no zone list on this system: fall back to loading the zone itself
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not an IANA timezone: {value!r} (e.g. Europe/Berlin)") from None
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("not a locale tag (e.g. en, en-US, pt_BR)")
    return value.replace("_", "-")


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    """Any JSON object DynamoDB can store, at most ATTRIBUTES_MAX_BYTES serialized."""
    _check_storable(value, depth=1)
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise ValueError(f"not a JSON object: {error}") from None
    if size > ATTRIBUTES_MAX_BYTES:
        raise ValueError(f"is {size} bytes serialized; the limit is {ATTRIBUTES_MAX_BYTES}")
    return value


def _check_storable(value: Any, depth: int) -> None:
    if depth > ATTRIBUTES_MAX_DEPTH:
        raise ValueError(f"is nested deeper than {ATTRIBUTES_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValueError("keys must be non-empty strings")
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int) and abs(value) >= _DYNAMO_NUMBER_LIMIT:
        raise ValueError("holds a number too large to store")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds a number that is not finite")


def _tags(value: list[str]) -> list[str]:
    """Tags are compared exactly; duplicates are dropped, first occurrence kept."""
    return list(dict.fromkeys(value))


EmailAddress = Annotated[str, AfterValidator(_email)]
PhoneNumber = Annotated[str, AfterValidator(_phone_e164)]
PersonName = Annotated[str, Field(max_length=NAME_MAX_LENGTH), AfterValidator(_plain_text)]
TimezoneName = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
LocaleTag = Annotated[str, Field(max_length=35), AfterValidator(_locale)]
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH), AfterValidator(_plain_text)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX), AfterValidator(_tags)]
Attributes = Annotated[dict[str, Any], AfterValidator(_attributes)]
LeadScore = Annotated[int, Field(ge=-LEAD_SCORE_LIMIT, le=LEAD_SCORE_LIMIT)]


# -- models -----------------------------------------------------------------------------
class EventSummary(Model):
    """How often a contact did one named thing, and when first and last."""

    count: int
    first_at: datetime
    last_at: datetime


def is_telegram_chat_id(value: str) -> bool:
    """A Telegram chat id as the Bot API gives it (negative for groups)."""
    return bool(_TELEGRAM_CHAT_ID.match(value))


def _telegram_chat_id(value: str | int) -> str:
    text = str(value).strip()
    if not is_telegram_chat_id(text):
        raise ValueError("a Telegram chat id is an integer, as the Bot API gives it")
    return text


TelegramChatId = Annotated[str, BeforeValidator(_telegram_chat_id)]
PushPlatformName = Literal["APNS", "APNS_SANDBOX", "GCM"]


class Device(Model):
    """A mobile device registered for push: its SNS endpoint under a tenant's push sender."""

    platform: PushPlatformName
    token: str
    endpoint_arn: str
    sender_id: str
    registered_at: datetime


class Contact(Model):
    """A contact as stored and returned. At least one of email and phone is always set."""

    id: str
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    locale: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    lead_score: int | None = None
    status: ContactStatus = "subscribed"
    email_consent_at: datetime | None = None
    sms_consent_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    lists: list[str] = Field(
        default_factory=list, description="Ids of the static lists this contact is a member of."
    )
    events: dict[str, EventSummary] = Field(
        default_factory=dict, description="Per event name: count, first and last time."
    )
    telegram_chat_id: str | None = None
    devices: list[Device] = Field(
        default_factory=list,
        description="Devices registered for push (POST /v1/contacts/{id}/devices), oldest first.",
    )
    created_at: datetime
    updated_at: datetime


class ContactFields(Model):
    """What a caller may set on a contact: the body of a create, a patch, or an import row.

    In a patch only the fields present count (``model_fields_set``) and an explicit null
    clears a field; see ``apply_changes``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailAddress | None = None
    phone: PhoneNumber | None = Field(default=None, description="E.164, e.g. +4915112345678")
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    timezone: TimezoneName | None = Field(default=None, description="IANA, e.g. Europe/Berlin")
    locale: LocaleTag | None = None
    attributes: Attributes | None = Field(
        default=None,
        description=(
            "A JSON object (at most 16 KB serialized). On update its keys are merged into the "
            "stored object; a key set to null is removed; attributes: null clears them all."
        ),
    )
    tags: Tags | None = None
    lead_score: LeadScore | None = None
    status: ContactStatus | None = None
    email_consent_at: AwareDatetime | None = None
    sms_consent_at: AwareDatetime | None = None
    telegram_chat_id: TelegramChatId | None = Field(
        default=None, description="The contact's chat with the tenant's Telegram bot."
    )


# -- rules ------------------------------------------------------------------------------
def new_contact(fields: ContactFields, now: datetime, contact_id: str | None = None) -> Contact:
    """A contact made from ``fields`` alone (a create, or an import row with a new identity)."""
    blank = Contact(id=contact_id or new_contact_id(), created_at=now, updated_at=now)
    contact, _ = apply_changes(blank, fields, now, creating=True)
    return contact


def apply_changes(
    contact: Contact, fields: ContactFields, now: datetime, *, creating: bool = False
) -> tuple[Contact, list[str]]:
    """``contact`` with the fields the caller sent applied; also the names that changed.

    Explicit null clears (attributes to ``{}``, tags to ``[]``); ``attributes`` merges by
    key. Status changes keep ``unsubscribed_at`` true: set when unsubscribing, cleared
    when subscribed again.
    """
    values = contact.model_dump()
    for name in fields.model_fields_set:
        given = getattr(fields, name)
        if name == "attributes":
            values["attributes"] = _merged_attributes(contact.attributes, given, creating)
        elif name == "tags":
            values["tags"] = given or []
        elif name == "status":
            if given is None:
                raise ValidationFailed("status cannot be cleared", field="status")
            values.update(status_changes(contact, given, now))
        else:
            values[name] = given
    if not values["email"] and not values["phone"]:
        field = "phone" if "phone" in fields.model_fields_set else "email"
        raise ValidationFailed("a contact needs an email or a phone", field=field)
    changed = [n for n in PROFILE_FIELDS if values[n] != getattr(contact, n)]
    if not changed and not creating:
        return contact, []
    values["updated_at"] = now
    return Contact.model_validate(values), changed


def _merged_attributes(
    stored: dict[str, Any], given: dict[str, Any] | None, creating: bool
) -> dict[str, Any]:
    if given is None:
        return {}
    merged = {} if creating else dict(stored)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        return _attributes(merged)
    except ValueError as error:
        raise ValidationFailed(f"attributes: {error}", field="attributes") from None


def status_changes(contact: Contact, status: ContactStatus, at: datetime) -> dict[str, Any]:
    """The fields a move to ``status`` sets (a no-op move changes nothing)."""
    if status == contact.status:
        return {}
    changes: dict[str, Any] = {"status": status}
    if status == "unsubscribed":
        changes["unsubscribed_at"] = at
    elif status == "subscribed":
        changes["unsubscribed_at"] = None
    return changes


def identity_keys(contact: Contact | ContactFields) -> list[Identity]:
    """The identities a contact claims, as ``(field, value)``: email first, then phone."""
    keys = []
    if contact.email:
        keys.append(("email", contact.email))
    if contact.phone:
        keys.append(("phone", contact.phone))
    return keys


def contact_saved_detail(contact: Contact, *, created: bool, changed: list[str]) -> dict[str, Any]:
    """The ``detail`` of a ``contact.saved`` event (the publisher adds ``tenant_id``)."""
    profile = contact.model_dump(
        mode="json",
        exclude={"id", "email", "phone", "events", "devices", "created_at", "updated_at"},
    )
    return {
        "contact": {"id": contact.id, "email": contact.email, "phone": contact.phone},
        "properties": {**profile, "created": created, "changed": changed},
    }


def utc(at: datetime) -> datetime:
    """``at`` in UTC; a naive time is taken to be UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def first_error(error: ValidationError) -> tuple[str, str]:
    """The field (dotted path) and message of a pydantic error's first problem."""
    problem = error.errors(include_url=False, include_input=False, include_context=False)[0]
    field = ".".join(str(part) for part in problem["loc"])
    return field, problem["msg"].removeprefix("Value error, ")


class ContactFilter(Model):
    """Conditions a listing checks on each contact it reads (none of them is a key)."""

    model_config = ConfigDict(frozen=True)

    status: ContactStatus | None = None
    tag: str | None = None
    list_id: str | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.status, self.tag, self.list_id))

    def matches(self, contact: Contact) -> bool:
        return (
            (self.status is None or contact.status == self.status)
            and (self.tag is None or self.tag in contact.tags)
            and (self.list_id is None or self.list_id in contact.lists)
        )
