"""Workflows through the native API against moto: create and validate, the flow life
cycle, edits while paused, the dry run, schedules, node test sends, the paused webhook."""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.deliverability import Trip
from chalicelib.domain.senders import IdentityStatus, SenderFields
from chalicelib.domain.templates import EmailTemplate, SmsTemplate
from chalicelib.local.poller import drain
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.pipeline import scheduling
from chalicelib.pipeline.breaker import pause_for
from chalicelib.pipeline.flow_schedules import end_flow
from chalicelib.pipeline.flow_scheduling import end_schedule_name, trigger_schedule_name
from chalicelib.pipeline.messages import EndFlow, FlowWake
from chalicelib.pipeline.queues import queue_url
from chalicelib.services.enrolments import enrol_contacts
from chalicelib.settings import get_settings
from chalicelib.store import enrolments, flow_triggers
from chalicelib.store.senders import create_sender
from chalicelib.store.table import tenant_table
from chalicelib.store.templates import create_template
from tests.conftest import Tenant, body_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
VIP = {"condition": "AND", "rules": [{"field": "lead_score", "operator": "gte", "value": 50}]}


@pytest.fixture(autouse=True)
def frozen():
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


def email_content(tenant: Tenant) -> tuple[str, str]:
    """An email template and a verified email sender of the tenant: (template, sender)."""
    template = create_template(
        tenant.id, "Welcome", EmailTemplate(subject="Hi {{ contact.first_name }}", html="<p>Hi</p>")
    )
    verified = IdentityStatus(
        identity="example.com", kind="domain", verified=True, status="SUCCESS", checked_at=NOW
    )
    sender = create_sender(
        tenant.id,
        "email",
        SenderFields(from_email="news@example.com"),
        verified,
        owned_identities=["domain#example.com"],
    )
    return template.id, sender.id


def graph(template_id: str, sender_id: str | None = None, **trigger: Any) -> dict[str, Any]:
    """order.placed → welcome email → 2 days → exit."""
    send: dict[str, Any] = {"channel": "email", "template_ids": [template_id]}
    if sender_id:
        send["sender_ids"] = [sender_id]
    start = trigger or {"kind": "trigger.event", "config": {"event_type": "order.placed"}}
    return {
        "nodes": [
            {"id": "start", **start},
            {"id": "welcome", "kind": "send", "config": send},
            {"id": "pause", "kind": "delay", "config": {"amount": 2, "unit": "days"}},
            {"id": "done", "kind": "exit"},
        ],
        "edges": [
            {"source": "start", "target": "welcome"},
            {"source": "welcome", "target": "pause"},
            {"source": "pause", "target": "done"},
        ],
    }


def create_flow(tenant: Tenant, workflow: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"name": "Onboarding", "type": "workflow", "workflow": workflow, **fields}
    response = tenant.call("POST", "/v1/campaigns", body)
    assert response.status_code == 201, response.body
    return body_of(response)


def act(tenant: Tenant, campaign_id: str, action: str) -> Any:
    return tenant.call("POST", f"/v1/campaigns/{campaign_id}/{action}")


def error_of(response: Any) -> dict[str, Any]:
    return body_of(response)["error"]


# -- create and validate -------------------------------------------------------------------
def test_a_workflow_needs_no_channel_and_its_steps_are_its_send_nodes(tenant):
    template_id, sender_id = email_content(tenant)

    created = create_flow(
        tenant,
        graph(template_id, sender_id),
        reentry={"mode": "every", "interval": {"amount": 30, "unit": "days"}},
        exit_on=["purchase"],
        max_lateness={"amount": 2, "unit": "hours"},
        campaign_frequency_cap={"max_messages": 1, "per_hours": 24},
        starts_at="2026-12-01T00:00:00Z",
        ends_at="2027-01-01T00:00:00Z",
    )

    assert created["type"] == "workflow"
    assert created["status"] == "draft"
    assert created["channel"] == "email"
    assert [n["id"] for n in created["workflow"]["nodes"]] == ["start", "welcome", "pause", "done"]
    assert created["reentry"] == {"mode": "every", "interval": {"amount": 30, "unit": "days"}}
    assert created["exit_on"] == ["purchase"]
    assert created["ends_at"].startswith("2027-01-01T00:00:00")
    assert created["template_ids"] == []  # a workflow's content is on its nodes
    stored = tenant.call("GET", f"/v1/campaigns/{created['id']}")
    assert body_of(stored)["workflow"] == created["workflow"]

    from chalicelib.store.campaigns import get_campaign

    steps = get_campaign(tenant.id, created["id"]).steps
    assert [(s.id, s.channel, s.template_ids, s.sender_ids) for s in steps] == [
        ("welcome", "email", [template_id], [sender_id])
    ]


