"""Campaigns through HTTP against moto: the resource, its actions, schedules and the sweep."""

from __future__ import annotations

import email
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock, ids
from chalicelib.domain.campaigns import ACTIONS, TRANSITIONS, NewCampaign
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.domain.senders import IdentityStatus, SenderFields
from chalicelib.domain.templates import EmailTemplate, SmsTemplate
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.pipeline import scheduling
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.tick import run_tick
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store
from chalicelib.store.counters import add_counts
from chalicelib.store.lists import create_list
from chalicelib.store.senders import create_sender
from chalicelib.store.templates import create_template
from tests.conftest import Tenant, body_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
AN_HOUR_LATER = NOW + timedelta(hours=1)


@pytest.fixture(autouse=True)
def frozen():
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


def content(tenant: Tenant, channel: str = "email") -> dict:
    """A template and a sender of ``channel`` in the tenant's store."""
    if channel == "email":
        template = create_template(
            tenant.id,
            "Hello",
            EmailTemplate(subject="Hi {{ contact.first_name }}", html="<p>Hi</p>"),
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
    else:
        template = create_template(tenant.id, "Hello", SmsTemplate(body="Hi"))
        sender = create_sender(
            tenant.id,
            "sms",
            SenderFields(origination_number="+12065550100"),
            owned_identities=["number#+12065550100"],
        )
    return {"template_ids": [template.id], "sender_ids": [sender.id]}


def create(tenant: Tenant, frozen=None, **fields) -> dict:
    body = {"name": "Autumn sale", "channel": "email", **fields}
    response = tenant.call("POST", "/v1/campaigns", body)
    assert response.status_code == 201, response.body
    if frozen is not None:  # ids sort by creation time: keep creations apart
        frozen.advance(timedelta(seconds=1))
    return body_of(response)


def ready(tenant: Tenant, channel: str = "email", **fields) -> dict:
    return create(
        tenant,
        channel=channel,
        audience={"all_contacts": True},
        **content(tenant, channel),
        **fields,
    )


def schedule(tenant: Tenant, campaign_id: str, **body):
    return tenant.call(
        "POST",
        f"/v1/campaigns/{campaign_id}/schedule",
        {"scheduled_at": AN_HOUR_LATER.isoformat(), **body},
    )


def schedules() -> list[dict]:
    """Every schedule in Herald's group, in full."""
    scheduler = client("scheduler")
    group = get_settings().schedule_group_name
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    return [scheduler.get_schedule(Name=name, GroupName=group) for name in names]


def control_messages() -> list[dict]:
    """Take every message off the control queue (nothing consumes it in these tests)."""
    sqs = client("sqs")
    taken: list[dict] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=queue_url("control"), MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        if not received:
            return taken
        for message in received:
            taken.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=queue_url("control"), ReceiptHandle=message["ReceiptHandle"]
            )


def error_of(response) -> dict:
    return body_of(response)["error"]


# -- the resource ------------------------------------------------------------------------
def test_create_makes_a_numbered_draft_that_get_returns(tenant: Tenant):
    created = create(
        tenant,
        description="Everything must go",
        timezone="Europe/Berlin",
        quiet_hours={"start": "21:00", "end": "08:00"},
        frequency_cap={"max_messages": 2},
        campaign_frequency_cap={"max_messages": 1, "per_hours": 72},
        event_callback="https://hooks.example.com/herald?secret=1",
        reply_to="help@example.com",
        from_name="Acme Shop",
        edition_id="ed-1",
        template_ids=["t1", "t2"],
    )
    assert created["id"].startswith("cmp_") and created["number"] == 1
    assert created["status"] == "draft" and created["type"] == "broadcast"
    assert created["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    assert created["frequency_cap"] == {"max_messages": 2, "per_hours": 24}
    assert created["campaign_frequency_cap"] == {"max_messages": 1, "per_hours": 72}
    assert created["template_ids"] == ["t1", "t2"] and created["sender_ids"] == []
    assert created["sent"] == 0 and created["skipped"] == {}
    assert "revision" not in created and "steps" not in created
    fetched = body_of(tenant.call("GET", f"/v1/campaigns/{created['id']}"))
    assert fetched == created
    assert store.get_campaign_by_number(tenant.id, 1).id == created["id"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"channel": "email"}, 422, "name"),
        ({"name": "x"}, 422, "channel"),
        ({"name": "x", "channel": "email", "colour": "red"}, 422, "colour"),
        ({"name": "x", "channel": "email", "type": "sequence"}, 422, "type"),
        ({"name": "x", "channel": "email", "timezone": "Berlin"}, 422, "timezone"),
        (
            {"name": "x", "channel": "email", "quiet_hours": {"start": "9pm", "end": "08:00"}},
            422,
            "quiet_hours.start",
        ),
        (
            {"name": "x", "channel": "email", "frequency_cap": {"max_messages": -1}},
            422,
            "frequency_cap.max_messages",
        ),
        (
            {
                "name": "x",
                "channel": "email",
                "campaign_frequency_cap": {"max_messages": 1, "per_hours": 745},
            },
            422,
            "campaign_frequency_cap.per_hours",
        ),
        ({"name": "x", "channel": "email", "event_callback": "file:///etc"}, 422, "event_callback"),
        (
            {"name": "x", "channel": "email", "audience": {"list_ids": ["ok", "../x"]}},
            422,
            "audience.list_ids.1",
        ),
    ],
)
def test_create_refuses_bad_input_naming_the_field_and_writes_nothing(
    tenant: Tenant, body, status, field
):
    response = tenant.call("POST", "/v1/campaigns", body)
    assert response.status_code == status
    assert error_of(response)["field"] == field
    assert body_of(tenant.call("GET", "/v1/campaigns"))["items"] == []


