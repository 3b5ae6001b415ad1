"""Static lists through HTTP: CRUD, bulk membership on both sides, paging, deletion."""

from __future__ import annotations

from chalicelib.domain.contacts import ContactFields
from chalicelib.local.poller import drain
from chalicelib.store import contacts as contact_store
from chalicelib.store import lists as list_store
from chalicelib.store.numbering import resolve_number
from tests.conftest import Tenant, body_of


def add_contact(tenant: Tenant, email: str) -> str:
    return contact_store.create_contact(tenant.id, ContactFields(email=email)).id


def new_list(tenant: Tenant, name: str = "Newsletter", **fields) -> dict:
    response = tenant.call("POST", "/v1/lists", {"name": name, **fields})
    assert response.status_code == 201, response.body
    return body_of(response)


def lists_of(tenant: Tenant, contact_id: str) -> list[str]:
    return contact_store.get_contact(tenant.id, contact_id).lists


def test_list_is_created_numbered_read_changed_and_listed(tenant: Tenant):
    first = new_list(tenant, description="Weekly", edition_id="ed-2025")
    assert first["id"].startswith("l_") and first["number"] == 1
    assert first["member_count"] == 0 and first["edition_id"] == "ed-2025"
    assert resolve_number(tenant.id, "list", 1) == first["id"]
    second = new_list(tenant, "Other")
    assert second["number"] == 2 and second["edition_id"] is None
    assert body_of(tenant.call("GET", f"/v1/lists/{first['id']}")) == first

    patched = body_of(
        tenant.call("PATCH", f"/v1/lists/{first['id']}", {"name": "Daily", "edition_id": None})
    )
    assert patched["name"] == "Daily" and patched["edition_id"] is None
    assert patched["description"] == "Weekly"
    everything = body_of(tenant.call("GET", "/v1/lists"))["items"]
    assert {item["id"] for item in everything} == {first["id"], second["id"]}
    new_list(tenant, "Scoped", edition_id="ed-9")
    scoped = body_of(tenant.call("GET", "/v1/lists?edition_id=ed-9"))["items"]
    assert [item["name"] for item in scoped] == ["Scoped"]


def test_bulk_add_by_id_and_email_reports_unknowns_and_counts_once(tenant: Tenant):
    ann, bob = add_contact(tenant, "ann@x.com"), add_contact(tenant, "bob@x.com")
    target = new_list(tenant)
    body = {
        "contact_ids": [ann, "c_" + "0" * 32],
        "emails": ["BOB@x.com", "nobody@x.com", "ann@x.com"],
    }
    response = tenant.call("POST", f"/v1/lists/{target['id']}/members", body)
    assert response.status_code == 200, response.body
    assert body_of(response) == {
        "changed": 2,
        "unchanged": 0,
        "unknown_contact_ids": ["c_" + "0" * 32],
        "unknown_emails": ["nobody@x.com"],
        "member_count": 2,
    }
    assert lists_of(tenant, ann) == [target["id"]] and lists_of(tenant, bob) == [target["id"]]
    again = body_of(
        tenant.call("POST", f"/v1/lists/{target['id']}/members", {"contact_ids": [ann]})
    )
    assert again["changed"] == 0 and again["unchanged"] == 1 and again["member_count"] == 2
    assert body_of(tenant.call("GET", f"/v1/lists/{target['id']}"))["member_count"] == 2


def test_bulk_remove_updates_both_sides(tenant: Tenant):
    ann, bob = add_contact(tenant, "ann@x.com"), add_contact(tenant, "bob@x.com")
    target = new_list(tenant)
    tenant.call("POST", f"/v1/lists/{target['id']}/members", {"contact_ids": [ann, bob]})
    response = tenant.call(
        "POST", f"/v1/lists/{target['id']}/members:remove", {"emails": ["ann@x.com"]}
    )
    assert response.status_code == 200, response.body
    assert body_of(response)["changed"] == 1 and body_of(response)["member_count"] == 1
    assert lists_of(tenant, ann) == [] and lists_of(tenant, bob) == [target["id"]]
    members = body_of(tenant.call("GET", f"/v1/lists/{target['id']}/members"))
    assert [m["id"] for m in members["items"]] == [bob]
    not_member = body_of(
        tenant.call("POST", f"/v1/lists/{target['id']}/members:remove", {"contact_ids": [ann]})
    )
    assert not_member["changed"] == 0 and not_member["unchanged"] == 1