def test_an_unsound_graph_is_one_422_listing_every_problem(tenant):
    workflow = {
        "nodes": [
            {"id": "start", "kind": "trigger.manual"},
            {"id": "check", "kind": "attribute_check", "config": {"rules": VIP}},
            {"id": "lost", "kind": "exit"},
        ],
        "edges": [
            {"source": "start", "target": "check", "branch": "yes"},
            {"source": "start", "target": "ghost"},
        ],
    }

    response = tenant.call(
        "POST", "/v1/campaigns", {"name": "Broken", "type": "workflow", "workflow": workflow}
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    fields = [d["field"] for d in error["details"]]
    assert error["field"] == fields[0]
    assert "workflow.edges.0.branch" in fields  # a trigger has one way out
    assert "workflow.edges.1.target" in fields  # no node 'ghost'
    assert "workflow.nodes.1" in fields  # 'check' has no edge for yes or no
    assert "workflow.nodes.2" in fields  # 'lost' cannot be reached
    assert tenant.call("GET", "/v1/campaigns").status_code == 200
    assert body_of(tenant.call("GET", "/v1/campaigns"))["items"] == []  # nothing written


def test_what_the_graph_names_must_exist_and_fit_the_node_channel(tenant):
    template_id, sender_id = email_content(tenant)
    sms = create_template(tenant.id, "Text", SmsTemplate(body="Hi"))
    workflow = graph(template_id, sender_id)
    workflow["nodes"][0] = {
        "id": "start",
        "kind": "trigger.segment_entry",
        "config": {"segment_id": "seg_missing"},
    }
    workflow["nodes"][1]["config"]["template_ids"] = [template_id, "tpl_nope", sms.id]

    response = tenant.call(
        "POST",
        "/v1/campaigns",
        {
            "name": "Names",
            "type": "workflow",
            "workflow": workflow,
            "audience": {"list_ids": ["l_x"]},
        },
    )

    assert response.status_code == 422
    details = {d["field"]: d["message"] for d in error_of(response)["details"]}
    assert details == {
        "audience.list_ids.0": "list 'l_x' not found",
        "workflow.nodes.0.config.segment_id": "node 'start': segment 'seg_missing' not found",
        "workflow.nodes.1.config.template_ids.1": "node 'welcome': template 'tpl_nope' not found",
        "workflow.nodes.1.config.template_ids.2": (
            f"node 'welcome': template '{sms.id}' is for sms; this node sends email"
        ),
    }


def test_a_template_that_cannot_render_is_refused_at_save(tenant):
    template_id, sender_id = email_content(tenant)
    # Saved by an older Herald, before the render budget: the store holds it as it was.
    item = tenant_table(tenant.id).get("TEMPLATE", template_id)
    assert item is not None
    item["content"]["html"] = "{{ ['x' * 1000] * 100000 }}"
    tenant_table(tenant.id).put("TEMPLATE", template_id, item)

    response = tenant.call(
        "POST",
        "/v1/campaigns",
        {"name": "Heavy", "type": "workflow", "workflow": graph(template_id, sender_id)},
    )

    assert response.status_code == 422
    assert error_of(response)["field"] == "workflow.nodes.1.config.template_ids.0.html"


@pytest.mark.parametrize("kind", ["sequence", "event_triggered"])
def test_sequences_and_triggered_sends_are_made_through_their_dialects_only(tenant, kind):
    response = tenant.call("POST", "/v1/campaigns", {"name": "X", "type": kind})

    assert response.status_code == 422
    assert error_of(response)["field"] == "type"


def test_flow_fields_belong_to_workflows_and_pools_to_broadcasts(tenant):
    template_id, sender_id = email_content(tenant)
    broadcast = {"name": "News", "channel": "email", "exit_on": ["purchase"]}
    refused = tenant.call("POST", "/v1/campaigns", broadcast)
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "exit_on"

    flow = create_flow(tenant, graph(template_id, sender_id))
    pools = tenant.call("PATCH", f"/v1/campaigns/{flow['id']}", {"template_ids": [template_id]})
    assert pools.status_code == 422
    assert error_of(pools)["field"] == "template_ids"
    retype = tenant.call("PATCH", f"/v1/campaigns/{flow['id']}", {"type": "broadcast"})
    assert retype.status_code == 422
    assert error_of(retype)["field"] == "type"


def test_ends_at_must_follow_starts_at(tenant):
    template_id, sender_id = email_content(tenant)
    response = tenant.call(
        "POST",
        "/v1/campaigns",
        {
            "name": "Window",
            "type": "workflow",
            "workflow": graph(template_id, sender_id),
            "starts_at": "2027-01-01T00:00:00Z",
            "ends_at": "2026-12-01T00:00:00Z",
        },
    )

    assert response.status_code == 422
    assert error_of(response)["field"] == "ends_at"


# -- the life cycle --------------------------------------------------------------------------
LIFECYCLE = [
    # (actions taken first, action, expected status code, expected status or refused state)
    ([], "activate", 200, "active"),
    ([], "cancel", 200, "cancelled"),
    ([], "pause", 409, "draft"),
    ([], "complete", 409, "draft"),
    ([], "schedule", 409, "draft"),
    ([], "send", 409, "draft"),
    (["activate"], "pause", 200, "paused"),
    (["activate"], "complete", 200, "completed"),
    (["activate"], "cancel", 200, "cancelled"),
    (["activate"], "activate", 409, "active"),
    (["activate"], "resume", 409, "active"),
    (["activate", "pause"], "resume", 200, "active"),
    (["activate", "pause"], "complete", 200, "completed"),
    (["activate", "pause"], "cancel", 200, "cancelled"),
    (["activate", "complete"], "resume", 409, "completed"),
    (["activate", "complete"], "cancel", 409, "completed"),
    (["cancel"], "activate", 409, "cancelled"),
]


@pytest.mark.parametrize(("before", "action", "status", "state"), LIFECYCLE)
def test_the_flow_life_cycle(tenant, before, action, status, state):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    for step in before:
        assert act(tenant, flow["id"], step).status_code == 200, step

    body = {"scheduled_at": "2030-01-01T00:00:00Z"} if action == "schedule" else None
    response = tenant.call("POST", f"/v1/campaigns/{flow['id']}/{action}", body)

    assert response.status_code == status, response.body
    if status == 200:
        assert body_of(response)["status"] == state
    else:
        assert error_of(response)["code"] == "invalid_transition"
        assert f"'{state}'" in error_of(response)["message"]


def test_flow_actions_on_a_broadcast_are_refused_naming_its_state(tenant):
    broadcast = body_of(tenant.call("POST", "/v1/campaigns", {"name": "News", "channel": "email"}))

    for action in ("activate", "complete"):
        response = act(tenant, broadcast["id"], action)
        assert response.status_code == 409
        assert error_of(response)["code"] == "invalid_transition"
        assert "'draft'" in error_of(response)["message"]


def test_activate_and_the_end_publish_the_flow_triggers(tenant):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    assert flow_triggers.event_triggers(tenant.id, "order.placed") == []

    act(tenant, flow["id"], "activate")
    live = flow_triggers.event_triggers(tenant.id, "order.placed")
    assert [(t.campaign_id, t.node_id) for t in live] == [(flow["id"], "start")]
    act(tenant, flow["id"], "pause")
    assert len(flow_triggers.event_triggers(tenant.id, "order.placed")) == 1  # paused enrols

    act(tenant, flow["id"], "complete")
    assert flow_triggers.event_triggers(tenant.id, "order.placed") == []


def test_activate_needs_a_sender_for_every_send_node(tenant):
    template_id, _ = email_content(tenant)
    other = create_template(tenant.id, "Other", EmailTemplate(subject="S", html="<p>x</p>"))
    flow = create_flow(tenant, graph(template_id))  # no sender_ids: the default is used
    assert act(tenant, flow["id"], "activate").status_code == 200

    from chalicelib.store.senders import delete_sender, list_senders

    senders, _ = list_senders(tenant.id)
    for sender in senders:
        delete_sender(tenant.id, sender.id)
    lacking = create_flow(tenant, graph(other.id))
    response = act(tenant, lacking["id"], "activate")

    assert response.status_code == 422
    assert error_of(response)["field"] == "workflow.nodes.1.config.sender_ids"
    assert body_of(tenant.call("GET", f"/v1/campaigns/{lacking['id']}"))["status"] == "draft"


def test_a_flow_whose_end_has_passed_cannot_be_activated(tenant, frozen):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id), ends_at="2026-11-22T13:00:00Z")
    frozen.advance(timedelta(hours=2))

    response = act(tenant, flow["id"], "activate")

    assert response.status_code == 422
    assert error_of(response)["field"] == "ends_at"