def test_patch_changes_what_is_sent_and_null_clears(tenant: Tenant, frozen):
    created = create(tenant, from_name="Acme", description="old")
    frozen.advance(timedelta(minutes=5))
    response = tenant.call(
        "PATCH",
        f"/v1/campaigns/{created['id']}",
        {"name": "Winter sale", "from_name": None, "channel": "sms"},
    )
    assert response.status_code == 200, response.body
    patched = body_of(response)
    assert patched["name"] == "Winter sale" and patched["from_name"] is None
    assert patched["channel"] == "sms" and patched["description"] == "old"
    assert patched["updated_at"] == (NOW + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    refused = tenant.call("PATCH", f"/v1/campaigns/{created['id']}", {"name": None})
    assert refused.status_code == 422 and error_of(refused)["field"] == "name"
    assert body_of(tenant.call("GET", f"/v1/campaigns/{created['id']}"))["name"] == "Winter sale"


def test_patch_sets_and_clears_the_campaigns_own_cap(tenant: Tenant):
    created = create(tenant)
    path = f"/v1/campaigns/{created['id']}"
    cap = {"max_messages": 2, "per_hours": 6}
    capped = body_of(tenant.call("PATCH", path, {"campaign_frequency_cap": cap}))
    assert capped["campaign_frequency_cap"] == cap
    assert store.get_campaign(tenant.id, created["id"]).campaign_frequency_cap is not None
    cleared = body_of(tenant.call("PATCH", path, {"campaign_frequency_cap": None}))
    assert cleared["campaign_frequency_cap"] is None
    refused = tenant.call("PATCH", path, {"campaign_frequency_cap": {"max_messages": 0}})
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "campaign_frequency_cap.max_messages"


def test_a_running_campaign_cannot_be_edited_or_deleted(tenant: Tenant, frozen):
    campaign = ready(tenant)
    assert tenant.call("POST", f"/v1/campaigns/{campaign['id']}/send").status_code == 200
    store.apply_action(tenant.id, campaign["id"], "start", clock.now())
    for method, body in (("PATCH", {"name": "x"}), ("DELETE", None)):
        response = tenant.call(method, f"/v1/campaigns/{campaign['id']}", body)
        assert response.status_code == 409
        assert error_of(response)["code"] == "campaign_locked"
        assert "'calculating'" in error_of(response)["message"]


def test_delete_removes_a_draft_and_its_number(tenant: Tenant):
    created = create(tenant)
    assert tenant.call("DELETE", f"/v1/campaigns/{created['id']}").status_code == 204
    assert tenant.call("GET", f"/v1/campaigns/{created['id']}").status_code == 404
    with pytest.raises(NotFound):
        store.get_campaign_by_number(tenant.id, created["number"])
    assert create(tenant)["number"] == 2  # numbers are never reused


def test_another_tenant_gets_404_for_everything(tenant: Tenant, other_tenant: Tenant):
    theirs = ready(other_tenant)
    path = f"/v1/campaigns/{theirs['id']}"
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "mine now"}),
        ("DELETE", "", None),
        ("POST", "/schedule", {"scheduled_at": AN_HOUR_LATER.isoformat()}),
        ("POST", "/send", None),
        ("POST", "/cancel", None),
        ("POST", "/pause", None),
    ):
        response = tenant.call(method, path + suffix, body)
        assert response.status_code == 404, (method, suffix)
        assert error_of(response)["code"] == "not_found"
    assert body_of(tenant.call("GET", "/v1/campaigns"))["items"] == []
    assert body_of(other_tenant.call("GET", path))["name"] == "Autumn sale"
    assert body_of(other_tenant.call("GET", path))["status"] == "draft"
    assert tenant.call("GET", "/v1/campaigns/not-an-id").status_code == 404


