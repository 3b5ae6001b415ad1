"""Seed 002's `/campaigns/` API through HTTP against moto, with the seed's own field names:
a whole campaign life (create, schedule, send now, stats), the list's filters, orderings
and page links, DRF's envelopes, and every refused action and bad parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from chalicelib.api.openapi import openapi_document
from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as store
from tests.conftest import Tenant, body_of
from tests.feedback_kit import Shop

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SIM = "simulator.amazonses.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HOST = {"Host": "api.example.com"}
FIELDS = {
    "id",
    "name",
    "organization_id",
    "edition_id",
    "channel",
    "created",
    "modified",
    "email_message_id",
    "sms_body",
    "status",
    "scheduled_at",
    "total_recipients",
    "sent_count",
    "failed_count",
    "user_count",
    "error_message",
    "started_at",
    "completed_at",
}


@pytest.fixture(autouse=True)
def fast_sends(herald_env: Callable[..., None]) -> None:
    herald_env(
        ses_max_send_rate="1000000",
        simulator_delay_seconds="0",
        simulator_open_rate="1",
        simulator_click_rate="1",
    )


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def segment(tenant: Tenant, name: str = "Everyone with an email") -> str:
    rules = [{"field": "email", "operator": "exists"}]
    created = tenant.call(
        "POST", "/v1/segments", {"name": name, "condition": "AND", "rules": rules}
    )
    assert created.status_code == 201, created.body
    return str(body_of(created)["id"])


def create(tenant: Tenant, **fields) -> dict:
    response = tenant.call("POST", "/campaigns/", {"name": "Launch", "channel": "email", **fields})
    assert response.status_code == 201, response.body
    return body_of(response)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.body
    return body_of(response)


# -- a whole life ------------------------------------------------------------------------
def test_a_campaign_lives_through_the_seed_fields_from_create_to_stats(
    tenant: Tenant, shop: Shop, simulator: FeedbackSimulator, frozen: clock.FrozenClock
):
    shop.contacts(["ann@example.com", "bob@example.com", f"bounce@{SIM}"])
    everyone = segment(tenant)

    created = create(
        tenant,
        organization_id=tenant.id,
        edition_id="ed-7",
        segment_id=everyone,
        email_message_id=shop.email_template,
    )
    assert set(created) == FIELDS
    assert created["organization_id"] == tenant.id and created["edition_id"] == "ed-7"
    assert created["status"] == "draft" and created["email_message_id"] == shop.email_template
    assert created["sms_body"] is None and created["user_count"] is None
    assert ok(tenant.call("GET", f"/campaigns/{created['id']}/")) == created

    later = NOW + timedelta(hours=2)
    scheduled = ok(
        tenant.call(
            "POST", f"/campaigns/{created['id']}/schedule/", {"scheduled_at": later.isoformat()}
        )
    )
    assert scheduled["status"] == "scheduled"
    assert scheduled["scheduled_at"] == "2026-11-22T14:00:00Z"
    native = store.get_campaign(tenant.id, created["id"])
    assert native.sender_ids == [shop.email_sender]  # the seed has no senders: the default

    sending = ok(tenant.call("POST", f"/campaigns/{created['id']}/send_now/"))
    assert sending["status"] == "scheduled"  # due now: the planner takes it from here
    drain()
    simulator.flush()  # SES's events for what was sent: delivered, opened, clicked, bounced
    drain()

    done = ok(tenant.call("GET", f"/campaigns/{created['id']}/"))
    assert done["status"] == "sent"
    assert (done["total_recipients"], done["user_count"]) == (3, 3)
    assert (done["sent_count"], done["failed_count"]) == (3, 0)
    assert done["started_at"] and done["completed_at"] and done["error_message"] is None
    stats = ok(tenant.call("GET", f"/campaigns/{created['id']}/stats/"))
    assert stats == {
        "total_recipients": 3,
        "sent": 3,
        "failed": 0,
        "delivered": 2,
        "opened": 2,
        "clicked": 2,
        "bounced": 1,
        "unsubscribed": 0,
        "delivery_rate": 0.6667,
        "open_rate": 1.0,
        "click_rate": 1.0,
        "unsubscribe_rate": 0.0,
    }


def test_an_sms_campaign_keeps_its_sms_body_as_a_template_and_sends_it(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock
):
    shop.contacts(["+12065550123"])
    created = create(tenant, channel="sms", sms_body="Sale today!", segment_id=segment_all(tenant))
    assert created["sms_body"] == "Sale today!" and created["email_message_id"] is None

    patched = ok(
        tenant.call("PATCH", f"/campaigns/{created['id']}", {"sms_body": "Sale ends at noon"})
    )
    assert patched["sms_body"] == "Sale ends at noon"
    ok(tenant.call("POST", f"/campaigns/{created['id']}/send_now"))
    drain()

    sent = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages
    assert list(sent.values()) == [("+12065550123", "Sale ends at noon")]
    assert ok(tenant.call("GET", f"/campaigns/{created['id']}"))["status"] == "sent"


def segment_all(tenant: Tenant) -> str:
    rules = [{"field": "phone", "operator": "exists"}]
    body = {"name": "Phones", "condition": "AND", "rules": rules}
    return str(ok(tenant.call("POST", "/v1/segments", body), 201)["id"])


def test_cancel_stops_a_scheduled_campaign_and_put_round_trips_the_representation(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock
):
    created = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    ok(
        tenant.call(
            "POST",
            f"/campaigns/{created['id']}/schedule",
            {"scheduled_at": int((NOW + timedelta(days=1)).timestamp())},
        )
    )

    read = ok(tenant.call("GET", f"/campaigns/{created['id']}"))
    replaced = ok(tenant.call("PUT", f"/campaigns/{created['id']}/", {**read, "name": "Renamed"}))
    assert replaced["name"] == "Renamed" and replaced["status"] == "scheduled"

    cancelled = ok(tenant.call("POST", f"/campaigns/{created['id']}/cancel/"))
    assert cancelled["status"] == "cancelled"
    assert store.get_campaign(tenant.id, created["id"]).status == "cancelled"


def test_a_form_encoded_create_works_as_drf_parses_forms(tenant: Tenant, shop: Shop):
    body = urlencode({"name": "Form", "channel": "email", "email_message_id": shop.email_template})
    created = ok(tenant.call("POST", "/campaigns", body, headers=FORM), 201)
    assert (created["name"], created["email_message_id"]) == ("Form", shop.email_template)


def test_a_paused_campaign_shows_as_sending(tenant: Tenant, shop: Shop, frozen: clock.FrozenClock):
    shop.contacts(["ann@example.com"])
    created = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    ok(tenant.call("POST", f"/campaigns/{created['id']}/send_now/"))
    drain(["control"])  # planned: its batch waits on the send queue
    ok(tenant.call("POST", f"/v1/campaigns/{created['id']}/pause"))  # the native API pauses

    assert ok(tenant.call("GET", f"/campaigns/{created['id']}"))["status"] == "sending"
    listed = ok(tenant.call("GET", "/campaigns/?status=sending"))
    assert [c["id"] for c in listed["results"]] == [created["id"]]


# -- the list ----------------------------------------------------------------------------
@pytest.fixture
def catalogue(tenant: Tenant, shop: Shop, frozen: clock.FrozenClock) -> dict[str, str]:
    """Five campaigns a second apart (name → id): two scheduled, two sent, one draft."""
    shop.contacts(["ann@example.com", "bob@example.com"])
    both = segment(tenant)
    one = segment_of(tenant, "ann@example.com")
    email = {"email_message_id": shop.email_template}
    ids = {}
    for name, fields in [
        ("Beta", {"edition_id": "ed-1", "segment_id": both, **email}),
        ("alpha", {"edition_id": "ed-1", "channel": "sms", "sms_body": "Hi", "segment_id": both}),
        ("Delta", {"edition_id": "ed-2", "segment_id": both, **email}),
        ("gamma", {"edition_id": "ed-1", "segment_id": one, **email}),
        ("Epsilon sale", {"edition_id": "ed-2", "channel": "sms"}),
    ]:
        ids[name] = create(tenant, name=name, **fields)["id"]
        frozen.advance(timedelta(seconds=1))
    for name, delay in (("Beta", timedelta(days=1)), ("alpha", timedelta(hours=1))):
        when = (clock.now() + delay).isoformat()
        ok(tenant.call("POST", f"/campaigns/{ids[name]}/schedule/", {"scheduled_at": when}))
        frozen.advance(timedelta(seconds=1))
    for name in ("Delta", "gamma"):
        ok(tenant.call("POST", f"/campaigns/{ids[name]}/send_now/"))
        drain()
        frozen.advance(timedelta(seconds=1))
    return ids


def segment_of(tenant: Tenant, address: str) -> str:
    rules = [{"field": "email", "operator": "eq", "value": address}]
    body = {"name": address, "condition": "AND", "rules": rules}
    return str(ok(tenant.call("POST", "/v1/segments", body), 201)["id"])


def names(response) -> list[str]:
    return [c["name"] for c in ok(response)["results"]]


def test_the_list_orders_filters_and_links_its_pages(tenant: Tenant, catalogue: dict[str, str]):
    def listed(query: str) -> list[str]:
        return names(tenant.call("GET", f"/campaigns/?{query}"))

    # Every ordering the seed lists, both ways (not scheduled / not started: at the end).
    by_creation = ["Beta", "alpha", "Delta", "gamma", "Epsilon sale"]
    expected = {
        "created": by_creation,
        "modified": ["Epsilon sale", "Beta", "alpha", "Delta", "gamma"],
        "name": ["alpha", "Beta", "Delta", "Epsilon sale", "gamma"],
        "scheduled_at": ["Delta", "gamma", "alpha", "Beta", "Epsilon sale"],
    }
    for field, ascending in expected.items():
        assert listed(f"ordering={field}") == ascending, field
        assert listed(f"ordering=-{field}") == ascending[::-1], field
    # As shown: not started is 0, not last; ties keep the default order (newest first).
    by_size = ["Epsilon sale", "alpha", "Beta", "gamma", "Delta"]
    assert listed("ordering=total_recipients") == by_size
    assert listed("ordering=-total_recipients") == [
        "Delta",
        "gamma",
        "Epsilon sale",
        "alpha",
        "Beta",
    ]
    assert listed("") == by_creation[::-1]  # the default: newest first
    everything = ok(tenant.call("GET", "/campaigns/"))
    assert everything["count"] == 5 and everything["next"] is everything["previous"] is None
    sizes = {c["name"]: c["total_recipients"] for c in everything["results"]}
    assert (sizes["gamma"], sizes["Delta"], sizes["Beta"]) == (1, 2, 0)

    # Filters, alone and together.
    assert listed("ordering=name&channel=sms") == ["alpha", "Epsilon sale"]
    assert listed("ordering=name&edition_id=ed-2") == ["Delta", "Epsilon sale"]
    assert listed("search=SALE") == ["Epsilon sale"]
    assert listed("ordering=name&status=scheduled") == ["alpha", "Beta"]
    assert listed("status=sent&edition_id=ed-1") == ["gamma"]
    assert listed("status=failed") == []
    assert len(listed(f"organization_id={tenant.id}")) == 5

    # Pages: absolute links that keep the query (DRF drops page=1, sorts the parameters),
    # under the configured public base URL (whatever Host the client sent).
    base = get_settings().public_base_url
    first = ok(tenant.call("GET", "/campaigns/?page_size=2&ordering=name", headers=HOST))
    assert first["count"] == 5 and first["previous"] is None
    assert [c["name"] for c in first["results"]] == ["alpha", "Beta"]
    assert first["next"] == f"{base}/campaigns/?ordering=name&page=2&page_size=2"
    second = ok(tenant.call("GET", "/campaigns/?ordering=name&page=2&page_size=2", headers=HOST))
    assert [c["name"] for c in second["results"]] == ["Delta", "Epsilon sale"]
    assert second["previous"] == f"{base}/campaigns/?ordering=name&page_size=2"
    assert second["next"] == f"{base}/campaigns/?ordering=name&page=3&page_size=2"
    last = ok(tenant.call("GET", "/campaigns?page=last&page_size=2&ordering=name", headers=HOST))
    assert [c["name"] for c in last["results"]] == ["gamma"] and last["next"] is None
    assert last["previous"] == f"{base}/campaigns?ordering=name&page=2&page_size=2"


def test_the_default_page_size_is_a_hundred():
    parameters = openapi_document()["paths"]["/campaigns"]["get"]["parameters"]
    page_size = next(p for p in parameters if p["name"] == "page_size")
    assert page_size["schema"]["default"] == 100


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("page=0", 404, {"detail": "Invalid page."}),
        ("page=9", 404, {"detail": "Invalid page."}),
        ("page=first", 404, {"detail": "Invalid page."}),
        ("status=paused", 400, "status"),
        ("channel=fax", 400, "channel"),
    ],
)
def test_bad_list_parameters_are_refused_as_drf_would(tenant: Tenant, query, status, body):
    create(tenant)
    response = tenant.call("GET", f"/campaigns/?{query}")
    assert response.status_code == status, response.body
    answer = body_of(response)
    if isinstance(body, dict):
        assert answer == body  # DRF's shape only
    else:
        assert set(answer) == {body} and isinstance(answer[body], list)


@pytest.mark.parametrize(
    ("fields", "status", "key"),
    [
        ({"name": None}, 400, "name"),
        ({"name": ""}, 400, "name"),
        ({"channel": "fax"}, 400, "channel"),
        ({"segment_id": "s_missing"}, 400, "segment_id"),
        ({"email_message_id": "tpl_missing"}, 400, "email_message_id"),
        ({"sms_body": "Hi"}, 400, "sms_body"),
        ({"channel": "sms", "email_message_id": "tpl_x"}, 400, "email_message_id"),
        ({"sender_id": "snd_missing"}, 400, "sender_id"),
        ({"channel": "sms", "sms_body": "Hi {{ contact.name"}, 400, "sms_body"),
        ({"edition_id": "a\nb"}, 400, "edition_id"),
        ({"colour": "red"}, 400, "colour"),
        ({"organization_id": "someone-else"}, 400, "organization_id"),
    ],
)
def test_bad_creates_are_refused_naming_the_seed_field_and_write_nothing(
    tenant: Tenant, fields, status, key
):
    body = {"name": "Launch", "channel": "email", **fields}
    response = tenant.call("POST", "/campaigns/", body)
    assert response.status_code == status, response.body
    assert key in body_of(response)
    assert ok(tenant.call("GET", "/campaigns/"))["count"] == 0


def test_an_sms_template_is_not_an_email_message(tenant: Tenant, shop: Shop):
    response = tenant.call(
        "POST",
        "/campaigns/",
        {"name": "X", "channel": "email", "email_message_id": shop.sms_template},
    )
    assert response.status_code == 400
    assert body_of(response)["email_message_id"] == [
        f"template '{shop.sms_template}' is an SMS template"
    ]


def test_put_needs_a_name_patch_does_not(tenant: Tenant):
    created = create(tenant)
    response = tenant.call("PUT", f"/campaigns/{created['id']}/", {"channel": "email"})
    assert response.status_code == 400 and body_of(response)["name"] == ["Field required"]
    patched = ok(tenant.call("PATCH", f"/campaigns/{created['id']}/", {"name": "Only a name"}))
    assert patched["name"] == "Only a name" and patched["channel"] == "email"


def test_another_tenants_campaign_is_not_found(tenant: Tenant, other_tenant: Tenant):
    created = create(tenant)
    for method, path in [
        ("GET", f"/campaigns/{created['id']}/"),
        ("PATCH", f"/campaigns/{created['id']}/"),
        ("POST", f"/campaigns/{created['id']}/cancel/"),
        ("POST", f"/campaigns/{created['id']}/send_now/"),
        ("GET", f"/campaigns/{created['id']}/stats/"),
    ]:
        response = other_tenant.call(method, path, {})
        assert response.status_code == 404, (method, path, response.body)
        assert body_of(response)["detail"] == f"campaign '{created['id']}' not found"
    assert ok(other_tenant.call("GET", "/campaigns/"))["count"] == 0
    assert store.get_campaign(tenant.id, created["id"]).status == "draft"


def test_a_missing_key_is_401_with_drf_detail(client):
    response = client.http.request("GET", "/campaigns/", headers={})
    assert response.status_code == 401
    assert body_of(response)["detail"] == "missing bearer API key"


def test_refused_actions_name_the_current_status(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock
):
    bare = create(tenant)
    response = tenant.call("POST", f"/campaigns/{bare['id']}/send_now/")
    assert response.status_code == 400
    assert set(body_of(response)) == {"segment_id"}  # no audience yet

    ready = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    past = tenant.call(
        "POST", f"/campaigns/{ready['id']}/schedule/", {"scheduled_at": "2026-11-22T11:00:00Z"}
    )
    assert past.status_code == 400 and "scheduled_at" in body_of(past)
    missing = tenant.call("POST", f"/campaigns/{ready['id']}/schedule/", {})
    assert missing.status_code == 400 and list(body_of(missing)) == ["scheduled_at"]  # none stored

    ok(tenant.call("POST", f"/campaigns/{ready['id']}/cancel/"))
    for action in ("cancel", "send_now"):
        response = tenant.call("POST", f"/campaigns/{ready['id']}/{action}/")
        assert response.status_code == 409, response.body
        assert "'cancelled'" in body_of(response)["detail"]
    locked = tenant.call("PATCH", f"/campaigns/{ready['id']}/", {"name": "Too late"})
    assert locked.status_code == 409 and "'cancelled'" in body_of(locked)["detail"]
    templates_before = ok(tenant.call("GET", "/v1/templates"))["items"]
    as_sms = {"channel": "sms", "sms_body": "Too late"}
    assert tenant.call("PATCH", f"/campaigns/{ready['id']}/", as_sms).status_code == 409
    assert ok(tenant.call("GET", "/v1/templates"))["items"] == templates_before
    assert ok(tenant.call("GET", f"/campaigns/{ready['id']}/"))["name"] == "Launch"


def test_unknown_campaign_ids_are_404(tenant: Tenant):
    for path in ("/campaigns/cmp_nope/", "/campaigns/42/stats/"):
        response = tenant.call("GET", path)
        assert response.status_code == 404 and "detail" in body_of(response)


# -- what a client written against the seed sends (issue 14) ------------------------------
def send(tenant: Tenant, path: str, fields: dict, form: bool, method: str = "POST"):
    """``fields`` as the seed client sends them: a form or a JSON body."""
    if form:
        return tenant.call(method, path, urlencode(fields), headers=FORM)
    return tenant.call(method, path, fields)


@pytest.mark.parametrize("slash", ["/", ""])
@pytest.mark.parametrize(
    "extra", ["format=json", "_=1732276800000", "limit=10&offset=20", "ordering=colour"]
)
def test_unknown_list_parameters_are_ignored(tenant: Tenant, slash: str, extra: str):
    create(tenant, name="A")
    answer = ok(tenant.call("GET", f"/campaigns{slash}?{extra}"))
    assert answer["count"] == 1 and answer["results"][0]["name"] == "A"


@pytest.mark.parametrize(
    ("page_size", "shown"), [("2000", 3), ("0", 3), ("-1", 3), ("many", 3), ("2", 2)]
)
def test_page_size_is_clamped_or_falls_back_to_the_default(
    tenant: Tenant, frozen: clock.FrozenClock, page_size: str, shown: int
):
    for name in ("A", "B", "C"):
        create(tenant, name=name)
        frozen.advance(timedelta(seconds=1))
    answer = ok(tenant.call("GET", f"/campaigns/?page_size={page_size}"))
    assert answer["count"] == 3 and len(answer["results"]) == shown


@pytest.mark.parametrize("form", [True, False])
@pytest.mark.parametrize("slash", ["/", ""])
def test_channel_defaults_to_email(tenant: Tenant, form: bool, slash: str):
    created = ok(send(tenant, f"/campaigns{slash}", {"name": "No channel"}, form), 201)
    assert created["channel"] == "email"
    replaced = ok(send(tenant, f"/campaigns/{created['id']}{slash}", {"name": "B"}, form, "PUT"))
    assert (replaced["name"], replaced["channel"]) == ("B", "email")


@pytest.mark.parametrize("form", [True, False])
def test_errors_are_pure_drf_shapes(tenant: Tenant, form: bool):
    refused = send(tenant, "/campaigns/", {"name": "A", "channel": "fax"}, form)
    assert refused.status_code == 400 and list(body_of(refused)) == ["channel"]
    assert isinstance(body_of(refused)["channel"], list)
    missing = tenant.call("GET", "/campaigns/cmp_00000000000000000000000000000000/")
    assert missing.status_code == 404 and list(body_of(missing)) == ["detail"]


@pytest.mark.parametrize("action", ["send_now", "send", "send-now"])
@pytest.mark.parametrize("slash", ["/", ""])
def test_send_now_answers_under_every_router_name(
    tenant: Tenant, shop: Shop, action: str, slash: str
):
    ready = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    sent = ok(tenant.call("POST", f"/campaigns/{ready['id']}/{action}{slash}"))
    assert sent["status"] in ("scheduled", "calculating", "sending")
    assert store.get_campaign(tenant.id, ready["id"]).status != "draft"


@pytest.mark.parametrize("form", [True, False])
@pytest.mark.parametrize("slash", ["/", ""])
def test_scheduled_at_set_by_patch_is_what_schedule_without_a_body_uses(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock, form: bool, slash: str
):
    ready = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    item = f"/campaigns/{ready['id']}{slash}"
    later = NOW + timedelta(hours=2)
    held = ok(send(tenant, item, {"scheduled_at": later.isoformat()}, form, "PATCH"))
    assert (held["status"], held["scheduled_at"]) == ("draft", "2026-11-22T14:00:00Z")

    scheduled = ok(send(tenant, f"/campaigns/{ready['id']}/schedule{slash}", {}, form))
    assert (scheduled["status"], scheduled["scheduled_at"]) == ("scheduled", "2026-11-22T14:00:00Z")

    moved = dict(scheduled, scheduled_at=str(int((later + timedelta(hours=1)).timestamp())))
    put_back = {k: v for k, v in moved.items() if v is not None}
    rescheduled = ok(send(tenant, item, put_back, form, "PUT"))
    assert (rescheduled["status"], rescheduled["scheduled_at"]) == (
        "scheduled",
        "2026-11-22T15:00:00Z",
    )
    assert store.get_campaign(tenant.id, ready["id"]).scheduled_at == later + timedelta(hours=1)


@pytest.mark.parametrize("form", [True, False])
def test_another_organization_is_an_invalid_pk_in_a_body_and_an_empty_filter(
    tenant: Tenant, form: bool
):
    create(tenant)
    refused = send(tenant, "/campaigns/", {"name": "X", "organization_id": "org-9"}, form)
    assert refused.status_code == 400
    assert body_of(refused) == {"organization_id": ['Invalid pk "org-9" - object does not exist.']}
    page = ok(tenant.call("GET", "/campaigns/?organization_id=org-9"))
    assert (page["count"], page["results"]) == (0, [])


def test_ordering_takes_several_fields_and_search_ands_its_words(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock
):
    everyone = segment(tenant)
    for name, hours in (("Spring sale", 3), ("Sale of spring", 1), ("Spring", None), ("B", 1)):
        made = create(tenant, name=name, segment_id=everyone, email_message_id=shop.email_template)
        if hours is not None:
            at = (NOW + timedelta(hours=hours)).isoformat()
            ok(tenant.call("POST", f"/campaigns/{made['id']}/schedule/", {"scheduled_at": at}))
        frozen.advance(timedelta(seconds=1))
    assert names(tenant.call("GET", "/campaigns/?ordering=-scheduled_at,name")) == [
        "Spring",  # no time: last ascending, so first descending
        "Spring sale",
        "B",
        "Sale of spring",
    ]
    assert names(tenant.call("GET", "/campaigns/?ordering=scheduled_at,-name")) == [
        "Sale of spring",
        "B",
        "Spring sale",
        "Spring",
    ]
    found = names(tenant.call("GET", "/campaigns/?search=spring+SALE&ordering=name"))
    assert found == ["Sale of spring", "Spring sale"]
    assert names(tenant.call("GET", "/campaigns/?search=spring,sale,of")) == ["Sale of spring"]


def test_user_count_is_the_audience_and_total_recipients_those_sent_to(
    tenant: Tenant, shop: Shop, frozen: clock.FrozenClock
):
    shop.contacts(["ann@example.com", "bob@example.com", "cy@example.com"])
    ok(tenant.call("POST", "/v1/suppressions", {"address": "bob@example.com"}), 201)
    made = create(tenant, segment_id=segment(tenant), email_message_id=shop.email_template)
    ok(tenant.call("POST", f"/campaigns/{made['id']}/send_now/"))
    drain()
    done = ok(tenant.call("GET", f"/campaigns/{made['id']}/"))
    assert done["status"] == "sent"
    assert (done["user_count"], done["total_recipients"], done["sent_count"]) == (3, 2, 2)
    assert ok(tenant.call("GET", f"/campaigns/{made['id']}/stats/"))["total_recipients"] == 2
