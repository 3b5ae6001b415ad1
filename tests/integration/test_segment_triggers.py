"""Segment entry and exit as events: contact changes → triggers queue → watched segments
→ stored membership → the flows whose segment triggers fire (docs/flows.md).

Everything runs through Herald's real handlers against moto: the API writes, the bus
delivers ``contact.saved`` to the triggers queue, the local poller feeds the trigger and
control workers. ``fired`` records what ``services.segment_triggers.enrol`` was asked to
do (the seam to flow-entry's ``enrol_contacts``) and calls the real function through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields
from chalicelib.local.poller import drain
from chalicelib.pipeline import segment_triggers as segment_pipeline
from chalicelib.pipeline.tick import run_tick
from chalicelib.services import segment_triggers
from chalicelib.services.segment_triggers import Transition
from chalicelib.store import campaigns, enrolments, flow_triggers
from chalicelib.store import contacts as contact_store
from chalicelib.store.counters import read_counts
from chalicelib.store.events_out import BusEvent, publish_events
from tests.conftest import Tenant, body_of
from tests.flow_kit import put_flow
from tests.integration.test_flow_api import act, create_flow, email_content, graph
from tests.send_kit import drain_delivering_twice

GOLD = [{"field": "attributes.plan", "operator": "eq", "value": "gold"}]
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Fired(list[tuple[str, str, str, str]]):
    """(campaign id, node id, contact id, change) of each enrolment asked for, in order;
    ``events`` the id of the event each one carried."""

    events: list[str]


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> Fired:
    """Every enrolment the segment triggers asked for, in order."""
    calls = Fired()
    calls.events = []
    real = segment_triggers.enrol

    def spy(tenant_id: str, transition: Transition, now: datetime) -> None:
        for trigger in transition.triggers:
            calls.append(
                (trigger.campaign_id, trigger.node_id, transition.contact_id, transition.change)
            )
            calls.events.append(transition.event.id)
        real(tenant_id, transition, now)

    monkeypatch.setattr(segment_triggers, "enrol", spy)
    return calls


@pytest.fixture
def frozen() -> Iterator[Any]:
    with clock.frozen(START) as moment:
        yield moment


def segment(tenant: Tenant, rules: list[dict[str, Any]], name: str = "Gold") -> str:
    response = tenant.call("POST", "/v1/segments", {"name": name, "rules": rules})
    assert response.status_code == 201, response.body
    return str(body_of(response)["id"])


def flow(tenant: Tenant, segment_id: str, *, exit_too: bool = False) -> str:
    """A live flow entered by ``segment_id`` (and, with exit_too, left by it)."""
    nodes = [
        {"id": "in", "kind": "trigger.segment_entry", "config": {"segment_id": segment_id}},
        {"id": "hi", "kind": "send", "config": {"channel": "email", "template_ids": ["t_1"]}},
    ]
    edges = [{"source": "in", "target": "hi"}]
    if exit_too:
        nodes.append(
            {"id": "out", "kind": "trigger.segment_exit", "config": {"segment_id": segment_id}}
        )
        edges.append({"source": "out", "target": "hi"})
    campaign = put_flow(tenant.id, {"nodes": nodes, "edges": edges})
    # What flow-api does after every publish: the revision begins with the flow.
    segment_triggers.on_watch_changed(tenant.id, clock.now())
    drain()  # the baseline walk
    return campaign.id


def contact(tenant: Tenant, email: str, **fields: Any) -> str:
    response = tenant.call("POST", "/v1/contacts", {"email": email, **fields})
    assert response.status_code == 201, response.body
    return str(body_of(response)["id"])


def patch(tenant: Tenant, contact_id: str, fields: dict[str, Any]) -> None:
    response = tenant.call("PATCH", f"/v1/contacts/{contact_id}", fields)
    assert response.status_code == 200, response.body


def state(tenant: Tenant, contact_id: str, segment_id: str) -> str | None:
    [(_, states)] = contact_store.get_with_segment_states(tenant.id, [contact_id]).values()
    found = states.get(segment_id)
    return found.split(":")[1] if found else None


def enrolments_of(tenant: Tenant, campaign_id: str) -> int:
    return read_counts(tenant.id, campaign_id).get("enrollments", 0)


def test_attribute_change_enters_once_even_when_redelivered(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    ann = contact(tenant, "ann@x.com", attributes={"plan": "silver"})
    drain()
    campaign = flow(tenant, gold)
    assert fired == [] and state(tenant, ann, gold) == "out"

    patch(tenant, ann, {"attributes": {"plan": "gold"}})
    drain_delivering_twice()  # every message handled twice, as SQS may
    assert fired == [(campaign, "in", ann, "entered")]
    assert state(tenant, ann, gold) == "in"
    enrolment = enrolments.read(tenant.id, campaign, ann)
    assert enrolment is not None and enrolments_of(tenant, campaign) == 1
    assert enrolment.trigger_event is not None
    assert enrolment.trigger_event.name == "segment.entered"
    assert enrolment.trigger_event.properties == {"segment_id": gold}

    patch(tenant, ann, {"first_name": "Ann"})  # still gold: no second entry
    drain()
    assert fired == [(campaign, "in", ann, "entered")]


def test_already_in_when_the_flow_goes_live_is_not_an_entry(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    bob = contact(tenant, "bob@x.com", attributes={"plan": "gold"})
    drain()
    flow(tenant, gold)
    patch(tenant, bob, {"first_name": "Bob"})
    drain()
    assert fired == [] and state(tenant, bob, gold) == "in"


def test_a_new_contact_in_the_segment_enters(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    campaign = flow(tenant, gold)
    cat = contact(tenant, "cat@x.com", attributes={"plan": "gold"})
    drain()
    assert fired == [(campaign, "in", cat, "entered")]


def test_exit_trigger_fires_on_leaving(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    dan = contact(tenant, "dan@x.com", attributes={"plan": "gold"})
    drain()
    campaign = flow(tenant, gold, exit_too=True)
    patch(tenant, dan, {"attributes": {"plan": "free"}})
    drain()
    assert fired == [(campaign, "out", dan, "exited")]
    patch(tenant, dan, {"attributes": {"plan": "gold"}})
    drain()
    assert fired[1:] == [(campaign, "in", dan, "entered")]
    patch(tenant, dan, {"attributes": {"plan": "free"}})
    drain()
    assert fired[2:] == [(campaign, "out", dan, "exited")]
    assert len(set(fired.events)) == 3  # each move its own event: a re-entry is not a repeat


def test_unwatched_segments_are_never_read(tenant: Tenant, fired: Fired):
    watched, unwatched = segment(tenant, GOLD), segment(tenant, GOLD, name="Also gold")
    flow(tenant, watched)
    read: list[str] = []

    def note_keys(params: dict[str, Any], **_: Any) -> None:
        for request in params["RequestItems"].values():
            read.extend(key["sk"]["S"] for key in request["Keys"])

    dynamodb = client("dynamodb")
    dynamodb.meta.events.register("provide-client-params.dynamodb.BatchGetItem", note_keys)
    try:
        eve = contact(tenant, "eve@x.com", attributes={"plan": "gold"})
        drain()
    finally:
        dynamodb.meta.events.unregister("provide-client-params.dynamodb.BatchGetItem", note_keys)
    assert watched in read and unwatched not in read
    assert state(tenant, eve, watched) == "in" and state(tenant, eve, unwatched) is None
    assert [f[2] for f in fired] == [eve]


def test_list_membership_and_tags_move_contacts(tenant: Tenant, fired: Fired):
    listed = body_of(tenant.call("POST", "/v1/lists", {"name": "Beta"}))["id"]
    beta = segment(tenant, [{"field": "lists", "operator": "contains", "value": listed}])
    vip = segment(tenant, [{"field": "tags", "operator": "contains", "value": "vip"}], "VIP")
    fay = contact(tenant, "fay@x.com")
    drain()
    in_beta, in_vip = flow(tenant, beta, exit_too=True), flow(tenant, vip)

    added = tenant.call("POST", f"/v1/lists/{listed}/members", {"contact_ids": [fay]})
    assert added.status_code == 200, added.body
    patch(tenant, fay, {"tags": ["vip"]})
    drain()
    assert sorted(fired) == sorted(
        [(in_beta, "in", fay, "entered"), (in_vip, "in", fay, "entered")]
    )
    tenant.call("POST", f"/v1/lists/{listed}/members:remove", {"contact_ids": [fay]})
    drain()
    assert fired[-1] == (in_beta, "out", fay, "exited")
    tenant.call("POST", f"/v1/lists/{listed}/members", {"contact_ids": [fay]})
    drain()
    assert fired[-1] == (in_beta, "in", fay, "entered")
    assert tenant.call("DELETE", f"/v1/lists/{listed}").status_code == 204
    drain()  # the purge takes the list from its members: Fay leaves the segment
    assert fired[-1] == (in_beta, "out", fay, "exited") and len(fired) == 5


@pytest.mark.parametrize("emit_events", [False, True], ids=["silent", "publishing"])
def test_imported_contacts_enter(tenant: Tenant, fired: Fired, emit_events: bool):
    gold = segment(tenant, GOLD)
    old = contact(tenant, "old@x.com", attributes={"plan": "free"})
    drain()
    campaign = flow(tenant, gold)
    rows = [
        {"email": "old@x.com", "attributes": {"plan": "gold"}},
        {"email": "new@x.com", "attributes": {"plan": "gold"}},
        {"email": "nope@x.com", "attributes": {"plan": "free"}},
    ]
    data = "\n".join(json.dumps(row) for row in rows)
    response = tenant.call(
        "POST",
        "/v1/imports",
        {"format": "jsonl", "data": data, "options": {"emit_events": emit_events}},
    )
    assert response.status_code == 202, response.body
    drain()
    new = contact_store.find_by_email(tenant.id, "new@x.com")
    assert new is not None
    assert sorted(fired) == sorted(
        [(campaign, "in", old, "entered"), (campaign, "in", new.id, "entered")]
    )


def test_hourly_sweep_enters_when_a_time_relative_rule_starts_matching(
    tenant: Tenant, fired: Fired, frozen: Any
):
    # "No purchase in the last 7 days": a buyer of today drifts into it a week later.
    lapsed = segment(
        tenant,
        [
            {"field": "events.purchase", "operator": "exists"},
            {"field": "events.purchase.last_at", "operator": "before", "value": "-7d"},
        ],
        "Lapsed",
    )
    gus = contact(tenant, "gus@x.com")
    posted = tenant.call(
        "POST",
        "/v1/events",
        {
            "events": [
                {"name": "purchase", "contact": {"id": gus}, "occurred_at": START.isoformat()}
            ]
        },
    )
    assert posted.status_code == 202, posted.body
    campaign = flow(tenant, lapsed)
    assert state(tenant, gus, lapsed) == "out"

    frozen.advance(timedelta(days=7, minutes=1))
    hourly = {"segments.hourly": herald.TICK_JOBS["segments.hourly"]}
    run_tick(hourly, clock.now())
    drain()
    assert fired == [(campaign, "in", gus, "entered")]
    run_tick(hourly, clock.now() + timedelta(minutes=58))  # the same hour: gated
    assert drain() == 0


def test_tenants_never_see_each_others_segments(tenant: Tenant, other_tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    campaign = flow(tenant, gold)
    theirs = contact(other_tenant, "hal@x.com", attributes={"plan": "gold"})
    mine = contact(tenant, "hal@x.com", attributes={"plan": "gold"})
    drain()
    assert fired == [(campaign, "in", mine, "entered")]
    assert flow_triggers.watched_segments(other_tenant.id) == set()
    assert contact_store.get_with_segment_states(tenant.id, [theirs]) == {}
    [(_, states)] = contact_store.get_with_segment_states(other_tenant.id, [theirs]).values()
    assert states == {}


def test_of_two_concurrent_deliveries_one_moves_the_state(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    ivy = contact(tenant, "ivy@x.com", attributes={"plan": "free"})
    drain()
    campaign = flow(tenant, gold)
    patch(tenant, ivy, {"attributes": {"plan": "gold"}})
    # Both copies read the contact before either wrote: both decide "entered" and ask for
    # the enrolment (which flow-entry answers already_enrolled the second time) ...
    now = clock.now()
    segments = segment_triggers.watched(tenant.id, now)
    snapshot = list(contact_store.get_with_segment_states(tenant.id, [ivy]).values())
    first = segment_triggers.evaluate(tenant.id, segments, snapshot, now)
    second = segment_triggers.evaluate(tenant.id, segments, snapshot, now)
    # ... but only one moves the state and reports the transition.
    assert [t.change for t in first] == ["entered"] and second == []
    assert len(fired) == 2 and state(tenant, ivy, gold) == "in"
    # Both asked with the same event id: the enrolment service takes the second as a
    # duplicate_event.
    assert fired.events[0] == fired.events[1]
    assert enrolments_of(tenant, campaign) == 1
    drain()  # the bus copy of the change finds the state moved
    assert len(fired) == 2


def test_editing_the_rules_takes_a_new_baseline(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    jo = contact(tenant, "jo@x.com", attributes={"plan": "silver"})
    drain()
    campaign = flow(tenant, gold)
    silver_or_gold = [{"field": "attributes.plan", "operator": "in", "value": ["silver", "gold"]}]
    edited = tenant.call("PATCH", f"/v1/segments/{gold}", {"rules": silver_or_gold})
    assert edited.status_code == 200, edited.body
    drain()  # the new revision's baseline walk: Jo matches now, but did not "enter"
    patch(tenant, jo, {"first_name": "Jo"})
    drain()
    assert fired == [] and state(tenant, jo, gold) == "in"
    patch(tenant, jo, {"attributes": {"plan": "free"}})
    drain()
    patch(tenant, jo, {"attributes": {"plan": "gold"}})
    drain()
    assert fired == [(campaign, "in", jo, "entered")]


def test_a_segment_watched_again_starts_from_a_new_baseline(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    kim = contact(tenant, "kim@x.com", attributes={"plan": "free"})
    drain()
    first = flow(tenant, gold)
    stopped = campaigns.get_campaign(tenant.id, first).model_copy(update={"status": "completed"})
    flow_triggers.publish(tenant.id, stopped)
    patch(tenant, kim, {"attributes": {"plan": "gold"}})  # nobody watches: nothing moves
    drain()
    flow(tenant, gold)  # Kim was in before this flow went live: not an entry
    patch(tenant, kim, {"first_name": "Kim"})
    drain()
    assert fired == [] and state(tenant, kim, gold) == "in"


def test_a_flow_s_own_change_does_not_trigger_that_flow(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    lee = contact(tenant, "lee@x.com", attributes={"plan": "free"})
    drain()
    causing, other = flow(tenant, gold), flow(tenant, gold)
    changed, _ = contact_store.update_contact(
        tenant.id, lee, ContactFields(attributes={"plan": "gold"})
    )
    saved = contact_store.saved_event(changed, created=False, changed=["attributes"])
    # What the flow worker publishes for a set_field of ``causing``.
    properties = {**saved.detail["properties"], "source": "flow", "campaign_id": causing}
    publish_events(tenant.id, [BusEvent(saved.name, {**saved.detail, "properties": properties})])
    drain()
    assert fired == [(other, "in", lee, "entered")] and state(tenant, lee, gold) == "in"


def test_the_hourly_sweep_pages_through_tenants(
    tenant: Tenant,
    other_tenant: Tenant,
    fired: Fired,
    frozen: Any,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(segment_pipeline, "TENANT_PAGE", 1)  # a page per tenant
    lapsed = [{"field": "events.visit.last_at", "operator": "before", "value": "-1d"}]
    flows = {}
    for who in (tenant, other_tenant):
        someone = contact(who, f"old@{who.id}.com")
        visit = {"name": "visit", "contact": {"id": someone}, "occurred_at": START.isoformat()}
        assert who.call("POST", "/v1/events", {"events": [visit]}).status_code == 202
        drain()
        flows[who.id] = flow(who, segment(who, lapsed, "No visit for a day"))
    frozen.advance(timedelta(days=1, hours=1))
    segment_pipeline.start_hourly_sweep(clock.now())
    drain()
    assert sorted(f[0] for f in fired) == sorted(flows.values())


def test_a_flow_activated_through_the_api_takes_its_baseline_at_once(tenant: Tenant, fired: Fired):
    gold = segment(tenant, GOLD)
    already = contact(tenant, "mo@x.com", attributes={"plan": "gold"})
    later = contact(tenant, "ned@x.com", attributes={"plan": "free"})
    drain()
    template_id, sender_id = email_content(tenant)
    trigger = {"kind": "trigger.segment_entry", "config": {"segment_id": gold}}
    created = create_flow(tenant, graph(template_id, sender_id, **trigger))
    assert act(tenant, created["id"], "activate").status_code == 200
    drain()  # the baseline walk the activation began
    patch(tenant, already, {"first_name": "Mo"})
    patch(tenant, later, {"attributes": {"plan": "gold"}})  # the first change after it
    drain()
    assert fired == [(created["id"], "start", later, "entered")]
    assert enrolments.read(tenant.id, created["id"], later) is not None
    assert enrolments.read(tenant.id, created["id"], already) is None