def test_member_listing_pages_and_skips_deleted_contacts(tenant: Tenant):
    ids = sorted(add_contact(tenant, f"m{i}@x.com") for i in range(5))
    target = new_list(tenant)
    tenant.call("POST", f"/v1/lists/{target['id']}/members", {"contact_ids": ids})
    contact_store.delete_contact(tenant.id, ids[0])
    first = body_of(tenant.call("GET", f"/v1/lists/{target['id']}/members?limit=3"))
    assert [m["id"] for m in first["items"]] == ids[1:3]
    rest = body_of(
        tenant.call(
            "GET", f"/v1/lists/{target['id']}/members?limit=3&cursor={first['next_cursor']}"
        )
    )
    assert [m["id"] for m in rest["items"]] == ids[3:] and rest["next_cursor"] is None
    pages = list(list_store.iter_list_members(tenant.id, target["id"], page_size=2))
    assert pages == [ids[0:2], ids[2:4], ids[4:]]
    # The deleted contact's membership can still be removed by id.
    removed = body_of(
        tenant.call("POST", f"/v1/lists/{target['id']}/members:remove", {"contact_ids": [ids[0]]})
    )
    assert removed["changed"] == 1 and removed["unknown_contact_ids"] == []
    assert removed["member_count"] == 4


def test_membership_input_is_bounded_and_validated(tenant: Tenant):
    target = new_list(tenant)
    url = f"/v1/lists/{target['id']}/members"
    for body, field in [
        ({}, None),
        ({"contact_ids": ["c_x"] * 600, "emails": ["a@x.com"] * 401}, None),
        ({"contact_ids": ["c_x"] * 1001}, "contact_ids"),
        ({"emails": ["not an email"]}, "emails.0"),
    ]:
        response = tenant.call("POST", url, body)
        assert response.status_code == 422, body
        if field:
            assert body_of(response)["error"]["field"] == field
    missing = tenant.call("POST", "/v1/lists/l_missing/members", {"contact_ids": ["c_x"]})
    assert missing.status_code == 404 and body_of(missing)["error"]["field"] == "list_id"


def test_deleting_a_list_clears_it_from_every_member(tenant: Tenant):
    ids = [add_contact(tenant, f"m{i}@x.com") for i in range(7)]
    doomed, kept = new_list(tenant, "Doomed"), new_list(tenant, "Kept")
    tenant.call("POST", f"/v1/lists/{doomed['id']}/members", {"contact_ids": ids})
    tenant.call("POST", f"/v1/lists/{kept['id']}/members", {"contact_ids": ids[:2]})
    assert tenant.call("DELETE", f"/v1/lists/{doomed['id']}").status_code == 204
    assert tenant.call("GET", f"/v1/lists/{doomed['id']}").status_code == 404
    assert resolve_number(tenant.id, "list", doomed["number"]) is None
    drain(["control"])
    assert [lists_of(tenant, i) for i in ids] == [[kept["id"]]] * 2 + [[]] * 5
    assert list(list_store.iter_list_members(tenant.id, doomed["id"])) == []


def test_purge_works_a_page_at_a_time(tenant: Tenant):
    ids = [add_contact(tenant, f"m{i}@x.com") for i in range(5)]
    doomed = new_list(tenant)
    tenant.call("POST", f"/v1/lists/{doomed['id']}/members", {"contact_ids": ids})
    list_store.delete_list(tenant.id, doomed["id"])
    assert list_store.purge_members(tenant.id, doomed["id"], limit=3)[0] is False
    assert sum(bool(lists_of(tenant, i)) for i in ids) == 2
    assert list_store.purge_members(tenant.id, doomed["id"], limit=3)[0] is True
    assert all(lists_of(tenant, i) == [] for i in ids)


def test_lists_never_cross_tenants(tenant: Tenant, other_tenant: Tenant):
    mine = new_list(tenant)
    theirs_contact = add_contact(other_tenant, "theirs@x.com")
    response = tenant.call(
        "POST", f"/v1/lists/{mine['id']}/members", {"contact_ids": [theirs_contact]}
    )
    assert body_of(response)["unknown_contact_ids"] == [theirs_contact]
    assert lists_of(other_tenant, theirs_contact) == []
    for method, path in [
        ("GET", f"/v1/lists/{mine['id']}"),
        ("GET", f"/v1/lists/{mine['id']}/members"),
        ("DELETE", f"/v1/lists/{mine['id']}"),
    ]:
        assert other_tenant.call(method, path).status_code == 404
    add = other_tenant.call(
        "POST", f"/v1/lists/{mine['id']}/members", {"contact_ids": [theirs_contact]}
    )
    assert add.status_code == 404
    assert body_of(tenant.call("GET", f"/v1/lists/{mine['id']}"))["member_count"] == 0
