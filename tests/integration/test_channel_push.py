"""Push through SNS mobile push in moto: a push sender is a platform application, a
device an endpoint (registered once per token), a campaign publishes to each contact's
device; a disabled endpoint removes the device and fails the message with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from chalicelib.aws import client
from chalicelib.store.contacts import get_contact
from tests.channel_kit import contact, messages, ok, send_campaign, stats
from tests.conftest import Tenant, body_of

CREDENTIAL = "fcm-server-key-secret-value"
TEMPLATE = {
    "title": "Sale, {{ contact.first_name | default('friend') }}",
    "body": "{{ contact.discount }}% off today",
    "data": {"deep_link": "shop://sale/{{ contact.discount }}"},
}


def sns_backend() -> Any:
    return sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


def published(endpoint_arn: str) -> list[dict[str, Any]]:
    endpoint = sns_backend().platform_endpoints.get(endpoint_arn)
    return [json.loads(m) for m in endpoint.messages.values()] if endpoint else []


def push_sender(tenant: Tenant, platform: str = "GCM") -> dict[str, Any]:
    body = {"channel": "push", "name": "App", "platform": platform, "credential": CREDENTIAL}
    return dict(ok(tenant, "POST", "/v1/senders", body))


def register(tenant: Tenant, contact_id: str, token: str, expect: int = 201) -> dict[str, Any]:
    response = tenant.call(
        "POST", f"/v1/contacts/{contact_id}/devices", {"platform": "GCM", "token": token}
    )
    assert response.status_code == expect, response.body
    return dict(body_of(response))


def test_a_push_sender_is_a_platform_application_whose_credential_is_never_returned(
    tenant: Tenant,
):
    sender = push_sender(tenant)
    app = sns_backend().applications[sender["platform_application_arn"]]
    assert app.platform == "GCM" and app.attributes["PlatformCredential"] == CREDENTIAL
    assert tenant.id in app.name and sender["usable"] is True
    for shown in (sender, ok(tenant, "GET", f"/v1/senders/{sender['id']}")):
        assert CREDENTIAL not in json.dumps(shown)
    ok(tenant, "DELETE", f"/v1/senders/{sender['id']}")
    assert sender["platform_application_arn"] not in sns_backend().applications


def test_registering_a_device_is_idempotent_per_token(tenant: Tenant):
    push_sender(tenant)
    ann = contact(tenant, "ann@example.com")
    first = register(tenant, ann, "tok-ann-1")
    again = register(tenant, ann, "tok-ann-1", expect=200)
    assert again == first and "endpoint_arn" not in first
    register(tenant, ann, "tok-ann-2")
    devices = get_contact(tenant.id, ann).devices
    assert [d.token for d in devices] == ["tok-ann-1", "tok-ann-2"]
    endpoints = sns_backend().list_endpoints_by_platform_application(
        next(iter(sns_backend().applications))
    )
    assert sorted(e.token for e in endpoints) == ["tok-ann-1", "tok-ann-2"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"platform": "APNS", "token": "t"}, 422, "platform"),  # no APNS sender
        ({"platform": "GCM", "token": "has space"}, 422, "token"),
        ({"platform": "WNS", "token": "t"}, 422, "platform"),
        ({"platform": "GCM", "token": "t", "sender_id": "snd_nope"}, 404, "sender_id"),
    ],
)
def test_a_bad_device_is_refused_naming_the_field(tenant: Tenant, body, status, field):
    push_sender(tenant)
    ann = contact(tenant, "ann@example.com")
    response = tenant.call("POST", f"/v1/contacts/{ann}/devices", body)
    assert response.status_code == status, response.body
    assert body_of(response)["error"]["field"] == field
    assert get_contact(tenant.id, ann).devices == []


def test_a_campaign_publishes_once_to_each_contacts_newest_device(tenant: Tenant):
    sender = push_sender(tenant)
    ann = contact(tenant, "ann@example.com", first_name="Ann", attributes={"discount": 20})
    bob = contact(tenant, "bob@example.com", attributes={"discount": 5})
    contact(tenant, "cy@example.com")  # no device: nothing to push to
    register(tenant, ann, "tok-ann-old")
    register(tenant, ann, "tok-ann")
    register(tenant, bob, "tok-bob")
    campaign_id = send_campaign(tenant, "push", TEMPLATE, sender["id"])
    by_token = {
        d.token: d.endpoint_arn for c in (ann, bob) for d in get_contact(tenant.id, c).devices
    }
    assert published(by_token["tok-ann-old"]) == []
    (to_ann,) = published(by_token["tok-ann"])
    gcm = json.loads(to_ann["GCM"])
    assert gcm == {
        "notification": {"title": "Sale, Ann", "body": "20% off today"},
        "data": {"deep_link": "shop://sale/20"},
    }
    assert json.loads(to_ann["APNS"])["aps"]["alert"]["title"] == "Sale, Ann"
    (to_bob,) = published(by_token["tok-bob"])
    assert json.loads(to_bob["GCM"])["notification"]["title"] == "Sale, friend"
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["failed"], counted["skipped"]) == (2, 0, {"no_address": 1})


def test_a_disabled_endpoint_removes_the_device_and_fails_the_message(tenant: Tenant):
    sender = push_sender(tenant)
    ann = contact(tenant, "ann@example.com", attributes={"discount": 1})
    bob = contact(tenant, "bob@example.com", attributes={"discount": 2})
    register(tenant, ann, "tok-ann")
    register(tenant, bob, "tok-bob")
    (dead,) = get_contact(tenant.id, ann).devices
    client("sns").set_endpoint_attributes(
        EndpointArn=dead.endpoint_arn, Attributes={"Enabled": "false"}
    )
    campaign_id = send_campaign(tenant, "push", TEMPLATE, sender["id"])
    assert get_contact(tenant.id, ann).devices == []
    assert dead.endpoint_arn not in sns_backend().platform_endpoints
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["failed"]) == (1, 1)
    (failed,) = [m for m in messages(tenant, campaign_id) if m["status"] == "failed"]
    assert failed["error"].startswith("EndpointDisabled: the device's endpoint is disabled")
    register(tenant, ann, "tok-ann")  # the app came back: a new endpoint
    assert get_contact(tenant.id, ann).devices[0].endpoint_arn != dead.endpoint_arn


def test_a_token_moving_to_another_contact_takes_its_endpoint_over(tenant: Tenant):
    push_sender(tenant)
    ann = contact(tenant, "ann@example.com")
    bob = contact(tenant, "bob@example.com")
    register(tenant, ann, "shared-phone")
    register(tenant, bob, "shared-phone")
    (anns,) = get_contact(tenant.id, ann).devices
    (bobs,) = get_contact(tenant.id, bob).devices
    assert anns.endpoint_arn == bobs.endpoint_arn
    endpoint = sns_backend().platform_endpoints[bobs.endpoint_arn]
    assert endpoint.attributes["CustomUserData"] == bob


def test_another_tenant_cannot_register_on_a_contact(tenant: Tenant, other_tenant: Tenant):
    push_sender(tenant)
    push_sender(other_tenant)
    ann = contact(tenant, "ann@example.com")
    response = other_tenant.call(
        "POST", f"/v1/contacts/{ann}/devices", {"platform": "GCM", "token": "t"}
    )
    assert response.status_code == 404
    assert get_contact(tenant.id, ann).devices == []
