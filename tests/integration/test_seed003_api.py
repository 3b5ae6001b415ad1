"""Seed 003's `/campaign/<campaign>` API through HTTP against moto, with the seed's own
parameter names, form-encoded and JSON: a whole life (create, SCHEDULED, READY, DONE, the
aggregated callback received), every refused state move, every bad parameter, deletion,
and the numbered lists, segments and domains the campaigns refer to."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store
from tests.conftest import Tenant, body_of
from tests.feedback_kit import Received, Shop, receiver, release_delayed_messages

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a callback window boundary
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
STATES = ("DRAFT", "SCHEDULED", "READY", "SENDING", "DONE", "ERROR")
ALLOWED = {("DRAFT", "SCHEDULED"), ("SCHEDULED", "DRAFT"), ("SCHEDULED", "READY"),
           ("READY", "SCHEDULED")}  # fmt: skip


@pytest.fixture(autouse=True)
def fast_sends(herald_env: Callable[..., None]) -> None:
    herald_env(
        ses_max_send_rate="1000000", simulator_delay_seconds="0", allow_loopback_callbacks="true"
    )


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    """Domain 1 is the verified email sender, domain 2 the SMS sender."""
    return Shop(tenant)


@pytest.fixture
def audience(tenant: Tenant, shop: Shop) -> dict[str, Any]:
    """List 1 holds ann, bob and +1 206 555 0123; segment 1 matches ann, dan and the phone
    (its contacts in the list: ann and the phone), segment 2 matches bob."""
    ann, bob, _dan, phone = shop.contacts(
        ["ann@example.com", "bob@example.com", "dan@example.com", "+12065550123"]
    )
    listed = ok(tenant.call("POST", "/v1/lists", {"name": "Newsletter"}), 201)
    ok(tenant.call("POST", f"/v1/lists/{listed['id']}/members", {"contact_ids": [ann, bob, phone]}))
    rules = [
        {"field": "email", "operator": "in", "value": ["ann@example.com", "dan@example.com"]},
        {"field": "phone", "operator": "exists"},
    ]
    first = {"name": "Ann, Dan, phones", "condition": "OR", "rules": rules}
    second = {
        "name": "Bob",
        "condition": "AND",
        "rules": [{"field": "email", "operator": "eq", "value": "bob@example.com"}],
    }
    segments = [ok(tenant.call("POST", "/v1/segments", body), 201) for body in (first, second)]
    return {"list": listed, "segments": segments}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.body
    return body_of(response)


def form(tenant: Tenant, method: str, path: str, pairs: list[tuple[str, Any]]) -> Any:
    return tenant.call(method, path, urlencode(pairs), headers=FORM)


def error_of(response: Any) -> dict:
    return body_of(response)["error"]


def create(tenant: Tenant, shop: Shop, **fields: Any) -> dict:
    body = {"name": "Launch", "domain": 1, "list": 1, "templates": [shop.email_template]}
    return ok(tenant.call("POST", "/campaign", {**body, **fields}))


def put(tenant: Tenant, number: int, **fields: Any) -> Any:
    return tenant.call("PUT", f"/campaign/{number}", fields)


def recipients() -> list[str]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return sorted(email.message_from_string(m.raw_data)["To"] for m in sent)


def fields_of(request: Received) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def wait_for_callbacks(frozen: clock.FrozenClock) -> None:
    """Let the callback window end and its delayed flush run."""
    frozen.advance(timedelta(seconds=62))
    release_delayed_messages()
    drain()


# -- a whole life ------------------------------------------------------------------------
def test_a_form_encoded_campaign_goes_from_draft_to_done_and_calls_back(
    tenant: Tenant,
    shop: Shop,
    audience: dict,
    simulator: FeedbackSimulator,
    frozen: clock.FrozenClock,
):
    with receiver() as hook:
        created = ok(
            form(
                tenant,
                "POST",
                "/campaign",
                [
                    ("name", "June news"),
                    ("domain", "1"),
                    ("list", str(audience["list"]["number"])),
                    ("segments[]", "1"),
                    ("templates[]", shop.email_template),
                    ("event_callback", f"{hook.url}/hook?token=abc"),
                ],
            )
        )
        assert {k: v for k, v in created.items() if k != "herald"} == {
            "id": 1,
            "name": "June news",
            "domain": 1,
            "list": 1,
            "segments": [1],
            "state": "DRAFT",
            "when": None,
            "event_callback": f"{hook.url}/hook?token=abc",
        }
        native = ok(tenant.call("GET", f"/v1/campaigns/{created['herald']['id']}"))
        assert native["number"] == 1 and native["status"] == "draft"
        assert native["audience"]["within_list_ids"] == [audience["list"]["id"]]
        assert ok(tenant.call("GET", "/campaign/1")) == created

        when = int((NOW + timedelta(hours=1)).timestamp())
        scheduled = ok(form(tenant, "PUT", "/campaign/1", [("state", "SCHEDULED"), ("when", when)]))
        assert (scheduled["state"], scheduled["when"]) == ("SCHEDULED", when)
        assert schedule_names() == [created["herald"]["id"]]

        ready = ok(form(tenant, "PUT", "/campaign/1", [("state", "READY")]))
        assert ready["state"] == "READY" and ready["when"] == int(NOW.timestamp())
        assert schedule_names() == []  # its start is queued instead

        drain()
        assert ok(tenant.call("GET", "/campaign/1"))["state"] == "DONE"
        assert recipients() == ["ann@example.com"]  # segment 1 within the list, email only
        simulator.flush()
        drain()
        wait_for_callbacks(frozen)

        events = {dict(fields_of(r))["event"]: fields_of(r) for r in hook.requests}
        assert {r.path for r in hook.requests} == {"/hook?token=abc"}
        assert "delivered" in events and set(events) <= {"submitted", "delivered"}
        for fields in events.values():  # one POST per event, ann's address in each
            assert fields[2:] == [("email[0]", "ann@example.com")]


def schedule_names() -> list[str]:
    scheduler = client("scheduler")
    group = get_settings().schedule_group_name
    return [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]


def test_an_sms_domain_makes_an_sms_campaign_whose_callbacks_are_delivered_only(
    tenant: Tenant,
    shop: Shop,
    audience: dict,
    simulator: FeedbackSimulator,
    frozen: clock.FrozenClock,
):
    with receiver() as hook:
        created = create(
            tenant,
            shop,
            domain=2,
            segments=[1],
            templates=[shop.sms_template],
            event_callback=f"{hook.url}/sms",
            state="READY",
        )
        assert created["state"] == "READY" and created["herald"]["channel"] == "sms"
        drain()
        assert ok(tenant.call("GET", "/campaign/1"))["state"] == "DONE"
        simulator.flush()
        drain()
        wait_for_callbacks(frozen)

        events = {dict(fields_of(r))["event"]: fields_of(r) for r in hook.requests}
        assert set(events) == {"delivered"}  # the seed: SMS gives delivered and bounced only
        assert events["delivered"][2:] == [("telephone[0]", "+12065550123")]


def test_json_when_alone_schedules_and_iso_8601_is_read(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    created = create(tenant, shop, when="2026-06-02T09:30:00+02:00")
    assert created["state"] == "SCHEDULED"
    assert created["when"] == int(datetime(2026, 6, 2, 7, 30, tzinfo=UTC).timestamp())

    moved = ok(put(tenant, 1, when=int((NOW + timedelta(days=3)).timestamp())))
    assert moved["state"] == "SCHEDULED" and moved["when"] == int(
        (NOW + timedelta(days=3)).timestamp()
    )


def test_put_edits_what_is_given_and_segments_can_be_cleared(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    create(tenant, shop, segments=[1, 2])
    renamed = ok(form(tenant, "PUT", "/campaign/1", [("name", "Renamed"), ("segments[]", "2")]))
    assert (renamed["name"], renamed["segments"], renamed["list"]) == ("Renamed", [2], 1)

    cleared = ok(form(tenant, "PUT", "/campaign/1", [("segments[]", "")]))
    assert cleared["segments"] == [] and cleared["list"] == 1  # the whole list
    native = store.get_campaign_by_number(tenant.id, 1)
    assert native.audience.list_ids == [audience["list"]["id"]]
    assert native.audience.within_list_ids == [] and native.name == "Renamed"

    unscheduled = ok(put(tenant, 1, state="SCHEDULED", when=int(NOW.timestamp()) + 60))
    assert unscheduled["state"] == "SCHEDULED"
    back = ok(put(tenant, 1, state="draft"))  # states are read case-insensitively
    assert (back["state"], back["when"]) == ("DRAFT", None)
    assert schedule_names() == []


# -- refused moves ----------------------------------------------------------------------
def campaign_in(tenant: Tenant, shop: Shop, state: str) -> int:
    """A campaign brought to ``state`` the way a client (or time) would."""
    created = create(tenant, shop)
    number, native_id = created["id"], created["herald"]["id"]
    when = int((NOW + timedelta(hours=1)).timestamp())
    if state in ("SCHEDULED", "READY"):
        ok(put(tenant, number, state="SCHEDULED", when=when))
    if state == "READY":
        ok(put(tenant, number, state="READY"))
    if state in ("SENDING", "DONE"):
        ok(put(tenant, number, state="SCHEDULED", when=when))
        ok(put(tenant, number, state="READY"))
        if state == "SENDING":
            drain(["control"])  # planned; its batches wait on the send queue
        else:
            drain()
    if state == "ERROR":
        ok(tenant.call("POST", f"/v1/campaigns/{native_id}/cancel"))
    assert ok(tenant.call("GET", f"/campaign/{number}"))["state"] == state
    return int(number)


@pytest.mark.parametrize("current", STATES)
def test_every_move_the_diagram_lacks_is_refused_naming_the_current_state(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock, current: str
):
    number = campaign_in(tenant, shop, current)
    for requested in STATES:
        if requested == current or (current, requested) in ALLOWED:
            continue
        when = {"when": int((NOW + timedelta(days=2)).timestamp())}
        body = {"state": requested, **(when if requested == "SCHEDULED" else {})}
        response = tenant.call("PUT", f"/campaign/{number}", body)
        assert response.status_code == 409, (current, requested, response.body)
        error = error_of(response)
        assert error["code"] == "invalid_transition" and error["field"] == "state"
        assert error["message"].startswith(
            f"cannot move from {current} to {requested}: the campaign is {current}"
        )
    assert ok(tenant.call("GET", f"/campaign/{number}"))["state"] == current


def test_the_refusal_says_where_a_campaign_can_go(tenant: Tenant, shop: Shop, audience):
    create(tenant, shop)
    assert error_of(put(tenant, 1, state="READY"))["message"] == (
        "cannot move from DRAFT to READY: the campaign is DRAFT; a request may move it to SCHEDULED"
    )
    assert error_of(put(tenant, 1, state="DONE"))["message"].endswith("move it to SCHEDULED")


def test_a_finished_campaign_cannot_be_edited(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    number = campaign_in(tenant, shop, "DONE")
    response = put(tenant, number, name="Too late")
    assert response.status_code == 409
    assert error_of(response)["message"] == (
        "a DONE campaign cannot be edited; only DRAFT, SCHEDULED, READY campaigns can"
    )


# -- bad parameters ------------------------------------------------------------------------
BAD_PARAMETERS = (
    ({"domain": 9}, "domain"),
    ({"domain": "one"}, "domain"),
    ({"domain": 0}, "domain"),
    ({"list": 9}, "list"),
    ({"segments[]": [1, 9]}, "segments[].1"),
    ({"segments": ["x"]}, "segments.0"),
    ({"state": "PAUSED"}, "state"),
    ({"state": "DONE"}, "state"),
    ({"state": "SENDING"}, "state"),
    ({"when": "next tuesday"}, "when"),
    ({"when": int(NOW.timestamp()) - 60}, "when"),
    ({"state": "SCHEDULED"}, "when"),
    ({"state": "DRAFT", "when": int(NOW.timestamp()) + 60}, "when"),
    ({"state": "READY", "when": int(NOW.timestamp()) + 60}, "when"),
    ({"event_callback": "not a url"}, "event_callback"),
    ({"event_callback": "http://169.254.169.254/latest/meta-data"}, "event_callback"),
    ({"name": ""}, "name"),
    ({"templates": 5}, "templates"),
    ({"colour": "red"}, "colour"),
)


def test_bad_parameters_are_422_naming_the_parameter_and_create_nothing(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    body = {"name": "Launch", "domain": 1, "list": 1, "templates": [shop.email_template]}
    for fields, field in BAD_PARAMETERS:
        response = tenant.call("POST", "/campaign", {**body, **fields})
        assert response.status_code == 422, (fields, response.body)
        assert error_of(response)["field"] == field, fields
    assert tenant.call("GET", "/campaign/1").status_code == 404
    assert ok(tenant.call("GET", "/v1/campaigns"))["items"] == []
    assert ok(tenant.call("POST", "/campaign", body))["id"] == 1  # no number was used up


def test_an_unverified_domain_is_refused(tenant: Tenant, shop: Shop):
    unverified = ok(
        tenant.call("POST", "/v1/senders", {"channel": "email", "from_email": "a@unknown.example"}),
        201,
    )
    response = tenant.call("POST", "/campaign", {"name": "X", "domain": unverified["number"]})
    assert response.status_code == 422 and error_of(response)["field"] == "domain"
    assert "not verified" in error_of(response)["message"]


def test_a_refused_put_changes_nothing(tenant: Tenant, shop: Shop, audience, frozen):
    create(tenant, shop)
    past = int(NOW.timestamp()) - 1
    response = put(tenant, 1, name="Renamed", state="SCHEDULED", when=past)
    assert response.status_code == 422 and error_of(response)["field"] == "when"
    unsendable = put(tenant, 1, name="Renamed", templates=["tpl_gone"], state="SCHEDULED",
                     when=past + 3600)  # fmt: skip
    assert unsendable.status_code == 422 and error_of(unsendable)["field"] == "templates[].0"
    assert ok(tenant.call("GET", "/campaign/1"))["name"] == "Launch"


def test_paths_that_are_not_a_campaign_number_are_404(tenant: Tenant):
    for path in ("/campaign/abc", "/campaign/0", "/campaign/-1", "/campaign/1.5", "/campaign/7"):
        for method in ("GET", "PUT", "DELETE"):
            response = tenant.call(method, path, {} if method == "PUT" else None)
            assert response.status_code == 404, (path, method, response.body)
            assert error_of(response)["code"] == "not_found"


def test_another_tenants_numbers_are_not_found(
    tenant: Tenant, other_tenant: Tenant, shop: Shop, audience
):
    create(tenant, shop)
    assert other_tenant.call("GET", "/campaign/1").status_code == 404
    assert other_tenant.call("DELETE", "/campaign/1").status_code == 404
    assert other_tenant.call("GET", "/list/1").status_code == 404
    refused = other_tenant.call("POST", "/campaign", {"name": "X", "list": 1})
    assert refused.status_code == 422 and error_of(refused)["field"] == "list"
    assert ok(tenant.call("GET", "/campaign/1"))["name"] == "Launch"


# -- delete ------------------------------------------------------------------------------
def test_delete_returns_the_deleted_campaign_and_a_scheduled_one_never_starts(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    draft = create(tenant, shop, name="Draft")
    assert ok(tenant.call("DELETE", f"/campaign/{draft['id']}")) == draft
    assert tenant.call("GET", f"/campaign/{draft['id']}").status_code == 404

    scheduled = create(tenant, shop, when=int((NOW + timedelta(hours=1)).timestamp()))
    assert ok(tenant.call("DELETE", f"/campaign/{scheduled['id']}"))["state"] == "SCHEDULED"
    assert schedule_names() == []
    assert tenant.call("GET", f"/v1/campaigns/{scheduled['herald']['id']}").status_code == 404

    sending = campaign_in(tenant, shop, "SENDING")
    response = tenant.call("DELETE", f"/campaign/{sending}")
    assert response.status_code == 409 and "SENDING" in error_of(response)["message"]


# -- what campaigns refer to ----------------------------------------------------------------
def test_lists_segments_and_domains_are_readable_by_number(
    tenant: Tenant, shop: Shop, audience: dict
):
    assert ok(tenant.call("GET", "/list")) == [
        {
            "id": 1,
            "name": "Newsletter",
            "description": "",
            "member_count": 3,
            "herald": {"id": audience["list"]["id"]},
        }
    ]
    assert ok(tenant.call("GET", "/list/1"))["herald"]["id"] == audience["list"]["id"]
    assert [s["id"] for s in ok(tenant.call("GET", "/segment"))] == [1, 2]
    assert ok(tenant.call("GET", "/segment/2"))["name"] == "Bob"
    domains = ok(tenant.call("GET", "/domain"))
    assert [(d["id"], d["domain"], d["channel"], d["enabled"]) for d in domains] == [
        (1, "acme.example.com", "email", True),
        (2, None, "sms", True),
    ]
    assert ok(tenant.call("GET", "/domain/1"))["herald"]["id"] == shop.email_sender
    for path in ("/list/2", "/segment/x", "/domain/3"):
        assert tenant.call("GET", path).status_code == 404
