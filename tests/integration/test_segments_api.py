"""Segments through HTTP: CRUD, validation at save time, and previews over real contacts."""

from __future__ import annotations

from chalicelib.domain.contacts import ContactFields
from chalicelib.store import contacts as contact_store
from tests.conftest import Tenant, body_of

GOLD = {
    "name": "Gold customers",
    "condition": "AND",
    "rules": [
        {"field": "attributes.plan", "operator": "eq", "value": "gold"},
        {
            "condition": "OR",
            "rules": [
                {"field": "lead_score", "operator": "gte", "value": 50},
                {"field": "tags", "operator": "contains", "value": "vip"},
            ],
        },
    ],
}


def add_contact(tenant: Tenant, email: str, **fields) -> str:
    contact = contact_store.create_contact(tenant.id, ContactFields(email=email, **fields))
    return contact.id


def error_of(response) -> dict:
    return body_of(response)["error"]


def test_segment_is_created_read_listed_changed_and_deleted(tenant: Tenant):
    created = tenant.call("POST", "/v1/segments", GOLD)
    assert created.status_code == 201, created.body
    segment = body_of(created)
    assert segment["id"].startswith("s_") and segment["number"] == 1
    assert segment["rules"][1]["rules"][0] == {
        "field": "lead_score",
        "operator": "gte",
        "value": 50,
    }
    assert body_of(tenant.call("GET", f"/v1/segments/{segment['id']}")) == segment
    second = body_of(tenant.call("POST", "/v1/segments", {**GOLD, "name": "Other"}))
    assert second["number"] == 2
    listed = body_of(tenant.call("GET", "/v1/segments"))
    assert {s["id"] for s in listed["items"]} == {segment["id"], second["id"]}

    patched = tenant.call(
        "PATCH",
        f"/v1/segments/{segment['id']}",
        {"name": "Gold or VIP", "condition": "OR"},
    )
    assert patched.status_code == 200, patched.body
    assert body_of(patched)["name"] == "Gold or VIP"
    assert body_of(patched)["condition"] == "OR"
    assert body_of(patched)["rules"] == segment["rules"]

    assert tenant.call("DELETE", f"/v1/segments/{segment['id']}").status_code == 204
    gone = tenant.call("GET", f"/v1/segments/{segment['id']}")
    assert gone.status_code == 404 and error_of(gone)["field"] == "segment_id"
    assert tenant.call("DELETE", f"/v1/segments/{segment['id']}").status_code == 404


def test_bad_rules_are_422_at_their_path_and_nothing_is_saved(tenant: Tenant):
    cases = [
        ({"field": "email", "operator": "resembles", "value": "x"}, "rules.1.operator"),
        ({"field": "shoe_size", "operator": "eq", "value": 42}, "rules.1.field"),
        ({"field": "lead_score", "operator": "gt", "value": "high"}, "rules.1.value"),
        ({"field": "created_at", "operator": "after", "value": "last tuesday"}, "rules.1.value"),
        (
            {"condition": "OR", "rules": [{"field": "tags", "operator": "lt", "value": 1}]},
            "rules.1.rules.0.operator",
        ),
    ]
    for bad_rule, field in cases:
        body = {"name": "Bad", "rules": [{"field": "email", "operator": "exists"}, bad_rule]}
        response = tenant.call("POST", "/v1/segments", body)
        assert response.status_code == 422, response.body
        assert error_of(response)["field"] == field
    assert body_of(tenant.call("GET", "/v1/segments"))["items"] == []


def test_a_patch_that_makes_the_tree_too_big_is_refused_and_changes_nothing(tenant: Tenant):
    segment = body_of(tenant.call("POST", "/v1/segments", GOLD))
    leaf = {"field": "email", "operator": "exists"}
    too_many = {"rules": [{"rules": [leaf] * 60}, {"rules": [leaf] * 41}]}
    response = tenant.call("PATCH", f"/v1/segments/{segment['id']}", too_many)
    assert response.status_code == 422
    assert error_of(response)["field"] == "rules"
    assert body_of(tenant.call("GET", f"/v1/segments/{segment['id']}")) == segment


def test_preview_counts_matches_and_returns_a_sample(tenant: Tenant):
    gold_high = add_contact(tenant, "a@x.com", attributes={"plan": "Gold"}, lead_score=80)
    gold_vip = add_contact(tenant, "b@x.com", attributes={"plan": "gold"}, tags=["vip"])
    add_contact(tenant, "c@x.com", attributes={"plan": "gold"}, lead_score=10)
    add_contact(tenant, "d@x.com", attributes={"plan": "silver"}, lead_score=99)
    add_contact(tenant, "e@x.com")
    segment = body_of(tenant.call("POST", "/v1/segments", GOLD))

    preview = tenant.call("POST", f"/v1/segments/{segment['id']}/preview")
    assert preview.status_code == 200, preview.body
    assert body_of(preview)["count"] == 2
    assert {c["id"] for c in body_of(preview)["sample"]} == {gold_high, gold_vip}

    one = body_of(tenant.call("POST", f"/v1/segments/{segment['id']}/preview", {"sample_size": 1}))
    assert one["count"] == 2 and len(one["sample"]) == 1


def test_unsaved_rules_can_be_previewed(tenant: Tenant):
    add_contact(tenant, "a@x.com", first_name="Ann")
    add_contact(tenant, "b@x.com", first_name="Bob")
    body = {"rules": [{"field": "first_name", "operator": "starts_with", "value": "a"}]}
    response = tenant.call("POST", "/v1/segments:preview", {**body, "sample_size": 0})
    assert response.status_code == 200, response.body
    assert body_of(response) == {"count": 1, "sample": []}
    bad = tenant.call("POST", "/v1/segments:preview", {"rules": [{"field": "x", "operator": "eq"}]})
    assert bad.status_code == 422 and error_of(bad)["field"] == "rules.0.field"


def test_preview_and_segments_never_cross_tenants(tenant: Tenant, other_tenant: Tenant):
    add_contact(other_tenant, "theirs@x.com", attributes={"plan": "gold"}, lead_score=90)
    mine = body_of(tenant.call("POST", "/v1/segments", GOLD))
    assert body_of(tenant.call("POST", f"/v1/segments/{mine['id']}/preview"))["count"] == 0
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/preview")):
        response = other_tenant.call(method, f"/v1/segments/{mine['id']}{suffix}")
        assert response.status_code == 404
    assert tenant.call("GET", f"/v1/segments/{mine['id']}").status_code == 200
