"""A flow's enrolments: enrol contacts by hand, list them by status, read one with its
trace ("why wasn't this contact sent?"), remove one. The use cases are
chalicelib.services.enrolments; another tenant's flow is a 404 like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.flows.step import Enrolment, TraceEntry
from chalicelib.services import enrolments as service
from chalicelib.store.enrolments import EnrolmentStatus, status_of

blueprint = Blueprint(__name__)

_PATH = "/v1/campaigns/{campaign_id}/enrollments"
ContactId = Annotated[str, Field(min_length=1, max_length=64)]


class EnrolContacts(Input):
    contact_ids: list[ContactId] = Field(
        min_length=1, max_length=service.MAX_CONTACTS_PER_CALL, description="Up to 1,000."
    )


class EnrolmentAnswerView(ApiModel):
    contact_id: str
    outcome: service.Outcome
    reason: service.ErrorReason | None = Field(
        default=None, description="Why a contact was not enrolled (outcome error)."
    )


class EnrolmentAnswers(ApiModel):
    items: list[EnrolmentAnswerView] = Field(description="One per contact id, in input order.")


class TriggerEventView(ApiModel):
    id: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any]


class EnrolmentView(ApiModel):
    """One contact in one flow: where it stands, and while waiting until when."""

    campaign_id: str
    contact_id: str
    status: EnrolmentStatus
    node_id: str = Field(description="The node it stands on (the last one, once exited).")
    visit: int = Field(description="Steps taken so far.")
    entered_at: datetime
    arrived_at: datetime = Field(description="When it reached node_id.")
    wake_at: datetime | None = None
    waiting_for: str | None = Field(default=None, description="The event a wait_for_event awaits.")
    variant: str | None = Field(default=None, description="The last A/B variant it took.")
    exit_reason: str | None = None
    trigger_event: TriggerEventView | None = Field(
        default=None, description="The event that enrolled it (none for manual entry)."
    )

    @classmethod
    def of(cls, enrolment: Enrolment) -> EnrolmentView:
        return cls.model_validate(_fields(enrolment))


class TraceEntryView(ApiModel):
    node_id: str
    visit: int
    at: datetime
    outcome: str = Field(
        description="entered, performed, branched, waiting, resumed, deferred, skipped, exited"
    )
    reason: str | None = Field(default=None, description="Why it was skipped, deferred, exited.")
    branch: str | None = None
    until: datetime | None = Field(default=None, description="Waiting or deferred until.")


class EnrolmentDetail(EnrolmentView):
    trace: list[TraceEntryView] = Field(description="Every step kept (90 days), oldest first.")

    @classmethod
    def read(cls, enrolment: Enrolment, trace: list[TraceEntry]) -> EnrolmentDetail:
        steps = [TraceEntryView.model_validate(entry, from_attributes=True) for entry in trace]
        return cls.model_validate({**_fields(enrolment), "trace": steps})


def _fields(enrolment: Enrolment) -> dict[str, Any]:
    event = enrolment.trigger_event
    return {
        "campaign_id": enrolment.campaign_id,
        "contact_id": enrolment.contact_id,
        "status": status_of(enrolment),
        "node_id": enrolment.node_id,
        "visit": enrolment.visit,
        "entered_at": enrolment.entered_at,
        "arrived_at": enrolment.arrived_at,
        "wake_at": enrolment.wake_at,
        "waiting_for": enrolment.waiting_for,
        "variant": enrolment.variant,
        "exit_reason": enrolment.exit_reason.value if enrolment.exit_reason else None,
        "trigger_event": (
            TriggerEventView(
                id=event.id,
                name=event.name,
                occurred_at=event.occurred_at,
                properties=dict(event.properties),
            )
            if event is not None
            else None
        ),
    }


class EnrolmentListQuery(ListQuery):
    status: Literal["waiting", "active", "exited"] | None = Field(
        default=None,
        description="waiting (on a timer or an event), active (a step due, or held while the "
        "flow is a draft or paused), exited; every status (in that order) when left out.",
    )


@endpoint(
    blueprint,
    _PATH,
    "POST",
    idempotent=True,
    auth="tenant",
    tag="flows",
    summary="Enrol up to 1,000 contacts in a flow: an answer per contact, in input order",
    body=EnrolContacts,
    response=EnrolmentAnswers,
)
def enrol(call: Call) -> EnrolmentAnswers:
    answers = service.enrol_contacts(
        call.tenant_id, call.params["campaign_id"], call.body.contact_ids, clock.now()
    )
    return EnrolmentAnswers(
        items=[
            EnrolmentAnswerView(contact_id=a.contact_id, outcome=a.outcome, reason=a.reason)
            for a in answers
        ]
    )


@endpoint(
    blueprint,
    _PATH,
    "GET",
    auth="tenant",
    tag="flows",
    summary="List a flow's enrolments, by status",
    query=EnrolmentListQuery,
    response=ListPage[EnrolmentView],
)
def list_enrolments(call: Call) -> ListPage[EnrolmentView]:
    query: EnrolmentListQuery = call.query
    found, cursor = service.list_enrolments(
        call.tenant_id,
        call.params["campaign_id"],
        query.status,
        limit=query.limit,
        cursor=query.cursor,
    )
    return ListPage[EnrolmentView](items=[EnrolmentView.of(e) for e in found], next_cursor=cursor)


@endpoint(
    blueprint,
    f"{_PATH}/{{contact_id}}",
    "GET",
    auth="tenant",
    tag="flows",
    summary="One enrolment with its trace: every node, when, the outcome and every reason",
    response=EnrolmentDetail,
)
def get_enrolment(call: Call) -> EnrolmentDetail:
    enrolment, trace = service.enrolment_with_trace(
        call.tenant_id, call.params["campaign_id"], call.params["contact_id"]
    )
    return EnrolmentDetail.read(enrolment, trace)


@endpoint(
    blueprint,
    f"{_PATH}/{{contact_id}}",
    "DELETE",
    auth="tenant",
    tag="flows",
    summary="Remove a contact from a flow (exits with reason removed)",
    response=EnrolmentView,
)
def remove_enrolment(call: Call) -> EnrolmentView:
    enrolment = service.remove_enrolment(
        call.tenant_id, call.params["campaign_id"], call.params["contact_id"], clock.now()
    )
    return EnrolmentView.of(enrolment)
