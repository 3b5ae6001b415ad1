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

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.pipeline.tick import run_tick
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
        assert schedule_names() == []  # SCHEDULED holds a time; it does not send

        ready = ok(form(tenant, "PUT", "/campaign/1", [("state", "READY")]))
        assert (ready["state"], ready["when"]) == ("READY", when)  # armed for its time
        assert schedule_names() == [created["herald"]["id"]]

        frozen.advance(timedelta(hours=1, minutes=2))
        run_tick(herald.TICK_JOBS, clock.now())  # the overdue sweep: as if the schedule fired
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


def test_json_when_alone_never_changes_the_state_and_iso_8601_is_read(
    tenant: Tenant, shop: Shop, audience: dict, frozen: clock.FrozenClock
):
    created = create(tenant, shop, when="2026-06-02T09:30:00+02:00")
    assert created["state"] == "DRAFT"  # a draft may hold a time
    assert created["when"] == int(datetime(2026, 6, 2, 7, 30, tzinfo=UTC).timestamp())

    moved = ok(put(tenant, 1, when=int((NOW + timedelta(days=3)).timestamp())))
    assert moved["state"] == "DRAFT" and moved["when"] == int((NOW + timedelta(days=3)).timestamp())
    assert schedule_names() == []


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
    assert (back["state"], back["when"]) == ("DRAFT", int(NOW.timestamp()) + 60)
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
    if state in ("SENDING", "DONE"):  # armed for a time already come: it starts at once
        ok(put(tenant, number, state="SCHEDULED", when=when))
        ok(put(tenant, number, state="READY", when=int(NOW.timestamp())))
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
    ({"state": "SCHEDULED"}, "when"),
    ({"state": "READY", "templates": ["tpl_gone"]}, "templates[].0"),
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
    response = put(tenant, 1, name="Renamed", state="SCHEDULED")
    assert response.status_code == 422 and error_of(response)["field"] == "when"
    ok(put(tenant, 1, state="SCHEDULED", when=int(NOW.timestamp()) + 3600))
    unsendable = put(tenant, 1, name="Renamed", templates=["tpl_gone"], state="READY")
    assert unsendable.status_code == 422 and error_of(unsendable)["field"] == "templates[].0"
    after = ok(tenant.call("GET", "/campaign/1"))
    assert (after["name"], after["state"]) == ("Launch", "SCHEDULED")
    assert schedule_names() == []


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

    scheduled = create(
        tenant, shop, state="READY", when=int((NOW + timedelta(hours=1)).timestamp())
    )
    assert schedule_names() == [scheduled["herald"]["id"]]
    assert ok(tenant.call("DELETE", f"/campaign/{scheduled['id']}"))["state"] == "READY"
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


# -- what a client written against the seed sends (issue 14) ------------------------------
def send(tenant: Tenant, method: str, path: str, fields: dict[str, Any], as_form: bool) -> Any:
    """``fields`` as a seed client sends them: form-encoded (lists as repeated ``name[]``)
    or JSON."""
    if not as_form:
        return tenant.call(method, path, fields)
    pairs: list[tuple[str, Any]] = []
    for name, value in fields.items():
        if isinstance(value, list):
            pairs += [(f"{name}[]", item) for item in value]
        else:
            pairs.append((name, "" if value is None else value))
    return form(tenant, method, path, pairs)


def native_status(tenant: Tenant, number: int) -> str:
    return store.get_campaign_by_number(tenant.id, number).status


CLIENTS = pytest.mark.parametrize(
    ("as_form", "slash"), [(True, ""), (True, "/"), (False, ""), (False, "/")]
)


@CLIENTS
def test_ready_is_armed_for_when_and_scheduled_only_holds_it(
    tenant: Tenant, shop: Shop, audience, frozen, as_form: bool, slash: str
):
    base = {"name": "Launch", "domain": 1, "list": 1, "templates": [shop.email_template]}
    created = ok(send(tenant, "POST", f"/campaign{slash}", base, as_form))
    item = f"/campaign/{created['id']}{slash}"
    later = int((NOW + timedelta(hours=1)).timestamp())

    held = ok(send(tenant, "PUT", item, {"state": "SCHEDULED", "when": later}, as_form))
    assert (held["state"], held["when"]) == ("SCHEDULED", later)
    assert schedule_names() == [] and native_status(tenant, created["id"]) == "draft"

    armed = ok(send(tenant, "PUT", item, {"state": "READY"}, as_form))
    assert (armed["state"], armed["when"]) == ("READY", later)  # not now: at its time
    assert schedule_names() == [created["herald"]["id"]]

    disarmed = ok(send(tenant, "PUT", item, {"state": "SCHEDULED"}, as_form))
    assert (disarmed["state"], disarmed["when"]) == ("SCHEDULED", later)
    assert schedule_names() == []

    now = ok(send(tenant, "PUT", item, {"state": "READY", "when": int(NOW.timestamp())}, as_form))
    assert now["state"] == "READY" and schedule_names() == []  # a time come: started at once
    drain()
    assert ok(tenant.call("GET", item))["state"] == "DONE"


