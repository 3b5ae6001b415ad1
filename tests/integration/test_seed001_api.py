"""Seed 001's `/email/campaigns/` API through HTTP against moto: the seed's create with
every field, DRF's errors in its own words, the router's other routes, nested steps, and
what a sequence is underneath (a flow of type sequence compiled from its steps)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import clock, ids
from chalicelib.domain.delivery import message_id
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE, TAG_TENANT
from chalicelib.domain.senders import IdentityStatus, SenderFields
from chalicelib.local.poller import drain
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store
from chalicelib.store import enrolments, flow_triggers, ledger, templates
from chalicelib.store.counters import add_counts
from chalicelib.store.ledger import MessageRecord
from chalicelib.store.senders import create_sender
from tests.aws_events import ses_record
from tests.conftest import Tenant, body_of, call
from tests.feedback_kit import publish

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
PATH = "/email/campaigns/"
WINDOWS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]
SEED_RESPONSE_FIELDS = {
    "id",
    "steps",
    "sender_identities",
    "sent_count",
    "unique_opens",
    "unique_clicks",
    "replies",
    "name",
    "updated_at",
    "company",
    "sender_identity_ids",
    "status",
    "description",
    "timezone",
    "allowed_windows",
    "stop_on_reply",
    "is_deleted",
    "created_at",
    "workflow",
    "created_by",
    "responder_agent",
}
STEP_FIELDS = {
    "id",
    "updated_at",
    "campaign",
    "step_order",
    "subject",
    "body_html",
    "body_text",
    "delay_minutes",
    "is_active",
    "created_at",
}


@pytest.fixture(autouse=True)
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


def sender(tenant: Tenant, address: str) -> str:
    """An email sender of the tenant, as the seed names it (a dashed UUID)."""
    domain = address.split("@")[1]
    verified = IdentityStatus(
        identity=domain, kind="domain", verified=True, status="SUCCESS", checked_at=NOW
    )
    made = create_sender(
        tenant.id,
        "email",
        SenderFields(from_email=address),
        verified,
        owned_identities=[f"domain#{domain}"],
    )
    return ids.dashed(made.id)


def body(tenant: Tenant, **fields) -> dict:
    return {
        "name": "Founder outreach",
        "company": ids.dashed(tenant.id),
        "sender_identity_ids": [sender(tenant, "ana@example.com")],
        "description": "Three touches",
        "timezone": "Europe/Berlin",
        "allowed_windows": WINDOWS,
        "stop_on_reply": True,
        "is_deleted": False,
        "created_at": "2023-11-07T05:31:56Z",
        "workflow": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "created_by": "4c90c3cc-0d44-4b50-8888-8dd25736052a",
        "responder_agent": None,
        **fields,
    }


def create(tenant: Tenant, **fields) -> dict:
    response = tenant.call("POST", PATH, body(tenant, **fields))
    assert response.status_code == 201, response.body
    return body_of(response)


def add_step(tenant: Tenant, campaign_id: str, **fields) -> dict:
    step = {"subject": "Quick question", "body_html": "<p>Hi</p>", "body_text": "Hi", **fields}
    response = tenant.call("POST", f"{PATH}{campaign_id}/steps/", step)
    assert response.status_code == 201, response.body
    return body_of(response)


def test_create_answers_201_with_every_field_of_the_seed(tenant: Tenant):
    sent = body(tenant)
    response = tenant.call("POST", PATH, sent)
    assert response.status_code == 201, response.body
    created = body_of(response)
    assert set(created) == SEED_RESPONSE_FIELDS
    assert uuid.UUID(created["id"]).version == 7
    assert created["company"] == ids.dashed(tenant.id)
    for counter in ("sent_count", "unique_opens", "unique_clicks", "replies"):
        assert created[counter] == "0"
    assert created["sender_identities"] == "ana@example.com"
    assert created["sender_identity_ids"] == sent["sender_identity_ids"]
    assert created["allowed_windows"] == WINDOWS  # echoed verbatim
    assert created["status"] == "draft" and created["steps"] == []
    assert created["created_at"] == "2023-11-07T05:31:56Z"
    assert created["workflow"] == sent["workflow"] and created["responder_agent"] is None
    assert created["stop_on_reply"] is True and created["is_deleted"] is False
    stored = store.get_campaign(tenant.id, ids.native(created["id"], "cmp_"))
    assert stored.type == "sequence" and stored.timezone == "Europe/Berlin"
    assert [w.days for w in stored.send_windows] == [WINDOWS[0]["days"]]


def test_the_path_works_without_the_trailing_slash_and_ids_in_any_form(tenant: Tenant):
    response = tenant.call("POST", PATH.rstrip("/"), body(tenant))
    assert response.status_code == 201
    created = body_of(response)
    for given in (created["id"], created["id"].replace("-", ""), "cmp_" + created["id"]):
        assert tenant.call("GET", f"{PATH}{given}/").status_code == 200, given


def test_drf_errors_in_drf_words(tenant: Tenant):
    response = tenant.call("POST", PATH, {"description": "no name"})
    assert response.status_code == 400
    assert body_of(response) == {
        "name": ["This field is required."],
        "company": ["This field is required."],
    }
    bad = tenant.call(
        "POST",
        PATH,
        body(
            tenant,
            name="x" * 256,
            company="not-a-uuid",
            status="running",
            timezone="Mars/Olympus",
            created_by="nope",
        ),
    )
    assert body_of(bad) == {
        "name": ["Ensure this field has no more than 255 characters."],
        "company": ["Must be a valid UUID."],
        "status": ['"running" is not a valid choice.'],
        "timezone": ["A valid timezone is required."],
        "created_by": ["Must be a valid UUID."],
    }
    listed = tenant.call("POST", PATH, [body(tenant)])
    assert body_of(listed) == {"non_field_errors": ["Expected a JSON object."]}


def test_another_company_and_unknown_senders_do_not_exist(tenant: Tenant, other_tenant: Tenant):
    theirs = ids.dashed(other_tenant.id)
    unknown = str(uuid.uuid4())
    response = tenant.call(
        "POST", PATH, body(tenant, company=theirs, sender_identity_ids=[unknown])
    )
    assert body_of(response) == {
        "company": [f'Invalid pk "{theirs}" - object does not exist.'],
        "sender_identity_ids": [f'Invalid pk "{unknown}" - object does not exist.'],
    }
    their_sender = sender(other_tenant, "eve@example.org")
    refused = tenant.call("POST", PATH, body(tenant, sender_identity_ids=[their_sender]))
    assert body_of(refused) == {
        "sender_identity_ids": [f'Invalid pk "{their_sender}" - object does not exist.']
    }
    assert store.matching_campaigns(tenant.id, store.CampaignFilter()) == []


def test_allowed_windows_are_validated(tenant: Tenant):
    response = tenant.call(
        "POST",
        PATH,
        body(tenant, allowed_windows=[{"days": ["mon"], "start": "18:00", "end": "09:00"}]),
    )
    assert response.status_code == 400
    assert list(body_of(response)) == ["allowed_windows"]
    day_keyed = {"mon": [{"start": "09:00", "end": "12:00"}]}
    created = create(tenant, allowed_windows=day_keyed)
    assert created["allowed_windows"] == day_keyed


def test_401_without_a_key_in_drf_words(tenant: Tenant):
    response = call(tenant.client, "GET", PATH)
    assert response.status_code == 401
    assert body_of(response) == {"detail": "Authentication credentials were not provided."}
    bad = tenant.call("GET", PATH, key="hk_" + "0" * 32 + "_" + "0" * 12 + "_nope")
    assert bad.status_code == 401 and body_of(bad) == {"detail": "Invalid token."}


def test_steps_compile_into_the_flow_and_are_listed_by_step_order(tenant: Tenant):
    created = create(tenant)
    third = add_step(tenant, created["id"], step_order=3, subject="", delay_minutes=2880)
    first = add_step(tenant, created["id"], step_order=1, delay_minutes=0)
    second = add_step(
        tenant,
        created["id"],
        step_order=2,
        subject="",
        body_html="",
        body_text="Bump",
        delay_minutes=1440,
    )
    inactive = add_step(tenant, created["id"], step_order=4, is_active=False)
    assert set(first) >= STEP_FIELDS and first["campaign"] == created["id"]
    listed = body_of(tenant.call("GET", f"{PATH}{created['id']}/steps/"))
    assert [s["id"] for s in listed["results"]] == [
        first["id"],
        second["id"],
        third["id"],
        inactive["id"],
    ]
    shown = body_of(tenant.call("GET", f"{PATH}{created['id']}/"))
    assert [s["step_order"] for s in shown["steps"]] == [1, 2, 3, 4]
    campaign = store.get_campaign(tenant.id, ids.native(created["id"], "cmp_"))
    nodes = [(n.id, n.kind) for n in campaign.workflow.nodes]
    assert nodes == [
        ("enrol", "trigger.manual"),
        (first["id"], "send"),
        (f"wait-{second['id']}", "delay"),
        (second["id"], "send"),
        (f"wait-{third['id']}", "delay"),
        (third["id"], "send"),
    ]
    pool = [ids.native(s, "snd_") for s in created["sender_identity_ids"]]
    assert all(campaign.step(n).sender_ids == pool for n in (first["id"], third["id"]))
    step_template = templates.get_template(tenant.id, campaign.step(second["id"]).template_ids[0])
    assert step_template.content.subject == "Re: Quick question"  # no subject: the thread's
    assert "Bump" in step_template.content.html


def test_step_crud_and_edits_only_while_draft_or_paused(tenant: Tenant):
    created = create(tenant)
    step = add_step(tenant, created["id"])
    item = f"{PATH}{created['id']}/steps/{step['id']}/"
    patched = body_of(tenant.call("PATCH", item, {"delay_minutes": 5}))
    assert patched["delay_minutes"] == 5 and patched["subject"] == "Quick question"
    refused = tenant.call("PATCH", item, {"delay_minutes": 10**9})
    assert body_of(refused) == {
        "delay_minutes": ["Ensure this value is less than or equal to 527040."]
    }
    activated = tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "active"})
    assert body_of(activated)["status"] == "active"
    locked = tenant.call("PATCH", item, {"subject": "New"})
    assert locked.status_code == 409 and "detail" in body_of(locked)
    assert (
        body_of(tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "paused"}))["status"]
        == "paused"
    )
    assert tenant.call("DELETE", item).status_code == 204
    assert tenant.call("GET", item).status_code == 404
    assert body_of(tenant.call("GET", f"{PATH}{created['id']}/"))["steps"] == []


def test_status_moves_follow_the_flow_state_machine_and_publish_triggers(tenant: Tenant):
    created = create(tenant, status="active")
    assert created["status"] == "active"
    campaign_id = ids.native(created["id"], "cmp_")
    assert [t.campaign_id for t in flow_triggers.live_triggers(tenant.id)] == [campaign_id]
    back = tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "draft"})
    assert back.status_code == 409
    done = body_of(tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "completed"}))
    assert done["status"] == "completed"
    assert flow_triggers.live_triggers(tenant.id) == []


def test_put_replaces_and_delete_is_soft(tenant: Tenant):
    created = create(tenant)
    put = tenant.call(
        "PUT", f"{PATH}{created['id']}/", {"name": "Renamed", "company": ids.dashed(tenant.id)}
    )
    assert body_of(put)["name"] == "Renamed"
    assert tenant.call("PUT", f"{PATH}{created['id']}/", {"name": "x"}).status_code == 400
    assert tenant.call("DELETE", f"{PATH}{created['id']}/").status_code == 204
    assert tenant.call("GET", f"{PATH}{created['id']}/").status_code == 404
    assert body_of(tenant.call("GET", PATH))["count"] == 0
    kept = store.get_campaign(tenant.id, ids.native(created["id"], "cmp_"))
    assert kept.dialect_fields["is_deleted"] is True


def test_the_list_is_paginated_like_drf(tenant: Tenant, frozen):
    made = []
    for number in range(3):
        made.append(create(tenant, name=f"Sequence {number}")["id"])
        frozen.advance(timedelta(seconds=1))
    first = body_of(tenant.call("GET", f"{PATH}?page_size=2"))
    assert first["count"] == 3 and [c["id"] for c in first["results"]] == made[::-1][:2]
    assert first["next"].endswith("/email/campaigns/?page=2&page_size=2")
    assert first["previous"] is None
    second = body_of(tenant.call("GET", f"{PATH}?page=2&page_size=2"))
    assert [c["id"] for c in second["results"]] == [made[0]]
    missing = tenant.call("GET", f"{PATH}?page=9")
    assert missing.status_code == 404 and body_of(missing) == {"detail": "Not found."}


def test_counters_are_strings_for_the_campaign_and_each_step(tenant: Tenant):
    created = create(tenant)
    step = add_step(tenant, created["id"])
    campaign_id = ids.native(created["id"], "cmp_")
    add_counts(
        tenant.id,
        campaign_id,
        {"sent": 4, "opened": 3, "clicked": 1, "replied": 1, f"replied@{step['id']}": 1},
        shard_key="x",
    )
    shown = body_of(tenant.call("GET", f"{PATH}{created['id']}/"))
    assert (
        shown["sent_count"],
        shown["unique_opens"],
        shown["unique_clicks"],
        shown["replies"],
    ) == (
        "4",
        "3",
        "1",
        "1",
    )
    assert shown["steps"][0]["replies"] == "1" and shown["steps"][0]["sent_count"] == "0"


def test_another_tenant_cannot_see_or_touch_a_sequence(tenant: Tenant, other_tenant: Tenant):
    created = create(tenant)
    path = f"{PATH}{created['id']}/"
    for method, payload in (("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)):
        assert other_tenant.call(method, path, payload).status_code == 404
    assert (
        other_tenant.call("POST", f"{path}steps/", {"subject": "x", "body_text": "y"}).status_code
        == 404
    )
    assert body_of(other_tenant.call("GET", PATH))["count"] == 0


def test_a_test_setting_scales_delay_minutes_to_seconds(tenant: Tenant, herald_env):
    herald_env(sequence_delay_unit_seconds="1")
    assert get_settings().sequence_delay_unit_seconds == 1
    created = create(tenant)
    step = add_step(tenant, created["id"], delay_minutes=1)
    campaign = store.get_campaign(tenant.id, ids.native(created["id"], "cmp_"))
    delay = next(n for n in campaign.workflow.nodes if n.id == f"wait-{step['id']}")
    assert delay.config.model_dump() == {"amount": 1, "unit": "seconds"}


def test_an_open_counts_once_for_the_campaign_and_its_step(tenant: Tenant, herald_env):
    herald_env(simulator_delay_seconds="0")
    created = create(tenant)
    step = add_step(tenant, created["id"])
    campaign_id = ids.native(created["id"], "cmp_")
    contact_id = "c_" + uuid.uuid4().hex
    record = MessageRecord(
        campaign_id=campaign_id,
        step=step["id"],
        contact_id=contact_id,
        channel="email",
        message_id=message_id(step["id"], contact_id, "email"),
        status="sent",
        address="lead@example.com",
        batch_id="flow",
        sent_at=NOW,
        provider_message_id="0100018c-open-test",
    )
    ledger.record_message(tenant.id, record)
    tags = {TAG_TENANT: tenant.id, TAG_CAMPAIGN: campaign_id, TAG_MESSAGE: record.message_id}
    opened = ses_record("Open", tags=tags, ses_message_id="0100018c-open-test", at=NOW)
    publish([opened, opened])  # SES may deliver an event twice: counted once
    drain()
    shown = body_of(tenant.call("GET", f"{PATH}{created['id']}/"))
    assert shown["unique_opens"] == "1"
    assert shown["steps"][0]["unique_opens"] == "1"


def test_enroll_puts_contacts_into_the_sequence_through_the_enrolment_service(tenant: Tenant):
    created = create(tenant)
    add_step(tenant, created["id"])
    contacts = [
        body_of(tenant.call("POST", "/v1/contacts", {"email": f"lead{n}@example.org"}))["id"]
        for n in range(2)
    ]
    tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "active"})
    given = [contacts[0], ids.dashed(contacts[1]), "c_" + "0" * 32]
    response = tenant.call("POST", f"{PATH}{created['id']}/enroll/", {"contact_ids": given})
    assert response.status_code == 200, response.body
    results = body_of(response)["results"]
    assert [r["outcome"] for r in results] == ["enrolled", "enrolled", "error"]
    assert results[2]["reason"] == "not_found"
    campaign_id = ids.native(created["id"], "cmp_")
    assert enrolments.read(tenant.id, campaign_id, contacts[1]) is not None
    again = body_of(
        tenant.call("POST", f"{PATH}{created['id']}/enroll/", {"contact_ids": given[:1]})
    )
    assert again["results"][0]["outcome"] == "already_enrolled"
    cancelled = tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "cancelled"})
    assert body_of(cancelled)["status"] == "cancelled"
    ended = enrolments.read(tenant.id, campaign_id, contacts[0])
    assert ended is not None and ended.exit_reason == "campaign_ended"
