"""The campaign use cases (chalicelib.services.campaigns) through the APIs that call them:
a request is decided in full before anything is written, and when a write fails after
the decision, what the same request wrote before it is undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.settings import get_settings
from chalicelib.store.templates import list_templates
from tests.conftest import Tenant, body_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = int((NOW + timedelta(hours=1)).timestamp())


@pytest.fixture(autouse=True)
def frozen():
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.body
    return body_of(response)


def sms_content(tenant: Tenant) -> dict[str, Any]:
    """An SMS template and sender (an SMS sender needs no SES verification)."""
    template = ok(
        tenant.call("POST", "/v1/templates", {"name": "Hi", "channel": "sms", "body": "Hi"}), 201
    )
    sender = ok(
        tenant.call(
            "POST", "/v1/senders", {"channel": "sms", "origination_number": "+12065550100"}
        ),
        201,
    )
    return {"template": template, "sender": sender}


def break_the_scheduler() -> None:
    """Every CreateSchedule fails from now on (its group is gone)."""
    client("scheduler").delete_schedule_group(Name=get_settings().schedule_group_name)


def templates_of(tenant: Tenant) -> list[str]:
    return [t.id for t in list_templates(tenant.id)[0]]


# -- description: null clears ------------------------------------------------------------
def test_a_null_description_is_accepted_on_create_and_clears_it_on_patch(tenant: Tenant):
    created = ok(
        tenant.call(
            "POST", "/v1/campaigns", {"name": "A", "channel": "email", "description": None}
        ),
        201,
    )
    assert created["description"] == ""
    described = ok(
        tenant.call("PATCH", f"/v1/campaigns/{created['id']}", {"description": "winter"})
    )
    assert described["description"] == "winter"
    cleared = ok(tenant.call("PATCH", f"/v1/campaigns/{created['id']}", {"description": None}))
    assert cleared["description"] == ""
    assert ok(tenant.call("GET", f"/v1/campaigns/{created['id']}"))["description"] == ""


# -- nothing half-made --------------------------------------------------------------------
def test_a_seed003_create_whose_schedule_fails_leaves_no_campaign(tenant: Tenant):
    content = sms_content(tenant)
    ok(tenant.call("POST", "/v1/lists", {"name": "All"}), 201)
    break_the_scheduler()
    response = tenant.call(
        "POST",
        "/campaign",
        {
            "name": "Flash",
            "list": 1,
            "domain": content["sender"]["number"],
            "templates": [content["template"]["id"]],
            "state": "READY",
            "when": LATER,
        },
    )
    assert response.status_code == 500
    assert ok(tenant.call("GET", "/v1/campaigns"))["items"] == []


def test_a_seed003_put_whose_schedule_fails_undoes_its_edit(tenant: Tenant):
    content = sms_content(tenant)
    created = ok(
        tenant.call(
            "POST",
            "/campaign",
            {
                "name": "Flash",
                "domain": content["sender"]["number"],
                "templates": [content["template"]["id"]],
            },
        )
    )
    ok(tenant.call("POST", "/v1/lists", {"name": "All"}), 201)
    ok(tenant.call("PUT", f"/campaign/{created['id']}", {"state": "SCHEDULED", "when": LATER}))
    break_the_scheduler()
    response = tenant.call(
        "PUT", f"/campaign/{created['id']}", {"name": "Renamed", "list": 1, "state": "READY"}
    )
    assert response.status_code == 500
    after = ok(tenant.call("GET", f"/campaign/{created['id']}"))
    assert (after["name"], after["list"], after["state"]) == ("Flash", None, "SCHEDULED")
    assert after["when"] == LATER


def test_a_seed002_edit_refused_after_its_sms_body_was_read_makes_no_template(tenant: Tenant):
    content = sms_content(tenant)
    created = ok(
        tenant.call("POST", "/campaigns/", {"name": "Text", "channel": "sms", "sms_body": "Hi"}),
        201,
    )
    before = templates_of(tenant)
    # A sender of the wrong channel is refused when the request is decided: no template.
    email_sender = ok(
        tenant.call("POST", "/v1/senders", {"channel": "email", "from_email": "a@example.com"}),
        201,
    )
    refused = tenant.call(
        "PATCH",
        f"/campaigns/{created['id']}/",
        {"sms_body": "Changed", "sender_id": email_sender["id"]},
    )
    assert refused.status_code == 400 and "sender_id" in body_of(refused)
    assert templates_of(tenant) == before
    assert content["template"]["id"] in before