def test_activating_before_starts_at_makes_it_active(tenant):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id), starts_at="2026-12-01T00:00:00Z")

    response = act(tenant, flow["id"], "activate")

    assert response.status_code == 200
    assert body_of(response)["status"] == "active"


# -- editing ---------------------------------------------------------------------------------
def test_an_active_flow_is_locked_and_a_paused_one_may_change(tenant):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    act(tenant, flow["id"], "activate")
    path = f"/v1/campaigns/{flow['id']}"
    event_trigger = {"kind": "trigger.event", "config": {"event_type": "signup"}}
    edit = {"workflow": graph(template_id, sender_id, **event_trigger)}

    locked = tenant.call("PATCH", path, edit)
    assert locked.status_code == 409
    assert error_of(locked)["code"] == "campaign_locked"
    assert "'active'" in error_of(locked)["message"]

    act(tenant, flow["id"], "pause")
    edited = tenant.call("PATCH", path, edit)
    assert edited.status_code == 200, edited.body
    assert edited_trigger(body_of(edited)) == "signup"
    assert [t.event_type for t in flow_triggers.live_triggers(tenant.id)] == ["signup"]


def edited_trigger(campaign: dict[str, Any]) -> str:
    return campaign["workflow"]["nodes"][0]["config"]["event_type"]