@CLIENTS
def test_ready_without_when_sends_at_once(
    tenant: Tenant, shop: Shop, audience, as_form: bool, slash: str
):
    body = {"name": "Now", "domain": 1, "list": 1, "templates": [shop.email_template]}
    created = ok(send(tenant, "POST", f"/campaign{slash}", {**body, "state": "READY"}, as_form))
    assert created["state"] == "READY" and schedule_names() == []
    drain()
    assert ok(tenant.call("GET", f"/campaign/{created['id']}"))["state"] == "DONE"


@CLIENTS
def test_a_draft_holds_a_when_and_when_alone_never_moves_it(
    tenant: Tenant, shop: Shop, audience, frozen, as_form: bool, slash: str
):
    later = int((NOW + timedelta(days=1)).timestamp())
    created = ok(send(tenant, "POST", f"/campaign{slash}", {"name": "D", "when": later}, as_form))
    assert (created["state"], created["when"]) == ("DRAFT", later)
    item = f"/campaign/{created['id']}{slash}"
    moved = ok(send(tenant, "PUT", item, {"state": "DRAFT", "when": later + 60}, as_form))
    assert (moved["state"], moved["when"]) == ("DRAFT", later + 60)
    cleared = ok(send(tenant, "PUT", item, {"when": None}, as_form))
    assert (cleared["state"], cleared["when"]) == ("DRAFT", None)
    assert schedule_names() == []


def test_get_then_put_of_the_same_object_is_accepted(tenant: Tenant, shop: Shop, audience, frozen):
    created = create(tenant, shop, segments=[1])
    ok(put(tenant, 1, state="SCHEDULED", when=int((NOW + timedelta(hours=2)).timestamp())))
    read = ok(tenant.call("GET", "/campaign/1"))
    assert ok(tenant.call("PUT", "/campaign/1", read)) == read
    assert read["herald"]["id"] == created["herald"]["id"]
    other = tenant.call("PUT", "/campaign/1", {**read, "id": 2})
    assert other.status_code == 422 and error_of(other)["field"] == "id"


@pytest.mark.parametrize("as_form", [True, False])
def test_query_string_parameters_of_post_and_put_are_read_the_body_wins(
    tenant: Tenant, shop: Shop, audience, frozen, as_form: bool
):
    templates = {"templates": [shop.email_template]}
    created = ok(send(tenant, "POST", "/campaign?name=Query&list=1&domain=1", templates, as_form))
    assert (created["name"], created["list"], created["domain"]) == ("Query", 1, 1)
    when = int((NOW + timedelta(hours=1)).timestamp())
    held = ok(send(tenant, "PUT", f"/campaign/1?state=SCHEDULED&when={when}", {}, as_form))
    assert (held["state"], held["when"]) == ("SCHEDULED", when)
    both = ok(send(tenant, "PUT", "/campaign/1?name=FromQuery", {"name": "FromBody"}, as_form))
    assert both["name"] == "FromBody"


@pytest.mark.parametrize("as_form", [True, False])
def test_no_list_and_no_segments_sends_to_all_contacts(
    tenant: Tenant, shop: Shop, audience, as_form: bool
):
    body = {"name": "All", "domain": 1, "templates": [shop.email_template], "state": "READY"}
    created = ok(send(tenant, "POST", "/campaign", body, as_form))
    assert (created["list"], created["segments"]) == (None, [])
    drain()
    assert ok(tenant.call("GET", "/campaign/1"))["state"] == "DONE"
    assert recipients() == ["ann@example.com", "bob@example.com", "dan@example.com"]


@pytest.mark.parametrize("as_form", [True, False])
def test_without_domain_the_default_sender_of_the_channel_sends(
    tenant: Tenant, shop: Shop, audience, as_form: bool
):
    body = {"name": "Default", "list": 1, "templates": [shop.email_template], "state": "READY"}
    created = ok(send(tenant, "POST", "/campaign", body, as_form))
    assert (created["state"], created["domain"]) == ("READY", 1)  # the email sender
    drain()
    assert ok(tenant.call("GET", "/campaign/1"))["state"] == "DONE"