# -- listing -----------------------------------------------------------------------------
def test_list_filters_by_search_status_channel_and_edition(tenant: Tenant, frozen):
    black = create(tenant, frozen, name="Black Friday", edition_id="ed1")
    create(tenant, frozen, name="Cyber Monday", channel="sms")
    friday_sms = create(tenant, frozen, name="friday texts", channel="sms", edition_id="ed1")
    tenant.call("POST", f"/v1/campaigns/{black['id']}/cancel")

    def names(query: str) -> list[str]:
        response = tenant.call("GET", f"/v1/campaigns?{query}")
        assert response.status_code == 200, response.body
        return [c["name"] for c in body_of(response)["items"]]

    assert names("search=FRIDAY") == ["friday texts", "Black Friday"]
    assert names("status=cancelled") == ["Black Friday"]
    assert names("status=draft&status=cancelled&channel=email") == ["Black Friday"]
    assert names("status=draft,cancelled&channel=sms") == ["friday texts", "Cyber Monday"]
    assert names("edition_id=ed1&channel=sms") == [friday_sms["name"]]
    bad = tenant.call("GET", "/v1/campaigns?status=finished")
    assert bad.status_code == 422 and error_of(bad)["field"] == "query.status.0"


def test_list_orders_and_pages_with_cursors(tenant: Tenant, frozen):
    for name in ("delta", "Alpha", "charlie", "Echo", "bravo"):
        create(tenant, frozen, name=name)

    def walk(query: str) -> list[str]:
        seen, cursor = [], None
        while True:
            suffix = f"&cursor={cursor}" if cursor else ""
            page = body_of(tenant.call("GET", f"/v1/campaigns?limit=2&{query}{suffix}"))
            assert len(page["items"]) <= 2
            seen += [c["name"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert walk("ordering=-created") == ["bravo", "Echo", "charlie", "Alpha", "delta"]
    assert walk("ordering=created") == ["delta", "Alpha", "charlie", "Echo", "bravo"]
    assert walk("ordering=name") == ["Alpha", "bravo", "charlie", "delta", "Echo"]
    assert walk("ordering=-name&search=a") == ["delta", "charlie", "bravo", "Alpha"]
    first = body_of(tenant.call("GET", "/v1/campaigns?limit=2&ordering=name"))
    mixed = tenant.call("GET", f"/v1/campaigns?ordering=-name&cursor={first['next_cursor']}")
    assert mixed.status_code == 422 and error_of(mixed)["field"] == "cursor"
    native = tenant.call("GET", f"/v1/campaigns?cursor={first['next_cursor']}")
    assert native.status_code == 422 and error_of(native)["field"] == "cursor"


def test_list_orders_by_schedule_and_status(tenant: Tenant, frozen):
    late, early, unscheduled = (
        create(tenant, frozen, name=n, audience={"all_contacts": True}, **content(tenant))
        for n in ("late", "early", "none")
    )
    schedule(tenant, late["id"], scheduled_at=(NOW + timedelta(days=2)).isoformat())
    schedule(tenant, early["id"], scheduled_at=(NOW + timedelta(days=1)).isoformat())
    ordered = body_of(tenant.call("GET", "/v1/campaigns?ordering=scheduled_at"))["items"]
    assert [c["name"] for c in ordered] == ["early", "late", "none"]
    by_status = body_of(tenant.call("GET", "/v1/campaigns?ordering=-status"))["items"]
    assert [c["status"] for c in by_status] == ["scheduled", "scheduled", "draft"]
    assert unscheduled["status"] == "draft"


# -- scheduling --------------------------------------------------------------------------
def test_schedule_creates_one_schedule_that_starts_the_campaign(tenant: Tenant):
    campaign = ready(tenant)
    response = schedule(tenant, campaign["id"])
    assert response.status_code == 200, response.body
    scheduled = body_of(response)
    assert scheduled["status"] == "scheduled"
    assert scheduled["scheduled_at"] == "2026-11-22T13:00:00Z"
    [made] = schedules()
    settings_ = get_settings()
    assert made["Name"] == campaign["id"]
    assert made["GroupName"] == settings_.schedule_group_name
    assert made["ScheduleExpression"] == "at(2026-11-22T13:00:00)"
    assert made["ScheduleExpressionTimezone"] == "UTC"
    assert made["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert made["ActionAfterCompletion"] == "DELETE"
    assert made["Target"]["Arn"] == settings_.queue_arn("control")
    assert made["Target"]["RoleArn"] == settings_.scheduler_role_arn
    assert json.loads(made["Target"]["Input"]) == {
        "kind": "campaign.start",
        "tenant_id": tenant.id,
        "campaign_id": campaign["id"],
    }


def test_schedule_reads_offsetless_times_in_the_timezone_and_unix_seconds(tenant: Tenant):
    berlin = ready(tenant)
    body = body_of(
        schedule(tenant, berlin["id"], scheduled_at="2026-12-01T10:00", timezone="Europe/Berlin")
    )
    assert body["scheduled_at"] == "2026-12-01T09:00:00Z" and body["timezone"] == "Europe/Berlin"
    tokyo = ready(tenant, timezone="Asia/Tokyo")
    assert (
        body_of(schedule(tenant, tokyo["id"], scheduled_at="2026-12-01T10:00"))["scheduled_at"]
        == "2026-12-01T01:00:00Z"
    )
    unix = ready(tenant)
    assert (
        body_of(schedule(tenant, unix["id"], scheduled_at=1796119200))["scheduled_at"]
        == "2026-12-01T10:00:00Z"
    )
    expressions = {s["Name"]: s["ScheduleExpression"] for s in schedules()}
    assert expressions == {
        berlin["id"]: "at(2026-12-01T09:00:00)",
        tokyo["id"]: "at(2026-12-01T01:00:00)",
        unix["id"]: "at(2026-12-01T10:00:00)",
    }


def test_reschedule_updates_the_one_schedule(tenant: Tenant, frozen):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    frozen.advance(timedelta(minutes=1))
    moved = schedule(tenant, campaign["id"], scheduled_at="2026-11-23T08:30:00Z")
    assert moved.status_code == 200 and body_of(moved)["scheduled_at"] == "2026-11-23T08:30:00Z"
    [only] = schedules()
    assert only["ScheduleExpression"] == "at(2026-11-23T08:30:00)"
    assert only["ActionAfterCompletion"] == "DELETE"
    scheduling.delete_schedule(campaign["id"])  # lost: a reschedule makes it again
    assert schedule(tenant, campaign["id"]).status_code == 200
    [remade] = schedules()
    assert remade["ScheduleExpression"] == "at(2026-11-22T13:00:00)"


def test_cancel_deletes_the_schedule_and_cannot_happen_twice(tenant: Tenant):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    cancelled = tenant.call("POST", f"/v1/campaigns/{campaign['id']}/cancel")
    assert cancelled.status_code == 200
    assert body_of(cancelled)["status"] == "cancelled"
    assert body_of(cancelled)["cancelled_at"] == "2026-11-22T12:00:00Z"
    assert schedules() == []
    again = tenant.call("POST", f"/v1/campaigns/{campaign['id']}/cancel")
    assert again.status_code == 409
    assert error_of(again) == {
        "code": "invalid_transition",
        "message": "cannot move from 'cancelled' to 'cancelled'",
        "field": "status",
    }


def test_unschedule_returns_to_draft_without_a_schedule(tenant: Tenant):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    draft = scheduling.unschedule(tenant.id, campaign["id"], clock.now())
    assert draft.status == "draft" and draft.scheduled_at is None
    assert schedules() == []
    assert schedule(tenant, campaign["id"]).status_code == 200
    assert len(schedules()) == 1


def test_schedule_refuses_a_past_time_and_a_campaign_not_ready(tenant: Tenant):
    campaign = ready(tenant)
    past = schedule(tenant, campaign["id"], scheduled_at="2026-11-22T11:59:59Z")
    assert past.status_code == 422 and error_of(past)["field"] == "scheduled_at"
    gap = schedule(
        tenant, campaign["id"], scheduled_at="2027-03-28T02:30", timezone="Europe/Berlin"
    )
    assert gap.status_code == 422 and error_of(gap)["field"] == "scheduled_at"
    empty = create(tenant)
    no_audience = schedule(tenant, empty["id"])
    assert no_audience.status_code == 422 and error_of(no_audience)["field"] == "audience"
    sms = content(tenant, "sms")
    wrong = create(
        tenant,
        audience={"all_contacts": True},
        template_ids=[*content(tenant)["template_ids"], *sms["template_ids"]],
        sender_ids=sms["sender_ids"],
    )
    mismatch = schedule(tenant, wrong["id"])
    assert mismatch.status_code == 422 and error_of(mismatch)["field"] == "template_ids.1"
    assert "is for sms" in error_of(mismatch)["message"]
    missing = create(
        tenant,
        audience={"all_contacts": True},
        template_ids=["tpl_gone"],
        sender_ids=content(tenant)["sender_ids"],
    )
    gone = schedule(tenant, missing["id"])
    assert gone.status_code == 422 and error_of(gone)["field"] == "template_ids.0"
    a_list = create_list(tenant.id, "Buyers")
    listed = create(tenant, audience={"list_ids": [a_list.id, "l_gone"]}, **content(tenant))
    no_list = tenant.call("POST", f"/v1/campaigns/{listed['id']}/send")
    assert no_list.status_code == 422 and error_of(no_list)["field"] == "audience.list_ids.1"
    assert schedules() == [] and control_messages() == []
    statuses = {c["status"] for c in body_of(tenant.call("GET", "/v1/campaigns"))["items"]}
    assert statuses == {"draft"}


def test_a_failed_schedule_call_leaves_the_campaign_a_draft(tenant: Tenant):
    campaign = ready(tenant)
    client("scheduler").delete_schedule_group(Name=get_settings().schedule_group_name)
    response = schedule(tenant, campaign["id"])
    assert response.status_code == 500
    after = body_of(tenant.call("GET", f"/v1/campaigns/{campaign['id']}"))
    assert after["status"] == "draft" and after["scheduled_at"] is None
    # Nor does the sweep start it later.
    run_tick(herald.TICK_JOBS, AN_HOUR_LATER + timedelta(minutes=5))
    assert control_messages() == []


def test_send_now_queues_one_start_and_drops_the_schedule(tenant: Tenant):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    response = tenant.call("POST", f"/v1/campaigns/{campaign['id']}/send")
    assert response.status_code == 200
    assert body_of(response)["status"] == "scheduled"
    assert body_of(response)["scheduled_at"] == "2026-11-22T12:00:00Z"
    assert control_messages() == [scheduling.start_message(tenant.id, campaign["id"])]
    assert schedules() == []


def test_a_fired_schedule_delivers_the_start_to_the_control_queue(tenant: Tenant):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    emulator = ScheduleEmulator()
    assert emulator.fire_due_schedules(AN_HOUR_LATER - timedelta(seconds=1)) == []
    assert emulator.fire_due_schedules(AN_HOUR_LATER) == [campaign["id"]]
    assert control_messages() == [scheduling.start_message(tenant.id, campaign["id"])]
    assert schedules() == []  # ActionAfterCompletion: DELETE


# -- the sweep and the start -------------------------------------------------------------
def test_overdue_sweep_starts_a_campaign_whose_schedule_was_lost_once(tenant: Tenant):
    lost, later = ready(tenant), ready(tenant)
    schedule(tenant, lost["id"])
    schedule(tenant, later["id"], scheduled_at=(AN_HOUR_LATER + timedelta(hours=1)).isoformat())
    scheduling.delete_schedule(lost["id"])
    run_tick(herald.TICK_JOBS, AN_HOUR_LATER + timedelta(seconds=30))  # not yet overdue
    assert control_messages() == []
    outcome = run_tick(herald.TICK_JOBS, AN_HOUR_LATER + timedelta(minutes=2))
    assert outcome["campaigns.overdue"] == "ok"
    assert control_messages() == [scheduling.start_message(tenant.id, lost["id"])]
    run_tick(herald.TICK_JOBS, AN_HOUR_LATER + timedelta(minutes=3))
    assert control_messages() == []


def test_a_started_campaign_is_not_swept(tenant: Tenant, frozen):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    frozen.set(AN_HOUR_LATER)
    store.apply_action(tenant.id, campaign["id"], "start", clock.now())
    run_tick(herald.TICK_JOBS, AN_HOUR_LATER + timedelta(minutes=5))
    assert control_messages() == []


def test_concurrent_starts_make_one_transition(tenant: Tenant, frozen):
    """Two starts read the same scheduled campaign, then both write: one wins.

    moto applies a conditional write in steps without a lock, unlike DynamoDB, so the
    client is made to behave like DynamoDB: each racer's first UpdateItem waits until both
    have read, and the writes themselves run one at a time.
    """
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    frozen.set(AN_HOUR_LATER)
    both_read = threading.Barrier(2, timeout=10)
    atomic = threading.Lock()
    waited: set[int] = set()

    def before_write(**_: object) -> None:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_read.wait()
        atomic.acquire()

    def after_write(**_: object) -> None:
        atomic.release()

    outcomes: list[str] = []

    def start() -> None:
        try:
            started = store.apply_action(tenant.id, campaign["id"], "start", clock.now())
            outcomes.append(started.status)
        except InvalidTransition as refused:
            outcomes.append(f"refused from {refused.current}")

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb.UpdateItem", before_write)
    events.register("after-call.dynamodb.UpdateItem", after_write)
    try:
        threads = [threading.Thread(target=start) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", before_write)
        events.unregister("after-call.dynamodb.UpdateItem", after_write)
    assert sorted(outcomes) == ["calculating", "refused from calculating"]
    stored = store.get_campaign(tenant.id, campaign["id"])
    assert stored.status == "calculating" and stored.started_at == AN_HOUR_LATER
    assert stored.revision == 2  # created, scheduled, started: one write each after creation


def test_a_stale_start_before_the_time_is_refused(tenant: Tenant, frozen):
    campaign = ready(tenant)
    schedule(tenant, campaign["id"])
    with pytest.raises(InvalidTransition) as raised:
        store.apply_action(tenant.id, campaign["id"], "start", clock.now())
    assert raised.value.field == "scheduled_at"
    assert store.get_campaign(tenant.id, campaign["id"]).status == "scheduled"


# -- running campaigns -------------------------------------------------------------------
def test_pause_resume_and_progress(tenant: Tenant, frozen):
    campaign = ready(tenant)
    path = f"/v1/campaigns/{campaign['id']}"
    paused_draft = tenant.call("POST", f"{path}/pause")
    assert paused_draft.status_code == 409
    assert error_of(paused_draft) == {
        "code": "invalid_transition",
        "message": "cannot move from 'draft' to 'paused'",
        "field": "status",
    }
    tenant.call("POST", f"{path}/send")
    store.apply_action(tenant.id, campaign["id"], "start", clock.now())
    store.apply_action(tenant.id, campaign["id"], "planned", clock.now(), total_recipients=7)
    add_counts(tenant.id, campaign["id"], {"sent": 3, "failed": 1, "skipped.suppressed": 2}, "b1")
    add_counts(tenant.id, campaign["id"], {"sent": 1}, "b2")
    assert body_of(tenant.call("POST", f"{path}/pause"))["status"] == "paused"
    resumed = body_of(tenant.call("POST", f"{path}/resume"))
    assert resumed["status"] == "sending"
    assert (resumed["total_recipients"], resumed["sent"], resumed["failed"]) == (7, 4, 1)
    assert resumed["skipped"] == {"suppressed": 2}
    assert resumed["started_at"] == "2026-11-22T12:00:00Z"
    store.apply_action(tenant.id, campaign["id"], "complete", clock.now())
    done = body_of(tenant.call("GET", path))
    assert done["status"] == "sent" and done["completed_at"] == "2026-11-22T12:00:00Z"
    resume_sent = tenant.call("POST", f"{path}/resume")
    assert resume_sent.status_code == 409 and "'sent'" in error_of(resume_sent)["message"]


# -- the state machine against the store -------------------------------------------------
class StoredCampaign(RuleBasedStateMachine):
    """Random actions on a stored campaign: status and due index follow the table."""

    def __init__(self) -> None:
        super().__init__()
        self.tenant_id = uuid.uuid4().hex
        self.now = NOW
        fields = NewCampaign(
            name="Random",
            channel="email",
            audience={"all_contacts": True},
            template_ids=["t1"],
            sender_ids=["s1"],
        )
        self.campaign_id = store.create_campaign(self.tenant_id, fields, self.now).id
        self.expected = "draft"

    @rule(action=st.sampled_from(ACTIONS), minutes=st.sampled_from([0, 1, 90]))
    def act(self, action, minutes):
        self.now += timedelta(minutes=minutes)
        fields = (
            {"scheduled_at": self.now + timedelta(minutes=30)}
            if action
            in (
                "schedule",
                "reschedule",
            )
            else {}
        )
        target = TRANSITIONS[self.expected].get(action)
        try:
            after = store.apply_action(self.tenant_id, self.campaign_id, action, self.now, **fields)
        except InvalidTransition as refused:
            assert refused.current == self.expected
            # start is refused before its time; iterate is an automation's only
            assert target is None or action in ("start", "iterate")
            return
        assert target is not None and after.status == target
        self.expected = target

    @invariant()
    def stored_status_and_due_index_agree(self):
        stored = store.get_campaign(self.tenant_id, self.campaign_id)
        assert stored.status == self.expected
        due = [
            e
            for e in store.due_entries(until=datetime(2100, 1, 1, tzinfo=UTC), limit=10_000)
            if e.campaign_id == self.campaign_id
        ]
        if stored.status == "scheduled":
            assert [e.scheduled_at for e in due] == [stored.scheduled_at]
        else:
            assert due == []


def test_stored_campaigns_follow_the_state_machine(aws):
    run_state_machine_as_test(
        StoredCampaign,
        settings=settings(max_examples=10, stateful_step_count=10, deadline=None),
    )


# -- test sends --------------------------------------------------------------------------
def test_test_send_goes_to_the_given_addresses_only(tenant: Tenant):
    client("ses").verify_domain_identity(Domain="example.com")
    campaign = ready(tenant)
    path = f"/v1/campaigns/{campaign['id']}/test"
    bad = tenant.call("POST", path, {"addresses": ["ok@example.org", "not an address"]})
    assert bad.status_code == 422 and error_of(bad)["field"] == "addresses.1"
    too_many = tenant.call("POST", path, {"addresses": [f"a{i}@example.org" for i in range(11)]})
    assert too_many.status_code == 422 and error_of(too_many)["field"] == "addresses"
    response = tenant.call("POST", path, {"addresses": ["Someone@Example.org"]})
    assert response.status_code == 200, response.body
    [result] = body_of(response)["results"]
    assert result["status"] == "sent", result
    assert result["address"] == "someone@example.org"
    [mail] = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert email.message_from_string(mail.raw_data)["To"] == "someone@example.org"
    assert mail.id == result["provider_message_id"]
    after = body_of(tenant.call("GET", f"/v1/campaigns/{campaign['id']}"))
    assert after["status"] == "draft" and after["sent"] == 0


def test_the_openapi_document_describes_the_campaign_routes(tenant: Tenant):
    document = body_of(tenant.call("GET", "/v1/openapi.json"))
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/v1/campaigns"])
    assert {"get", "patch", "delete"} <= set(paths["/v1/campaigns/{campaign_id}"])
    for action in ("schedule", "send", "pause", "resume", "cancel", "test"):
        assert "post" in paths[f"/v1/campaigns/{{campaign_id}}/{action}"]
    detail = document["components"]["schemas"]["CampaignDetail"]["properties"]
    assert {"sent", "failed", "skipped", "template_ids", "status"} <= set(detail)
    assert "revision" not in detail and "steps" not in detail


def test_a_campaign_is_found_by_its_dashed_uuid_too(tenant: Tenant):
    created = create(tenant)
    dashed = ids.dashed(created["id"])
    for given in (dashed, dashed.upper(), "cmp_" + dashed):
        response = tenant.call("GET", f"/v1/campaigns/{given}")
        assert response.status_code == 200, given
        assert body_of(response)["id"] == created["id"]
    patched = tenant.call("PATCH", f"/v1/campaigns/{dashed}", {"name": "Renamed"})
    assert body_of(patched)["name"] == "Renamed"
    assert tenant.call("GET", f"/v1/campaigns/{uuid.uuid4()}").status_code == 404