def test_a_draft_flow_is_deleted_and_a_live_one_is_not(tenant):
    template_id, sender_id = email_content(tenant)
    draft = create_flow(tenant, graph(template_id, sender_id))
    live = create_flow(tenant, graph(template_id, sender_id))
    act(tenant, live["id"], "activate")

    assert tenant.call("DELETE", f"/v1/campaigns/{draft['id']}").status_code == 204
    refused = tenant.call("DELETE", f"/v1/campaigns/{live['id']}")
    assert refused.status_code == 409
    act(tenant, live["id"], "cancel")
    assert tenant.call("DELETE", f"/v1/campaigns/{live['id']}").status_code == 204
    assert flow_triggers.live_triggers(tenant.id) == []


def test_another_tenants_flow_is_not_found(tenant, other_tenant):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    path = f"/v1/campaigns/{flow['id']}"

    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "Mine"}),
        ("POST", "/activate", None),
        ("POST", "/complete", None),
        ("POST", "/workflow/check", {"workflow": graph(template_id)}),
        ("POST", "/nodes/welcome/test", {"addresses": ["a@example.com"]}),
        ("DELETE", "", None),
    ]:
        response = other_tenant.call(method, path + suffix, body)
        assert response.status_code == 404, (method, suffix, response.body)
    assert body_of(tenant.call("GET", path))["name"] == "Onboarding"


# -- schedules: ends_at and trigger.scheduled --------------------------------------------
def contacts(tenant: Tenant, count: int) -> list[str]:
    return [
        body_of(tenant.call("POST", "/v1/contacts", {"email": f"p{n}@example.com"}))["id"]
        for n in range(count)
    ]


def schedule_names() -> set[str]:
    group = get_settings().schedule_group_name
    listed = client("scheduler").list_schedules(GroupName=group)["Schedules"]
    return {s["Name"] for s in listed if s.get("GroupName") == group}


def test_ends_at_completes_the_flow_through_its_schedule_and_ends_every_enrolment(tenant, frozen):
    template_id, sender_id = email_content(tenant)
    ends_at = NOW + timedelta(hours=1)
    flow = create_flow(tenant, graph(template_id, sender_id), ends_at=ends_at.isoformat())
    act(tenant, flow["id"], "activate")
    ids = contacts(tenant, 2)
    enrol_contacts(tenant.id, flow["id"], ids, NOW)
    assert schedule_names() == {end_schedule_name(flow["id"])}

    frozen.advance(timedelta(hours=1))
    assert ScheduleEmulator().fire_due_schedules(clock.now()) == [end_schedule_name(flow["id"])]
    drain(["control"])

    ended = body_of(tenant.call("GET", f"/v1/campaigns/{flow['id']}"))
    assert ended["status"] == "completed"
    for contact_id in ids:
        enrolment = enrolments.read(tenant.id, flow["id"], contact_id)
        assert enrolment is not None and enrolment.exit_reason == "campaign_ended"
    assert flow_triggers.live_triggers(tenant.id) == []


