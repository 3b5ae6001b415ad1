"""What the channel tests share: a tenant's contacts, a campaign on one channel sent to
them through the real pipeline, and its stats."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.contacts import ContactFields
from chalicelib.local.poller import drain
from chalicelib.store.contacts import create_contact
from tests.conftest import Tenant, body_of


def ok(tenant: Tenant, method: str, path: str, body: Any = None) -> Any:
    response = tenant.call(method, path, body)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.body}"
    return body_of(response)


def contact(tenant: Tenant, email: str, **fields: Any) -> str:
    return create_contact(tenant.id, ContactFields(email=email, **fields)).id


def send_campaign(
    tenant: Tenant, channel: str, template: dict[str, Any], sender: dict[str, Any] | str
) -> str:
    """Create a template and a sender of ``channel`` (or use the sender with this id),
    send a campaign to every contact through the queues and handlers, return its id."""
    template_id = ok(
        tenant, "POST", "/v1/templates", {"name": "T", "channel": channel, **template}
    )["id"]
    if isinstance(sender, dict):
        sender = str(ok(tenant, "POST", "/v1/senders", {"channel": channel, **sender})["id"])
    campaign = {
        "name": f"{channel} campaign",
        "channel": channel,
        "audience": {"all_contacts": True},
        "template_ids": [template_id],
        "sender_ids": [sender],
    }
    campaign_id = str(ok(tenant, "POST", "/v1/campaigns", campaign)["id"])
    ok(tenant, "POST", f"/v1/campaigns/{campaign_id}/send")
    drain()
    return campaign_id


def stats(tenant: Tenant, campaign_id: str) -> dict[str, Any]:
    """The campaign's stats, with the skips by reason from its detail."""
    detail = ok(tenant, "GET", f"/v1/campaigns/{campaign_id}")
    return {
        **ok(tenant, "GET", f"/v1/campaigns/{campaign_id}/stats"),
        "skipped": detail["skipped"],
    }


def messages(tenant: Tenant, campaign_id: str) -> list[dict[str, Any]]:
    return list(ok(tenant, "GET", f"/v1/campaigns/{campaign_id}/messages")["items"])
