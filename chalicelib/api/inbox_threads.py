"""The operator inbox: threads a flow's ``notify_inbox`` node opened for manual follow-up.

``GET /v1/inbox-threads`` lists them (``status=open`` newest first is the work queue),
``GET``/``PATCH /v1/inbox-threads/{thread_id}`` read one and assign or close it. Each
thread links to the contact and the campaign it is about (API paths, relative to the
API's base URL). Threads are opened only by flows (chalicelib/store/inbox_threads.py).
"""

from __future__ import annotations

from datetime import datetime

from chalice import Blueprint

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.inbox_threads import InboxThread, ThreadChange, ThreadStatus
from chalicelib.domain.model import Model
from chalicelib.store import inbox_threads as store

blueprint = Blueprint(__name__)


class ThreadListQuery(ListQuery):
    status: ThreadStatus | None = None


class ThreadPatch(ThreadChange, Input):
    """``assignee`` (null unassigns) and/or ``status`` (``open`` or ``closed``)."""


class ThreadLinks(Model):
    contact: str
    campaign: str


class ThreadView(ApiModel):
    id: str
    contact_id: str
    campaign_id: str
    node_id: str
    title: str
    status: ThreadStatus
    assignee: str | None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    links: ThreadLinks

    @classmethod
    def of(cls, thread: InboxThread) -> ThreadView:
        links = ThreadLinks(
            contact=f"/v1/contacts/{thread.contact_id}",
            campaign=f"/v1/campaigns/{thread.campaign_id}",
        )
        return cls(**thread.model_dump(exclude={"thread_key"}), links=links)


@endpoint(
    blueprint,
    "/v1/inbox-threads",
    "GET",
    auth="tenant",
    tag="inbox",
    summary="List operator inbox threads (of one status: newest first)",
    query=ThreadListQuery,
    response=ListPage[ThreadView],
)
def list_threads(call: Call) -> ListPage[ThreadView]:
    threads, cursor = store.list_threads(
        call.tenant_id, status=call.query.status, cursor=call.query.cursor, limit=call.query.limit
    )
    return ListPage[ThreadView](items=[ThreadView.of(t) for t in threads], next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/inbox-threads/{thread_id}",
    "GET",
    auth="tenant",
    tag="inbox",
    summary="Get an operator inbox thread",
    response=ThreadView,
)
def get_thread(call: Call) -> ThreadView:
    return ThreadView.of(store.get_thread(call.tenant_id, call.params["thread_id"]))


@endpoint(
    blueprint,
    "/v1/inbox-threads/{thread_id}",
    "PATCH",
    auth="tenant",
    tag="inbox",
    summary="Assign, unassign, close or reopen an operator inbox thread",
    body=ThreadPatch,
    response=ThreadView,
)
def update_thread(call: Call) -> ThreadView:
    change = ThreadChange.model_validate(call.body.model_dump(exclude_unset=True))
    thread = store.update_thread(call.tenant_id, call.params["thread_id"], change, clock.now())
    return ThreadView.of(thread)