def test_a_lost_end_schedule_is_caught_by_the_overdue_sweep(tenant, frozen):
    template_id, sender_id = email_content(tenant)
    ends_at = NOW + timedelta(hours=1)
    flow = create_flow(tenant, graph(template_id, sender_id), ends_at=ends_at.isoformat())
    act(tenant, flow["id"], "activate")
    scheduling.delete_schedule(end_schedule_name(flow["id"]))

    frozen.advance(timedelta(hours=1, seconds=30))
    scheduling.start_overdue(clock.now())  # within the minute's grace: not yet
    drain(["control"])
    assert body_of(tenant.call("GET", f"/v1/campaigns/{flow['id']}"))["status"] == "active"
    frozen.advance(timedelta(minutes=1))
    scheduling.start_overdue(clock.now())
    drain(["control"])

    assert body_of(tenant.call("GET", f"/v1/campaigns/{flow['id']}"))["status"] == "completed"


def test_an_end_moved_later_while_paused_does_not_end_the_flow_early(tenant, frozen):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(
        tenant, graph(template_id, sender_id), ends_at=(NOW + timedelta(hours=1)).isoformat()
    )
    act(tenant, flow["id"], "activate")
    stale = ScheduleEmulator()
    act(tenant, flow["id"], "pause")
    later = (NOW + timedelta(days=1)).isoformat()
    assert (
        tenant.call("PATCH", f"/v1/campaigns/{flow['id']}", {"ends_at": later}).status_code == 200
    )

    frozen.advance(timedelta(hours=2))
    assert stale.fire_due_schedules(clock.now()) == []  # the schedule moved with it
    end_flow(EndFlow(tenant_id=tenant.id, campaign_id=flow["id"]).as_message())  # a stale copy

    assert body_of(tenant.call("GET", f"/v1/campaigns/{flow['id']}"))["status"] == "paused"


def test_a_scheduled_trigger_enrols_the_audience_and_rearms_its_cron(tenant, frozen):
    template_id, sender_id = email_content(tenant)
    ids = contacts(tenant, 3)
    list_id = body_of(tenant.call("POST", "/v1/lists", {"name": "Members"}))["id"]
    tenant.call("POST", f"/v1/lists/{list_id}/members", {"contact_ids": ids[:2]})
    daily = {
        "kind": "trigger.scheduled",
        "config": {"cron": "0 9 * * *", "timezone": "Europe/Berlin"},
    }
    flow = create_flow(
        tenant, graph(template_id, sender_id, **daily), audience={"list_ids": [list_id]}
    )
    act(tenant, flow["id"], "activate")
    name = trigger_schedule_name(flow["id"], "start")
    assert name in schedule_names()
    first = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET)
    assert schedule_at(name) == "at(2026-11-23T08:00:00)"

    frozen.advance(first - NOW)
    assert ScheduleEmulator().fire_due_schedules(clock.now()) == [name]
    drain(["control"])

    enrolled = {c for c in ids if enrolments.read(tenant.id, flow["id"], c) is not None}
    assert enrolled == set(ids[:2])  # the audience, not the third contact
    assert schedule_at(name) == "at(2026-11-24T08:00:00)"  # the next firing, armed
    act(tenant, flow["id"], "pause")
    assert name not in schedule_names()  # disarmed while paused
    act(tenant, flow["id"], "resume")
    assert schedule_at(name) == "at(2026-11-24T08:00:00)"


def test_a_scheduled_trigger_without_an_audience_cannot_be_activated(tenant):
    template_id, sender_id = email_content(tenant)
    once = {"kind": "trigger.scheduled", "config": {"at": "2026-12-01T09:00:00Z"}}
    flow = create_flow(tenant, graph(template_id, sender_id, **once))

    response = act(tenant, flow["id"], "activate")

    assert response.status_code == 422
    assert error_of(response)["field"] == "audience"


def schedule_at(name: str) -> str:
    group = get_settings().schedule_group_name
    return client("scheduler").get_schedule(Name=name, GroupName=group)["ScheduleExpression"]


