"""Contacts through HTTP and the contacts store, against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.aws import client
from chalicelib.domain.contacts import ATTRIBUTES_MAX_BYTES, ContactFields
from chalicelib.domain.errors import NotFound
from chalicelib.pipeline.queues import queue_url
from chalicelib.store import contacts as store
from tests.conftest import Tenant, body_of

ANN = {"email": "Ann.Lee@Example.com", "phone": "+49 151 12345678", "first_name": "Ann"}


def create(tenant: Tenant, **fields) -> dict:
    response = tenant.call("POST", "/v1/contacts", fields)
    assert response.status_code == 201, response.body
    return body_of(response)


def error_of(response) -> dict:
    return body_of(response)["error"]


def test_create_normalizes_identity_and_get_returns_the_same(tenant: Tenant):
    created = create(tenant, **ANN, timezone="Europe/Berlin", tags=["vip"], lead_score=5)
    assert created["id"].startswith("c_")
    assert created["email"] == "ann.lee@example.com"
    assert created["phone"] == "+4915112345678"
    assert created["status"] == "subscribed"
    assert created["lists"] == [] and created["events"] == {}
    fetched = tenant.call("GET", f"/v1/contacts/{created['id']}")
    assert fetched.status_code == 200
    assert body_of(fetched) == created


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "+1 555"}, "phone"),
        ({"email": "a@x.com", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@x.com", "favourite_colour": "teal"}, "favourite_colour"),
        ({"email": "a@x.com", "attributes": {"blob": "x" * ATTRIBUTES_MAX_BYTES}}, "attributes"),
        ({"email": "a@x.com", "first_name": "Ann\r\nBcc: all@x.com"}, "first_name"),
        ({"email": "a@x.com", "last_name": "Le\ne"}, "last_name"),
        ({"first_name": "Nobody"}, "email"),
    ],
)
def test_each_invalid_create_is_422_naming_the_field_and_stores_nothing(tenant, fields, field):
    response = tenant.call("POST", "/v1/contacts", fields)
    assert response.status_code == 422, response.body
    assert error_of(response)["field"] == field
    assert body_of(tenant.call("GET", "/v1/contacts"))["items"] == []


def test_a_taken_email_or_phone_is_409_naming_the_existing_contact(tenant: Tenant):
    existing = create(tenant, **ANN)
    same_email = tenant.call("POST", "/v1/contacts", {"email": "ANN.LEE@example.com"})
    assert same_email.status_code == 409
    assert error_of(same_email)["field"] == "email"
    assert existing["id"] in error_of(same_email)["message"]
    same_phone = tenant.call(
        "POST", "/v1/contacts", {"email": "other@x.com", "phone": "+4915112345678"}
    )
    assert same_phone.status_code == 409
    assert error_of(same_phone)["field"] == "phone"
    # Nothing half-written: the other email is still free.
    assert create(tenant, email="other@x.com")["email"] == "other@x.com"
    assert len(body_of(tenant.call("GET", "/v1/contacts"))["items"]) == 2


def test_patch_changes_only_the_fields_sent_and_null_clears(tenant: Tenant):
    contact = create(tenant, **ANN, last_name="Lee", attributes={"plan": "free", "seats": 2})
    response = tenant.call(
        "PATCH",
        f"/v1/contacts/{contact['id']}",
        {"last_name": None, "attributes": {"plan": "pro", "seats": None}, "lead_score": 9},
    )
    assert response.status_code == 200, response.body
    patched = body_of(response)
    assert patched["first_name"] == "Ann" and patched["last_name"] is None
    assert patched["attributes"] == {"plan": "pro"}
    assert patched["lead_score"] == 9
    assert body_of(tenant.call("GET", f"/v1/contacts/{contact['id']}")) == patched


def test_patch_moves_the_email_identity_atomically(tenant: Tenant):
    ann = create(tenant, email="ann@x.com")
    bob = create(tenant, email="bob@x.com")
    taken = tenant.call("PATCH", f"/v1/contacts/{ann['id']}", {"email": "bob@x.com"})
    assert taken.status_code == 409
    assert error_of(taken)["field"] == "email" and bob["id"] in error_of(taken)["message"]
    assert body_of(tenant.call("GET", f"/v1/contacts/{ann['id']}"))["email"] == "ann@x.com"
    moved = tenant.call("PATCH", f"/v1/contacts/{ann['id']}", {"email": "ann@new.com"})
    assert moved.status_code == 200
    assert store.find_by_email(tenant.id, "ann@x.com") is None
    assert store.find_by_email(tenant.id, "ann@new.com").id == ann["id"]
    # The old email is free again.
    assert create(tenant, email="ann@x.com")["id"] != ann["id"]


def test_patch_refuses_unknown_fields_and_removing_the_last_identity(tenant: Tenant):
    contact = create(tenant, email="ann@x.com")
    unknown = tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"id": "c_" + "0" * 32})
    assert unknown.status_code == 422 and error_of(unknown)["field"] == "id"
    orphan = tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"email": None})
    assert orphan.status_code == 422 and error_of(orphan)["field"] == "email"


def test_unsubscribing_through_patch_stamps_unsubscribed_at(tenant: Tenant):
    contact = create(tenant, email="ann@x.com")
    response = tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"status": "unsubscribed"})
    assert body_of(response)["status"] == "unsubscribed"
    assert body_of(response)["unsubscribed_at"] is not None


def test_delete_removes_the_contact_and_frees_its_identities(tenant: Tenant):
    contact = create(tenant, **ANN)
    response = tenant.call("DELETE", f"/v1/contacts/{contact['id']}")
    assert response.status_code == 204
    assert tenant.call("GET", f"/v1/contacts/{contact['id']}").status_code == 404
    assert tenant.call("DELETE", f"/v1/contacts/{contact['id']}").status_code == 404
    assert store.find_by_phone(tenant.id, "+4915112345678") is None
    assert create(tenant, **ANN)["id"] != contact["id"]


def test_another_tenants_contact_is_404_for_get_patch_and_delete(
    tenant: Tenant, other_tenant: Tenant
):
    theirs = create(other_tenant, **ANN)
    path = f"/v1/contacts/{theirs['id']}"
    assert tenant.call("GET", path).status_code == 404
    assert tenant.call("PATCH", path, {"first_name": "Mallory"}).status_code == 404
    assert tenant.call("DELETE", path).status_code == 404
    assert error_of(tenant.call("GET", path))["field"] == "contact_id"
    assert body_of(other_tenant.call("GET", path)) == theirs
    # Identities are per tenant: the same email is free in this one.
    assert create(tenant, **ANN)["id"] != theirs["id"]


def test_malformed_contact_id_is_404(tenant: Tenant):
    assert tenant.call("GET", "/v1/contacts/..%2F..%2Fetc").status_code == 404


def test_listing_walks_every_shard_without_duplicates_or_losses(tenant: Tenant):
    created = {
        store.create_contact(tenant.id, ContactFields(email=f"user{n}@x.com")).id for n in range(60)
    }
    assert len({store.contact_shard(i) for i in created}) > 8  # really spread over shards
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        path = "/v1/contacts?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = body_of(tenant.call("GET", path))
        assert len(page["items"]) <= 7
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 60
    assert set(seen) == created
    assert pages >= 9


def test_a_forged_or_foreign_cursor_is_422(tenant: Tenant, other_tenant: Tenant):
    for n in range(3):
        store.create_contact(other_tenant.id, ContactFields(email=f"u{n}@x.com"))
    theirs = body_of(other_tenant.call("GET", "/v1/contacts?limit=1"))["next_cursor"]
    for cursor in ("garbage", theirs):
        response = tenant.call("GET", f"/v1/contacts?cursor={cursor}")
        assert response.status_code == 422
        assert error_of(response)["field"] == "cursor"


def test_filters_by_email_phone_status_tag_and_list(tenant: Tenant):
    ann = create(tenant, **ANN, tags=["vip"])
    bob = create(tenant, email="bob@x.com", status="unsubscribed")
    store.set_list_membership(tenant.id, bob["id"], "list_1", member=True)

    def ids(query: str) -> list[str]:
        items: list[str] = []
        cursor = None
        while True:
            suffix = f"&cursor={cursor}" if cursor else ""
            page = body_of(tenant.call("GET", f"/v1/contacts?{query}{suffix}"))
            items += [c["id"] for c in page["items"]]
            if not (cursor := page["next_cursor"]):
                return items

    assert ids("email=ANN.LEE%40example.com") == [ann["id"]]
    assert ids("phone=%2B4915112345678") == [ann["id"]]
    assert ids("phone=+4915112345678") == [ann["id"]]  # an unencoded + arrives as a space
    assert ids("email=nobody%40x.com") == []
    assert ids("status=unsubscribed") == [bob["id"]]
    assert ids("tag=vip&limit=1") == [ann["id"]]
    assert ids("list_id=list_1") == [bob["id"]]
    bad = tenant.call("GET", "/v1/contacts?status=gone")
    assert bad.status_code == 422 and error_of(bad)["field"] == "query.status"


def test_saving_a_contact_puts_contact_saved_on_the_triggers_queue(tenant: Tenant):
    contact = create(tenant, **ANN)
    tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"first_name": "Annie"})
    tenant.call("PATCH", f"/v1/contacts/{contact['id']}", {"first_name": "Annie"})  # no change
    received = client("sqs").receive_message(
        QueueUrl=queue_url("triggers"), MaxNumberOfMessages=10, WaitTimeSeconds=0
    )["Messages"]
    events = [json.loads(m["Body"]) for m in received]
    assert [e["detail-type"] for e in events] == ["contact.saved", "contact.saved"]
    created, updated = sorted(events, key=lambda e: e["detail"]["properties"]["created"])[::-1]
    assert created["detail"]["tenant_id"] == tenant.id
    assert created["detail"]["contact"] == {
        "id": contact["id"],
        "email": "ann.lee@example.com",
        "phone": "+4915112345678",
    }
    assert created["detail"]["properties"]["created"] is True
    assert updated["detail"]["properties"]["changed"] == ["first_name"]
    assert updated["detail"]["properties"]["first_name"] == "Annie"


# -- the store interfaces other modules use -------------------------------------------------
def test_record_event_counts_and_keeps_first_and_last(tenant: Tenant):
    contact = store.create_contact(tenant.id, ContactFields(email="a@x.com"))
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    for at in (
        noon,
        noon + timedelta(hours=2),
        noon - timedelta(hours=1),
        noon + timedelta(hours=1),
    ):
        store.record_event(tenant.id, contact.id, "order.placed", at)
    store.record_event(tenant.id, contact.id, "page.viewed", noon)
    events = store.get_contact(tenant.id, contact.id).events
    assert events["order.placed"].count == 4
    assert events["order.placed"].first_at == noon - timedelta(hours=1)
    assert events["order.placed"].last_at == noon + timedelta(hours=2)
    assert events["page.viewed"].count == 1
    with pytest.raises(NotFound):
        store.record_event(tenant.id, "c_" + "0" * 32, "order.placed", noon)


def test_list_membership_is_idempotent_and_survives_a_patch(tenant: Tenant):
    contact = store.create_contact(tenant.id, ContactFields(email="a@x.com"))
    for _ in range(2):
        store.set_list_membership(tenant.id, contact.id, "list_a", member=True)
    store.set_list_membership(tenant.id, contact.id, "list_b", member=True)
    store.set_list_membership(tenant.id, contact.id, "list_b", member=False)
    store.set_list_membership(tenant.id, contact.id, "list_c", member=False)
    tenant.call("PATCH", f"/v1/contacts/{contact.id}", {"first_name": "Ann"})
    assert store.get_contact(tenant.id, contact.id).lists == ["list_a"]
    with pytest.raises(NotFound):
        store.set_list_membership(tenant.id, "c_" + "0" * 32, "list_a", member=True)


def test_set_status_and_batch_reads(tenant: Tenant):
    ann = store.create_contact(tenant.id, ContactFields(email="a@x.com"))
    bob = store.create_contact(tenant.id, ContactFields(phone="+4915112345678"))
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert store.set_status(tenant.id, ann.id, "unsubscribed", at).unsubscribed_at == at
    assert store.set_status(tenant.id, ann.id, "bounced", at).status == "bounced"
    found = store.get_contacts(tenant.id, [ann.id, bob.id, "c_" + "0" * 32, "junk"])
    assert set(found) == {ann.id, bob.id}
    assert found[ann.id].status == "bounced"
    shard_pages = [store.scan_shard(tenant.id, s)[0] for s in range(store.CONTACT_SHARDS)]
    assert sorted(c.id for page in shard_pages for c in page) == sorted([ann.id, bob.id])
