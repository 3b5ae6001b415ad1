"""Who enters a flow, at which trigger, and whether they may enter again.

Pure decisions the enrolment service asks before it writes an enrolment: does this
event fire this trigger (``fires``), what makes two deliveries of one business event the
same (``dedupe_value``), and may this contact enter now, given the flow's dates and its
re-entry policy (``refusal``). A refusal is a reason, never an exception: the enrolment
API answers it per contact, and the trace of a held enrolment shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from chalicelib.domain.contacts import Contact
from chalicelib.domain.flows.graph import FlowSettings, Node
from chalicelib.domain.flows.nodes import EventTrigger, where_tree
from chalicelib.domain.flows.step import Enrolment, EventLike, TriggerEvent
from chalicelib.domain.segments import matches

Refusal = Literal["before_start", "ended", "already_enrolled", "reentry_once", "reentry_interval"]


@dataclass(frozen=True)
class FlowWindow:
    """The flow's optional ``starts_at`` / ``ends_at``."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None


def fires(trigger: Node, event: EventLike, now: datetime) -> bool:
    """Whether ``event`` fires ``trigger``: same name, and ``where`` holds over its properties."""
    config = trigger.config
    if not isinstance(config, EventTrigger) or config.event_type != event.name:
        return False
    if config.where is None:
        return True
    carrier = Contact(
        id="event",
        email="event@invalid",
        attributes=dict(event.properties),
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
    )
    return matches(where_tree(config.where), carrier, now)


def dedupe_value(trigger: Node, event: EventLike) -> str | None:
    """The value of the trigger's ``dedupe_key`` property in ``event`` (e.g. an order id), as
    text; None when the trigger names none or the event lacks it. One value enrols once."""
    config = trigger.config
    if not isinstance(config, EventTrigger) or config.dedupe_key is None:
        return None
    value = event.properties.get(config.dedupe_key)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def refusal(
    settings: FlowSettings,
    window: FlowWindow,
    previous: Enrolment | None,
    now: datetime,
) -> Refusal | None:
    """Why the contact may not enter now (``previous`` is its last enrolment), or None."""
    if window.starts_at is not None and now < window.starts_at:
        return "before_start"
    if window.ends_at is not None and now >= window.ends_at:
        return "ended"
    if previous is None:
        return None
    if not previous.exited:
        return "already_enrolled"
    policy = settings.reentry
    if policy.mode == "once":
        return "reentry_once"
    if policy.interval is not None and now - previous.entered_at < policy.interval.as_timedelta():
        return "reentry_interval"
    return None


def enrol(
    campaign_id: str,
    contact_id: str,
    trigger: Node,
    now: datetime,
    event: TriggerEvent | None = None,
    *,
    previous: Enrolment | None = None,
) -> Enrolment:
    """A new enrolment standing on ``trigger``, carrying the ``event`` that fired it; its
    first step moves it on.

    A re-entry goes on counting visits from the ``previous`` (exited) enrolment it
    replaces: a step's key (claim, ledger occurrence, webhook id, trace position) is its
    visit, so the second entry's welcome email is a new message, never mistaken for a
    retry of the first one's, and a stale wake of the old enrolment can never match.
    """
    return Enrolment(
        campaign_id=campaign_id,
        contact_id=contact_id,
        node_id=trigger.id,
        visit=0 if previous is None else previous.visit + 1,
        entered_at=now.astimezone(UTC),
        arrived_at=now.astimezone(UTC),
        trigger_event=event,
    )
