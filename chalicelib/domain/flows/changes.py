"""What a flow's contact actions (``set_field``, tags, ``update_score``) do to a contact.

Each becomes a patch (``ContactFields``) applied by ``contacts.apply_changes``, the one
rule for every contact write (API, imports, flows), so a flow can set nothing a patch
could not, with the same validation. The worker writes the result in the step's claim
transaction, conditional on the contact's version, so the change happens exactly when
the step does.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from chalicelib.domain.contacts import Contact, ContactFields, apply_changes
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.flows.step import Score, SetField, Tag

ContactIntent = SetField | Tag | Score


class ChangeRefused(Exception):
    """The value does not fit the field (a bad timezone, a score out of range): the step
    is skipped with reason ``invalid_value`` and the trace says why."""


def apply_intent(
    contact: Contact, intent: ContactIntent, now: datetime
) -> tuple[Contact, list[str]]:
    """The contact after ``intent`` and the profile fields it changed (none: a no-op)."""
    try:
        return apply_changes(contact, _patch(contact, intent), now)
    except (ValidationError, ValidationFailed) as error:
        raise ChangeRefused(str(error).splitlines()[0]) from error


def _patch(contact: Contact, intent: ContactIntent) -> ContactFields:
    if isinstance(intent, SetField):
        name = intent.field.removeprefix("attributes.")
        if name != intent.field:
            return ContactFields.model_validate({"attributes": {name: intent.value}})
        return ContactFields.model_validate({intent.field: intent.value})
    if isinstance(intent, Tag):
        tags = [t for t in contact.tags if t != intent.tag]
        if intent.add:
            tags = [*contact.tags] if intent.tag in contact.tags else [*contact.tags, intent.tag]
        return ContactFields.model_validate({"tags": tags})
    return ContactFields.model_validate({"lead_score": (contact.lead_score or 0) + intent.delta})