# -- the dry run and node_removed --------------------------------------------------------
def test_the_dry_run_counts_who_waits_on_removed_nodes_and_the_edit_wakes_them(tenant):
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    act(tenant, flow["id"], "activate")
    ids = contacts(tenant, 2)
    enrol_contacts(tenant.id, flow["id"], ids, NOW)  # they stand on 'start' until woken
    signup = {"kind": "trigger.event", "config": {"event_type": "signup"}}
    edited = graph(template_id, sender_id, **signup)
    edited["nodes"][0]["id"] = "signup"
    edited["edges"][0]["source"] = "signup"
    path = f"/v1/campaigns/{flow['id']}"

    dry = body_of(tenant.call("POST", f"{path}/workflow/check", {"workflow": edited}))
    assert dry == {
        "valid": True,
        "problems": [],
        "removed_nodes": [{"node_id": "start", "waiting": 2}],
    }
    broken = body_of(
        tenant.call("POST", f"{path}/workflow/check", {"workflow": {"nodes": [], "edges": []}})
    )
    assert broken["valid"] is False and broken["problems"][0]["field"] == "workflow.nodes"

    act(tenant, flow["id"], "pause")
    purge("flows")
    assert tenant.call("PATCH", path, {"workflow": edited}).status_code == 200

    wakes = [FlowWake.model_validate(m) for m in queued("flows")]
    assert sorted((w.contact_id, w.visit) for w in wakes) == sorted((c, 0) for c in ids)


def purge(role: str) -> None:
    client("sqs").purge_queue(QueueUrl=queue_url(role))


def queued(role: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url(role), MaxNumberOfMessages=10)
        if not got.get("Messages"):
            return found
        found.extend(json.loads(m["Body"]) for m in got["Messages"])


# -- node test sends -----------------------------------------------------------------------
def test_a_send_node_is_test_sent_and_other_nodes_are_not(tenant):
    client("ses").verify_domain_identity(Domain="example.com")
    template_id, sender_id = email_content(tenant)
    flow = create_flow(tenant, graph(template_id, sender_id))
    path = f"/v1/campaigns/{flow['id']}/nodes"

    sent = tenant.call("POST", f"{path}/welcome/test", {"addresses": ["ann@example.com"]})
    assert sent.status_code == 200, sent.body
    assert [r["status"] for r in body_of(sent)["results"]] == ["sent"]
    [mail] = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert email.message_from_string(mail.raw_data)["To"] == "ann@example.com"

    delay = tenant.call("POST", f"{path}/pause/test", {"addresses": ["ann@example.com"]})
    assert delay.status_code == 422 and error_of(delay)["field"] == "node_id"
    ghost = tenant.call("POST", f"{path}/ghost/test", {"addresses": ["ann@example.com"]})
    assert ghost.status_code == 404
    bad = tenant.call("POST", f"{path}/welcome/test", {"addresses": ["+12065550100"]})
    assert bad.status_code == 422 and error_of(bad)["field"] == "addresses.0"


# -- campaign.paused ---------------------------------------------------------------------
def test_campaign_paused_is_announced_with_its_reason(tenant):
    template_id, sender_id = email_content(tenant)
    hook = {"url": "https://hooks.example.com/herald", "event_types": ["campaign.paused"]}
    assert tenant.call("POST", "/v1/webhooks", hook).status_code == 201
    flow = create_flow(tenant, graph(template_id, sender_id))
    act(tenant, flow["id"], "activate")
    purge("callbacks")

    act(tenant, flow["id"], "pause")
    act(tenant, flow["id"], "resume")
    pause_for(tenant.id, flow["id"], Trip("complaint_rate", "complaints at 1%"), NOW)

    bodies = [json.loads(m["body"]) for m in queued("callbacks")]
    assert [(b["type"], b["data"]["reason"]) for b in bodies] == [
        ("campaign.paused", "manual"),
        ("campaign.paused", "complaint_rate"),
    ]
    assert bodies[0]["data"]["campaign_id"] == flow["id"]
    assert bodies[1]["data"]["message"] == "complaints at 1%"


def test_the_openapi_document_describes_the_workflow_routes(tenant):
    document = body_of(tenant.call("GET", "/v1/openapi.json"))
    paths = document["paths"]
    for action in ("activate", "complete", "workflow/check", "nodes/{node_id}/test"):
        assert "post" in paths[f"/v1/campaigns/{{campaign_id}}/{action}"], action
    schemas = document["components"]["schemas"]
    create = schemas["CreateCampaign"]["properties"]
    assert {"workflow", "reentry", "exit_on", "starts_at", "ends_at"} <= set(create)
    assert {"nodes", "edges"} <= set(schemas["Workflow-Input"]["properties"])
