"""The queue handlers and the tick job of segment triggers (the logic is in
``chalicelib.services.segment_triggers``; docs/flows.md, "Segment triggers").

- ``on_contact_event``: a reactor of the triggers queue (``pipeline.events``): every
  ``contact.saved`` (an API write, an import that publishes, a flow action) re-evaluates
  every watched segment of the contact; any other event only the segments that read it.
- ``check_contacts``: ``segment.check`` on the triggers queue, for changes that publish
  no ``contact.saved`` (list membership, silent imports).
- ``start_hourly_sweep`` (tick job; later pages of tenants: ``sweep_tenants``) →
  ``sweep_segments``: once an hour, the time-relative watched segments of every tenant,
  a page of contacts per control-queue message. The baseline walk of a new revision is the same
  ``segment.sweep``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.contacts import Contact
from chalicelib.domain.events import TimelineEvent
from chalicelib.pipeline.messages import SegmentCheck, SegmentSweep, SegmentSweepTenants
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import segment_triggers as triggers
from chalicelib.services.enrolments import flow_that_caused
from chalicelib.store.contacts import CONTACT_SAVED
from chalicelib.store.segment_watch import claim_sweep_hour
from chalicelib.store.tenants import list_tenants

TENANT_PAGE = 100


def on_contact_event(tenant_id: str, event: TimelineEvent, contact: Contact) -> None:
    """Re-evaluate the contact's watched segments after one of its events."""
    if event.name == CONTACT_SAVED:
        created = [contact.id] if event.properties.get("created") else []
        caused_by = flow_that_caused(event)
        triggers.reevaluate(
            tenant_id, [contact.id], clock.now(), created=created, caused_by=caused_by
        )
    else:
        triggers.reevaluate(tenant_id, [contact.id], clock.now(), event=event.name)


batch_scope = triggers.batch_scope


def check_contacts(message: dict[str, Any]) -> None:
    check = SegmentCheck.model_validate(message)
    triggers.reevaluate(check.tenant_id, check.contact_ids, clock.now(), created=check.created)


def start_hourly_sweep(now: datetime) -> None:
    """The tick job: at the first tick of each hour, sweep the first page of tenants
    (the next pages go to the control queue)."""
    if claim_sweep_hour(now.replace(minute=0, second=0, microsecond=0)):
        _sweep_tenant_page(None)


def sweep_tenants(message: dict[str, Any]) -> None:
    _sweep_tenant_page(SegmentSweepTenants.model_validate(message).cursor)


def _sweep_tenant_page(cursor: str | None) -> None:
    """Queue the sweep of each tenant of this page that watches a time-relative segment,
    then the next page of tenants. One Query per tenant that watches nothing."""
    tenants, cursor = list_tenants(TENANT_PAGE, cursor)
    now = clock.now()
    messages = []
    for tenant in tenants:
        relative = [s.segment_id for s in triggers.watched(tenant.id, now) if s.time_relative]
        if relative:
            messages.append(SegmentSweep(tenant_id=tenant.id, segment_ids=relative).as_message())
    if cursor is not None:
        messages.append(SegmentSweepTenants(cursor=cursor).as_message())
    if messages:
        enqueue("control", messages)


def sweep_segments(message: dict[str, Any]) -> None:
    sweep = SegmentSweep.model_validate(message)
    triggers.sweep_page(sweep.tenant_id, sweep.segment_ids, sweep.cursor, clock.now())
