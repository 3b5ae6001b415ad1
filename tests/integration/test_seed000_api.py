"""Seed 000's API (/public/v1/email/campaigns) through the real gate: the create the seed
shows, its defaults and 422/401 shapes in the seed's words, and the Herald extensions
(GET, PATCH to broadcast/automation, /send, DELETE) moving ``send_progress``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.store import flow_triggers
from chalicelib.store.campaigns import get_campaign
from tests.conftest import Tenant, body_of
from tests.feedback_kit import Shop
from tests.send_kit import recipients_of, sent_mail

PATH = "/public/v1/email/campaigns"


@pytest.fixture(autouse=True)
def fast(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000")


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def dashed(herald_id: str) -> str:
    return str(uuid.UUID(herald_id.rpartition("_")[2]))


def create(shop: Shop, **extra: Any) -> Any:
    body = {
        "name": "Welcome leads",
        "template_ids": [dashed(shop.email_template)],
        "mail_account_ids": [dashed(shop.email_sender)],
        "events": ["lead.created"],
        **extra,
    }
    return shop.tenant.call("POST", PATH, body)


def test_create_answers_every_field_of_the_seed_with_its_defaults(shop: Shop) -> None:
    response = create(shop)
    assert response.status_code == 201, response.body
    body = body_of(response)
    assert body["ok"] is True
    campaign = body["campaign"]
    assert set(campaign) == {
        "id", "team_id", "name", "delivery_type", "campaign_type", "meta", "created_at",
        "updated_at", "draft_data", "campaign_sends",
    }  # fmt: skip
    assert uuid.UUID(campaign["id"]) and campaign["team_id"] == str(uuid.UUID(shop.tenant.id))
    assert campaign["campaign_type"] == "event_triggered"
    assert campaign["delivery_type"] == "email" and campaign["meta"] == []
    send_data = campaign["draft_data"]["send_data"]
    assert send_data["template_ids"] == [dashed(shop.email_template)]
    assert send_data["mail_account_ids"] == [dashed(shop.email_sender)]
    assert send_data["event_triggered_send"] == {
        "events": ["lead.created"],
        "contact_cooldown_interval": 3600,
        "contact_daily_email_cap": 3,
        "enabled": True,
    }
    assert send_data["automation_send"]["iteration_send_amount"] == 200
    assert send_data["automation_send"]["min_delivery_rate"] == 92
    assert send_data["verification_data"] == {
        "acceptable_statuses": ["valid"],
        "active": False,
        "max_budget": 1,
        "age_threshold": 2,
    }
    assert send_data["segment_query"]["condition"] == "AND"
    assert send_data["segment_query"]["rules"] == []
    (run,) = campaign["campaign_sends"]
    assert run["status"] == "active" and run["campaign_type"] == "event_triggered"
    assert run["send_progress"]["total_sent"] == 0
    assert set(run["send_progress"]) == {
        "total_sent", "total_bounced", "delivery_rate", "current_iteration", "reason",
    }  # fmt: skip

    # Herald's flow: a trigger per event, the cooldown as re-entry, the cap per 24 h.
    stored = get_campaign(shop.tenant.id, "cmp_" + uuid.UUID(campaign["id"]).hex)
    assert stored.type == "event_triggered" and stored.status == "active"
    assert stored.reentry.mode == "every" and stored.reentry.interval is not None
    assert stored.reentry.interval.as_timedelta().total_seconds() == 3600
    assert stored.campaign_frequency_cap is not None
    assert stored.campaign_frequency_cap.max_messages == 3
    assert [
        t.campaign_id for t in flow_triggers.event_triggers(shop.tenant.id, "lead.created")
    ] == [stored.id]


def test_underscored_events_are_taken_and_answered_with_dots(shop: Shop) -> None:
    body = body_of(create(shop, events=["sale_created", "contact.saved"]))
    events = body["campaign"]["draft_data"]["send_data"]["event_triggered_send"]["events"]
    assert events == ["sale.created", "contact.saved"]


def test_validation_errors_in_the_seeds_words_and_nothing_created(shop: Shop) -> None:
    response = shop.tenant.call(
        "POST",
        PATH,
        {"template_ids": ["nope"], "mail_account_ids": [], "events": ["order.paid"]},
    )
    assert response.status_code == 422
    body = body_of(response)
    assert body["ok"] is False
    assert body["errors"] == {
        "name": ["The name field is required."],
        "template_ids.0": ["Each template ID must be a valid UUID."],
        "mail_account_ids": ["The mail account ids field is required."],
        "events.0": ["Event name must be one of: contact_saved, lead_created, sale_created."],
    }
    assert body["message"] == "The name field is required. (and 3 more errors)"
    listing = body_of(shop.tenant.call("GET", "/v1/campaigns"))
    assert listing["items"] == []


def test_a_plain_string_rule_is_refused(shop: Shop) -> None:
    response = create(shop, send_data={"segment_query": {"rules": ["email = x"]}})
    assert response.status_code == 422
    assert list(body_of(response)["errors"]) == ["send_data.segment_query.rules.0"]


def test_without_a_key_unauthenticated(tenant: Tenant) -> None:
    response = tenant.client.http.post(
        PATH, headers={"Content-Type": "application/json"}, body="{}"
    )
    assert response.status_code == 401
    assert body_of(response) == {"ok": False, "message": "Unauthenticated."}


def test_disabled_is_a_paused_flow(shop: Shop) -> None:
    body = body_of(create(shop, send_data={"event_triggered_send": {"enabled": False}}))
    assert body["campaign"]["campaign_sends"][0]["status"] == "paused"


def test_patch_to_broadcast_with_builder_rules_then_send_moves_progress(shop: Shop) -> None:
    shop.contacts(["ada@example.com", "bob@example.com", "cy@example.org"])
    campaign_id = body_of(create(shop))["campaign"]["id"]
    patched = shop.tenant.call(
        "PATCH",
        f"{PATH}/{campaign_id}",
        {
            "send_data": {
                "campaign_type": "broadcast",
                "segment_query": {
                    "condition": "AND",
                    "type": "builder",
                    "rules": [{"field": "email", "operator": "contains", "value": "example.com"}],
                },
                "open_tracking": False,
            }
        },
    )
    assert patched.status_code == 200, patched.body
    campaign = body_of(patched)["campaign"]
    assert campaign["campaign_type"] == "broadcast" and campaign["campaign_sends"] == []
    assert flow_triggers.event_triggers(shop.tenant.id, "lead.created") == []

    sent = shop.tenant.call("POST", f"{PATH}/{campaign_id}/send")
    assert sent.status_code == 200, sent.body
    drain()
    assert sorted(recipients_of(sent_mail())) == ["ada@example.com", "bob@example.com"]
    shown = body_of(shop.tenant.call("GET", f"{PATH}/{campaign_id}"))["campaign"]
    (run,) = shown["campaign_sends"]
    assert run["status"] == "sent" and run["send_progress"]["total_sent"] == 2
    assert shown["draft_data"]["send_data"]["open_tracking"] is False


def test_an_automation_through_the_seed(shop: Shop) -> None:
    shop.contacts(f"reader{n}@example.com" for n in range(5))
    campaign_id = body_of(
        create(
            shop,
            send_data={
                "campaign_type": "automation",
                "automation_send": {"iteration_send_amount": 2, "send_interval": 0},
            },
        )
    )["campaign"]["id"]
    assert shop.tenant.call("POST", f"{PATH}/{campaign_id}/send").status_code == 200
    drain()
    assert len(sent_mail()) == 2
    run = body_of(shop.tenant.call("GET", f"{PATH}/{campaign_id}"))["campaign"]["campaign_sends"][0]
    assert run["campaign_type"] == "automation"
    assert run["send_progress"]["current_iteration"] == 1


def test_delete_and_unknown_ids(shop: Shop) -> None:
    campaign_id = body_of(create(shop))["campaign"]["id"]
    assert shop.tenant.call("DELETE", f"{PATH}/{campaign_id}").status_code == 200
    assert flow_triggers.event_triggers(shop.tenant.id, "lead.created") == []
    for gone in (campaign_id, "not-a-uuid"):
        missing = shop.tenant.call("GET", f"{PATH}/{gone}")
        assert missing.status_code == 404
        assert body_of(missing) == {"ok": False, "message": "Campaign not found."}


def test_a_body_that_is_not_an_object_is_named_as_such(shop: Shop) -> None:
    response = shop.tenant.call("POST", PATH, ["lead.created"])
    assert response.status_code == 422
    assert body_of(response)["errors"] == {"body": ["Expected a JSON object."]}


def test_a_bad_reply_to_is_named_in_the_seeds_terms(shop: Shop) -> None:
    for campaign_type in ("event_triggered", "broadcast"):
        response = create(
            shop, send_data={"campaign_type": campaign_type, "reply_to_email": "not-an-address"}
        )
        assert response.status_code == 422, response.body
        assert list(body_of(response)["errors"]) == ["send_data.reply_to_email"]
    assert body_of(shop.tenant.call("GET", "/v1/campaigns"))["items"] == []


def test_two_lead_events_within_the_cooldown_send_one_email(shop: Shop) -> None:
    """The event-triggered send end to end: POST /v1/events → bus → enrolment → the flow
    worker → SES; the second event within contact_cooldown_interval enrols nobody."""
    (ann,) = shop.contacts(["ann@example.com"])
    assert create(shop).status_code == 201
    for _ in range(2):
        posted = shop.tenant.call(
            "POST", "/v1/events", {"events": [{"name": "lead.created", "contact": {"id": ann}}]}
        )
        assert posted.status_code == 202, posted.body
        drain()
    assert recipients_of(sent_mail()) == {"ann@example.com": 1}


def test_past_the_cooldown_each_event_sends_until_the_daily_cap_skips(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    """Events past contact_cooldown_interval each send (a re-entry is a new message);
    the third within a day is over contact_daily_email_cap and skipped with its reason."""
    (ann,) = shop.contacts(["ann@example.com"])
    triggered = {"contact_cooldown_interval": 60, "contact_daily_email_cap": 2}
    created = create(shop, send_data={"event_triggered_send": triggered})
    assert created.status_code == 201, created.body
    for _ in range(3):
        posted = shop.tenant.call(
            "POST", "/v1/events", {"events": [{"name": "lead.created", "contact": {"id": ann}}]}
        )
        assert posted.status_code == 202, posted.body
        drain()
        frozen.advance(timedelta(minutes=2))
    assert recipients_of(sent_mail()) == {"ann@example.com": 2}
    campaign_id = flow_triggers.event_triggers(shop.tenant.id, "lead.created")[0].campaign_id
    stats = shop.tenant.call("GET", f"/v1/campaigns/{campaign_id}/stats")
    assert body_of(stats)["nodes"]["send"]["skipped"] == {"campaign_frequency_cap": 1}


def test_an_event_while_disabled_is_held_and_sent_once_enabled_again(shop: Shop) -> None:
    (ann,) = shop.contacts(["ann@example.com"])
    created = body_of(create(shop, send_data={"event_triggered_send": {"enabled": False}}))
    campaign_path = f"{PATH}/{created['campaign']['id']}"
    posted = shop.tenant.call(
        "POST", "/v1/events", {"events": [{"name": "lead.created", "contact": {"id": ann}}]}
    )
    assert posted.status_code == 202, posted.body
    drain()
    assert sent_mail() == []  # enrolled, held while disabled

    enabled = {"send_data": {"event_triggered_send": {"enabled": True}}}
    patched = shop.tenant.call("PATCH", campaign_path, enabled)
    assert patched.status_code == 200, patched.body
    assert body_of(patched)["campaign"]["campaign_sends"][0]["status"] == "active"
    drain()
    assert recipients_of(sent_mail()) == {"ann@example.com": 1}
