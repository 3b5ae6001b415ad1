"""The operator inbox: threads opened by a flow's notify_inbox step (through the store
call the flow worker makes), read, assigned and closed through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.flows.timers import step_key
from chalicelib.store.inbox_threads import get_thread, open_thread
from tests.conftest import Tenant, body_of

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _open(tenant: Tenant, contact_id: str, visit: int = 0, minutes: int = 0) -> str:
    thread = open_thread(
        tenant.id,
        thread_id=step_key("cmp_1", contact_id, "call", visit),
        contact_id=contact_id,
        campaign_id="cmp_1",
        node_id="call",
        title=f"Call {contact_id}",
        now=AT + timedelta(minutes=minutes),
    )
    return thread.id


def test_opening_again_under_the_same_step_key_returns_the_first_thread(tenant: Tenant):
    first = open_thread(
        tenant.id,
        thread_id=step_key("cmp_1", "c_1", "call", 0),
        contact_id="c_1",
        campaign_id="cmp_1",
        node_id="call",
        title="Call this lead",
        now=AT,
    )
    again = open_thread(
        tenant.id,
        thread_id=step_key("cmp_1", "c_1", "call", 0),
        contact_id="c_1",
        campaign_id="cmp_1",
        node_id="call",
        title="another title",
        now=AT + timedelta(hours=1),
    )
    assert again == first and again.title == "Call this lead" and again.opened_at == AT
    listed = body_of(tenant.call("GET", "/v1/inbox-threads"))["items"]
    assert [t["id"] for t in listed] == [first.id]
    next_visit = _open(tenant, "c_1", visit=1)
    assert next_visit != first.id


def test_get_shows_links_to_the_contact_and_the_campaign(tenant: Tenant):
    thread_id = _open(tenant, "c_7")
    thread = body_of(tenant.call("GET", f"/v1/inbox-threads/{thread_id}"))
    assert thread["links"] == {"contact": "/v1/contacts/c_7", "campaign": "/v1/campaigns/cmp_1"}
    assert (thread["status"], thread["assignee"], thread["title"]) == ("open", None, "Call c_7")
    assert "thread_key" not in thread


def test_assign_close_and_reopen_move_the_thread_between_status_lists(tenant: Tenant):
    older, newer, other = (_open(tenant, c, minutes=m) for c, m in (("a", 0), ("b", 5), ("c", 9)))
    assigned = body_of(
        tenant.call("PATCH", f"/v1/inbox-threads/{older}", {"assignee": "ops@example.com"})
    )
    assert (assigned["assignee"], assigned["status"]) == ("ops@example.com", "open")
    closed = body_of(tenant.call("PATCH", f"/v1/inbox-threads/{other}", {"status": "closed"}))
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    open_ids = [
        t["id"] for t in body_of(tenant.call("GET", "/v1/inbox-threads?status=open"))["items"]
    ]
    assert open_ids == [newer, older]  # newest first
    page = body_of(tenant.call("GET", "/v1/inbox-threads?status=open&limit=1"))
    rest = body_of(
        tenant.call("GET", f"/v1/inbox-threads?status=open&limit=1&cursor={page['next_cursor']}")
    )
    assert [t["id"] for t in page["items"] + rest["items"]] == [newer, older]
    closed_ids = [
        t["id"] for t in body_of(tenant.call("GET", "/v1/inbox-threads?status=closed"))["items"]
    ]
    assert closed_ids == [other]
    reopened = body_of(tenant.call("PATCH", f"/v1/inbox-threads/{other}", {"status": "open"}))
    assert reopened["closed_at"] is None
    unassigned = body_of(tenant.call("PATCH", f"/v1/inbox-threads/{older}", {"assignee": None}))
    assert unassigned["assignee"] is None
    assert get_thread(tenant.id, older).assignee is None


def test_bad_changes_are_refused_naming_the_field_and_change_nothing(tenant: Tenant):
    thread_id = _open(tenant, "c_1")
    for body, field in (
        ({"status": "archived"}, "status"),
        ({"assignee": ""}, "assignee"),
        ({"owner": "x"}, "owner"),
    ):
        response = tenant.call("PATCH", f"/v1/inbox-threads/{thread_id}", body)
        assert response.status_code == 422, body
        assert body_of(response)["error"]["field"] == field
    assert body_of(tenant.call("GET", f"/v1/inbox-threads/{thread_id}"))["status"] == "open"
    response = tenant.call("GET", "/v1/inbox-threads?status=archived")
    assert response.status_code == 422 and body_of(response)["error"]["field"] == "query.status"


def test_another_tenant_cannot_see_or_change_a_thread(tenant: Tenant, other_tenant: Tenant):
    thread_id = _open(tenant, "c_1")
    for method, body in (("GET", None), ("PATCH", {"status": "closed"})):
        response = other_tenant.call(method, f"/v1/inbox-threads/{thread_id}", body)
        assert response.status_code == 404
        assert body_of(response)["error"]["field"] == "thread_id"
    assert body_of(other_tenant.call("GET", "/v1/inbox-threads"))["items"] == []
    assert get_thread(tenant.id, thread_id).status == "open"
