"""Seed 004's `/api/workspaces/{workspaceId}/campaigns` through the real handlers against
moto: the editor's graph kept as sent, the list and detail shapes, every route's errors in
the one documented shape, the status moves through the flow (or broadcast) service,
enrolment and trigger execution, and a deletion after which nothing is sent."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.services import enrolments as enrolment_service
from chalicelib.store import campaigns as campaign_store
from chalicelib.store import enrolments
from tests.conftest import Tenant, body_of
from tests.send_kit import Shop, recipients_of, release_delayed_messages, sent_mail

pytestmark = pytest.mark.usefixtures("fast_sends", "frozen")
MILLIS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def base(tenant: Tenant) -> str:
    return f"/api/workspaces/{tenant.id}/campaigns"


def graph(
    shop: Shop, trigger: dict[str, Any] | None = None, wait_days: int = 0, unit: str = "days"
) -> dict[str, Any]:
    """Manual (or ``trigger``) → [Delay] → Send email; the node list not in graph order."""
    start = {"id": "start", "type": "MANUAL", "position": {"x": 0, "y": 0}, "data": {}}
    send = {
        "id": "mail",
        "type": "SEND_MESSAGE",
        "position": {"x": 0, "y": 200.5},
        "data": {
            "label": "Welcome mail",
            "channel": "email",
            "templateIds": [shop.template_id],
            "senderIds": [shop.sender_id],
        },
    }
    nodes = [send, {**start, **(trigger or {})}]
    edges = [{"id": "e1", "source": "start", "target": "mail"}]
    if wait_days:
        nodes.append(
            {
                "id": "wait",
                "type": "DELAY",
                "position": {"x": 0, "y": 100},
                "data": {"amount": wait_days, "unit": unit},
            }
        )
        edges = [
            {"id": "e1", "source": "start", "target": "wait"},
            {"id": "e2", "source": "wait", "target": "mail"},
        ]
    return {"nodes": nodes, "edges": edges}


def create(shop: Shop, expect: int = 201, **body: Any) -> Any:
    wanted = {"name": "Welcome", "type": "AUTOMATED", "workflow": graph(shop), **body}
    response = shop.tenant.call("POST", base(shop.tenant), wanted)
    assert response.status_code == expect, response.body
    return body_of(response)


def call(shop: Shop, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    response = shop.tenant.call(method, base(shop.tenant) + path, body)
    assert response.status_code == expect, response.body
    return body_of(response) if response.body else None


def refused(shop: Shop, method: str, path: str, body: Any, status: int, field: str) -> str:
    error = call(shop, method, path, body, expect=status)["error"]
    assert error["field"] == field, error
    assert set(error) <= {"code", "message", "field", "details"}
    return str(error["message"])


def test_a_campaign_keeps_the_editors_graph_and_shows_the_seeds_shapes(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    workflow = graph(shop, wait_days=1)
    body = {
        "name": "Welcome Series",
        "description": "Onboarding",
        "type": "AUTOMATED",
        "workflow": workflow,
        "settings": {"frequencyCap": 3, "quietHours": {"start": "22:00", "end": "08:00"}},
        "startAt": "2027-02-01T00:00:00.000Z",
        "endAt": "2027-03-01T00:00:00.000Z",
    }
    made = call(shop, "POST", "", body, expect=201)
    assert made["workflow"] == workflow  # the editor's JSON as sent: label, ids, floats
    assert (made["status"], made["type"], made["description"]) == (
        "DRAFT",
        "AUTOMATED",
        "Onboarding",
    )
    assert (made["startAt"], made["endAt"]) == (body["startAt"], body["endAt"])
    assert MILLIS_Z.match(made["createdAt"]) and made["id"].startswith("cmp_")
    assert made["settings"]["frequencyCap"] == 3
    assert made["settings"]["quietHours"] == {"start": "22:00", "end": "08:00"}
    assert [t["id"] for t in made["triggers"]] == ["start"]
    assert [(a["id"], a["order"]) for a in made["actions"]] == [("wait", 0), ("mail", 1)]
    assert made["_count"] == {"enrollments": 0, "messages": 0} and made["abTests"] == []
    stored = campaign_store.get_campaign(shop.tenant.id, made["id"])
    assert stored.type == "workflow" and stored.workflow is not None
    assert stored.campaign_frequency_cap is not None
    assert (
        stored.campaign_frequency_cap.max_messages,
        stored.campaign_frequency_cap.per_hours,
    ) == (3, 24)
    assert stored.quiet_hours is not None and stored.quiet_hours.start == "22:00"
    assert call(shop, "GET", f"/{made['id']}") == made

    frozen.advance(timedelta(seconds=1))
    later = create(shop, name="Second")
    listed = call(shop, "GET", "")
    assert [c["id"] for c in listed] == [later["id"], made["id"]]  # newest first
    assert set(listed[0]) == {"id", "name", "status", "type", "createdAt", "triggers", "_count"}


def test_every_route_answers_401_without_a_key_and_404_outside_the_workspace(
    shop: Shop, other_tenant: Tenant
) -> None:
    made = create(shop)
    item = f"{base(shop.tenant)}/{made['id']}"
    routes = [
        ("GET", base(shop.tenant)),
        ("POST", base(shop.tenant)),
        ("GET", item),
        ("PATCH", item),
        ("DELETE", item),
        ("POST", f"{item}/execute"),
        ("POST", f"{item}/enroll"),
    ]
    for method, path in routes:
        response = shop.tenant.client.http.request(
            method, path, headers={"Content-Type": "application/json"}, body=b"{}"
        )
        assert response.status_code == 401, (method, path)
        assert body_of(response)["error"]["field"] == "Authorization"
    for method, path in routes:  # another tenant's key: neither workspace nor campaign exist
        response = other_tenant.call(method, path, {})
        assert response.status_code == 404, (method, path, response.body)
        assert body_of(response)["error"]["field"] == "workspaceId"
    mine = base(other_tenant)
    response = other_tenant.call("GET", f"{mine}/{made['id']}")
    assert response.status_code == 404 and body_of(response)["error"]["field"] == "campaignId"
    assert body_of(other_tenant.call("GET", mine)) == []
    refused(shop, "GET", "/cmp_0123456789abcdef0123456789abcdef", None, 404, "campaignId")


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"type": "RECURRING"}, "type"),
    ({"workflow": None}, "workflow"),
    ({"settings": {"frequencyCap": 0}}, "settings.frequencyCap"),
    ({"settings": {"quietHours": {"start": "22:00", "end": "22:00"}}}, "settings.quietHours"),
    ({"settings": {"colour": "red"}}, "settings.colour"),
    ({"settings": {"audience": {"segmentIds": ["s_nope"]}}}, "settings.audience.segmentIds.0"),
    ({"startAt": "tomorrow"}, "startAt"),
    ({"startAt": "2027-03-01T00:00:00Z", "endAt": "2027-02-01T00:00:00Z"}, "endAt"),
]


def test_a_bad_create_is_400_naming_the_seeds_field(shop: Shop) -> None:
    for change, field in BAD_CREATES:
        body = {"name": "Welcome", "type": "AUTOMATED", "workflow": graph(shop), **change}
        refused(shop, "POST", "", body, 400, field)
    assert call(shop, "GET", "") == []  # nothing half-written


def test_a_bad_node_is_400_naming_the_node_in_the_editors_words(shop: Shop) -> None:
    workflow = graph(shop)
    workflow["nodes"][0]["data"]["templateIds"] = ["tpl_0123456789abcdef0123456789abcdef"]
    message = refused(
        shop,
        "POST",
        "",
        {"name": "W", "type": "AUTOMATED", "workflow": workflow},
        400,
        "workflow.nodes.0.data.templateIds.0",
    )
    assert "not found" in message
    workflow = graph(shop)
    workflow["nodes"][1]["type"] = "TELEPORT"
    refused(
        shop,
        "POST",
        "",
        {"name": "W", "type": "AUTOMATED", "workflow": workflow},
        400,
        "workflow.nodes.1.type",
    )


def test_status_moves_through_the_flow_life_cycle_and_the_graph_is_locked_while_active(
    shop: Shop,
) -> None:
    made = create(shop)
    path = f"/{made['id']}"
    refused(shop, "PATCH", path, {"status": "PAUSED"}, 409, "status")
    refused(shop, "PATCH", path, {"status": "CANCELLED"}, 400, "status")
    active = call(shop, "PATCH", path, {"status": "ACTIVE", "name": "Renamed"})
    assert (active["status"], active["name"]) == ("ACTIVE", "Renamed")
    changed = graph(shop, wait_days=2)
    assert call(shop, "PATCH", path, {"workflow": changed}, expect=409)["error"]["code"]
    paused = call(shop, "PATCH", path, {"status": "PAUSED", "workflow": changed})
    assert paused["status"] == "PAUSED" and paused["workflow"] == changed
    refused(shop, "PATCH", path, {"status": "DRAFT"}, 409, "status")
    assert call(shop, "PATCH", path, {"status": "ACTIVE"})["status"] == "ACTIVE"
    assert call(shop, "PATCH", path, {"status": "COMPLETED"})["status"] == "COMPLETED"
    refused(shop, "PATCH", path, {"status": "ACTIVE"}, 409, "status")
    refused(
        shop,
        "PATCH",
        path,
        {"startAt": "2027-03-01T00:00:00Z", "endAt": "2027-01-01T00:00:00Z"},
        400,
        "endAt",
    )


def test_enroll_into_an_active_campaign_answers_each_contact_in_input_order(shop: Shop) -> None:
    made = create(shop, workflow=graph(shop, wait_days=1))
    path = f"/{made['id']}/enroll"
    ann, bob = shop.contacts(2)
    refused(shop, "POST", path, {"contactIds": [ann]}, 400, "status")  # a draft
    call(shop, "PATCH", f"/{made['id']}", {"status": "ACTIVE"})
    refused(shop, "POST", path, {"contactIds": []}, 400, "contactIds")
    refused(shop, "POST", path, {"contactIds": "c_1"}, 400, "contactIds")
    call(shop, "POST", path, {"contactIds": [bob]})
    answer = call(shop, "POST", path, {"contactIds": [ann, "c_nobody", bob]})
    assert answer == {
        "enrolled": 1,
        "alreadyEnrolled": 1,
        "errors": 1,
        "details": [
            {"contactId": ann, "status": "enrolled"},
            {"contactId": "c_nobody", "status": "error", "reason": "not_found"},
            {"contactId": bob, "status": "already_enrolled"},
        ],
    }
    [cy] = shop.contacts(1)
    manual = {"action": "process_trigger", "triggerType": "MANUAL"}  # the audience: everyone
    answer = call(shop, "POST", f"/{made['id']}/execute", manual)
    assert (answer["enrolled"], answer["alreadyEnrolled"], answer["errors"]) == (1, 2, 0)
    drain()
    assert call(shop, "GET", f"/{made['id']}")["_count"]["enrollments"] == 3
    assert sorted(enrolments.read_many(shop.tenant.id, made["id"], [ann, bob, cy])) == sorted(
        [ann, bob, cy]
    )


def leads_entering(shop: Shop) -> dict[str, Any]:
    """A SEGMENT_ENTRY trigger node on a new segment of contacts scoring 50 or more."""
    rules = [{"field": "lead_score", "operator": "gte", "value": 50}]
    segment = shop.ok("POST", "/v1/segments", {"name": "Leads", "condition": "AND", "rules": rules})
    return {"type": "SEGMENT_ENTRY", "data": {"segmentId": segment["id"]}}


def test_execute_enters_a_contact_or_everyone_a_trigger_selects(shop: Shop) -> None:
    trigger = leads_entering(shop)
    made = create(shop, workflow=graph(shop, trigger=trigger, wait_days=1))
    path = f"/{made['id']}/execute"
    big = shop.contacts(2, lead_score=80)
    [small] = shop.contacts(1, lead_score=1)
    refused(
        shop, "POST", path, {"action": "execute_for_contact", "contactId": small}, 400, "status"
    )
    call(shop, "PATCH", f"/{made['id']}", {"status": "ACTIVE"})
    refused(shop, "POST", path, {"action": "explode"}, 400, "action")
    refused(shop, "POST", path, {"action": "execute_for_contact"}, 400, "contactId")
    refused(
        shop,
        "POST",
        path,
        {"action": "execute_for_contact", "contactId": "c_nobody"},
        404,
        "contactId",
    )
    refused(
        shop,
        "POST",
        path,
        {"action": "process_trigger", "triggerType": "MANUAL"},
        400,
        "triggerType",
    )
    refused(
        shop,
        "POST",
        path,
        {"action": "process_trigger", "triggerType": "SEGMENT_ENTRY", "segmentId": "s_other"},
        400,
        "segmentId",
    )
    one = call(shop, "POST", path, {"action": "execute_for_contact", "contactId": small})
    assert one["details"] == [{"contactId": small, "status": "enrolled"}]
    answer = call(
        shop,
        "POST",
        path,
        {
            "action": "process_trigger",
            "triggerType": "SEGMENT_ENTRY",
            "segmentId": trigger["data"]["segmentId"],
        },
    )
    assert (answer["enrolled"], answer["alreadyEnrolled"], answer["errors"]) == (2, 0, 0)
    found = enrolments.read_many(shop.tenant.id, made["id"], [small, *big])
    assert sorted(found) == sorted([small, *big])


def test_a_trigger_selecting_more_than_a_page_enrols_the_rest_through_the_queue(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enrolment_service, "SELECTION_PAGE_SIZE", 2)
    made = create(shop, workflow=graph(shop, trigger=leads_entering(shop), wait_days=1))
    call(shop, "PATCH", f"/{made['id']}", {"status": "ACTIVE"})
    hot = shop.contacts(5, lead_score=90)
    shop.contacts(2, lead_score=10)
    process = {"action": "process_trigger", "triggerType": "SEGMENT_ENTRY"}
    answer = call(shop, "POST", f"/{made['id']}/execute", process)
    # The request enrols the first page (two contacts examined), the queue the rest.
    assert answer["queued"] is True and answer["enrolled"] <= 2
    drain()  # each later page queued by the one before
    assert sorted(enrolments.read_many(shop.tenant.id, made["id"], hot)) == sorted(hot)
    assert call(shop, "GET", f"/{made['id']}")["_count"]["enrollments"] == 5
    again = call(shop, "POST", f"/{made['id']}/execute", process)
    assert (again["enrolled"], again["alreadyEnrolled"]) == (0, answer["enrolled"])
    drain()
    assert call(shop, "GET", f"/{made['id']}")["_count"]["enrollments"] == 5


def test_delete_is_permanent_waiting_contacts_leave_and_nothing_is_sent_after(
    shop: Shop,
) -> None:
    made = create(shop, workflow=graph(shop, wait_days=30, unit="seconds"))
    call(shop, "PATCH", f"/{made['id']}", {"status": "ACTIVE"})
    people = shop.contacts(2)
    call(shop, "POST", f"/{made['id']}/enroll", {"contactIds": people})
    drain()  # both wait on the delay: their wakes are queued, delayed 30 s
    waiting = enrolments.standing_on(shop.tenant.id, made["id"], ["wait"])
    assert sorted(e.contact_id for e in waiting) == sorted(people)
    assert call(shop, "DELETE", f"/{made['id']}", expect=204) is None
    refused(shop, "GET", f"/{made['id']}", None, 404, "campaignId")
    assert list(enrolments.standing_on(shop.tenant.id, made["id"], ["wait"])) == []
    release_delayed_messages()  # the wakes arrive: the flow is gone
    drain()
    assert sent_mail() == []


def test_a_broadcast_of_one_send_is_a_native_broadcast(shop: Shop) -> None:
    made = create(shop, type="BROADCAST")
    stored = campaign_store.get_campaign(shop.tenant.id, made["id"])
    assert (stored.type, stored.workflow) == ("broadcast", None)
    assert made["workflow"]["nodes"][0]["data"]["label"] == "Welcome mail"
    shop.contacts(3)
    refused(shop, "POST", f"/{made['id']}/enroll", {"contactIds": ["c_1"]}, 400, "campaignId")
    assert call(shop, "PATCH", f"/{made['id']}", {"status": "ACTIVE"})["status"] == "ACTIVE"
    drain()
    shown = call(shop, "GET", f"/{made['id']}")
    assert shown["status"] == "COMPLETED"
    assert shown["_count"] == {"enrollments": 3, "messages": 3}
    assert sum(recipients_of(sent_mail()).values()) == 3
    flowing = create(shop, type="BROADCAST", workflow=graph(shop, wait_days=1))
    assert campaign_store.get_campaign(shop.tenant.id, flowing["id"]).type == "workflow"
    # a native broadcast keeps its shape: another graph is a new campaign
    refused(shop, "PATCH", f"/{made['id']}", {"workflow": flowing["workflow"]}, 400, "workflow")
