"""One tenant's world of resources, every kind the API has, made through the API itself:
what the fuzz test aims its generated requests at and what the BOLA matrix tries to reach
from another tenant. Every name and address carries the world's ``marker``, so another
tenant's response that mentions it has leaked this tenant's data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws import client
from chalicelib.domain import clock, ids
from chalicelib.domain.onsite import InboxMessage
from chalicelib.domain.unsubscribe import UnsubscribeClaim
from chalicelib.local.poller import drain
from chalicelib.store import onsite_inbox
from chalicelib.store.inbox_threads import open_thread
from chalicelib.store.secrets import unsubscribe_token
from tests.conftest import Tenant, body_of, own

# Path parameters that name no tenant's object.
PUBLIC_PARAMS = {"name"}


@dataclass
class World:
    tenant: Tenant
    marker: str
    # A path parameter's value, by the parameter's name (seed 002's ``id`` and seed 003's
    # numbers are the dialects' own names, so one name means one kind of resource).
    params: dict[str, str] = field(default_factory=dict)
    cursor: str | None = None  # a next-page cursor of the contacts list

    def path_parameters(self, path: str) -> dict[str, str]:
        """Values for every ``{name}`` of ``path``; a name the world does not know fails,
        naming it, so a new kind of resource gets taught here."""
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        unknown = [name for name in names if name not in self.params]
        assert not unknown, f"tests/tenant_world.py makes no resource for {unknown} of {path}"
        return {name: self.params[name] for name in names}

    def secrets(self) -> set[str]:
        """What only this tenant's data contains: its marker (in every name and address)
        and its resources' ids (seed 003's small numbers are per tenant, so not these)."""
        mine = {k: v for k, v in self.params.items() if k not in PUBLIC_PARAMS}
        return {self.marker} | {v for v in mine.values() if not v.isdigit()}

    def fill(self, path: str) -> str:
        for name, value in self.path_parameters(path).items():
            path = path.replace("{" + name + "}", value)
        return path


def ok(tenant: Tenant, method: str, path: str, body: Any = None) -> Any:
    response = tenant.call(method, path, body)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.body}"
    return body_of(response)


def build_world(tenant: Tenant, marker: str) -> World:
    """Contacts, a list, a segment, templates, a sender, a sent campaign with its messages,
    an active workflow, a webhook, an import, a suppression, a second API key, an operator
    inbox thread and seed 001/002/003/004 campaigns."""
    world = World(tenant=tenant, marker=marker)
    p = world.params
    sender_address = f"news@{marker}.example.com"
    client("ses").verify_email_identity(EmailAddress=sender_address)
    own(tenant.id, sender_address)  # verified out of band: an admin assigns it
    contacts = [
        ok(tenant, "POST", "/v1/contacts", {"email": f"{marker}-{n}@example.com", "first_name": n})
        for n in ("ann", "bob")
    ]
    p["contact_id"] = contacts[0]["id"]
    p["list_id"] = ok(tenant, "POST", "/v1/lists", {"name": f"{marker} list"})["id"]
    ok(
        tenant,
        "POST",
        f"/v1/lists/{p['list_id']}/members",
        {"contact_ids": [c["id"] for c in contacts]},
    )
    rules = [{"field": "email", "operator": "contains", "value": marker}]
    segment = {"name": f"{marker} segment", "condition": "AND", "rules": rules}
    p["segment_id"] = ok(tenant, "POST", "/v1/segments", segment)["id"]
    template = {
        "name": f"{marker} template",
        "channel": "email",
        "subject": f"{marker} news",
        "html": f'<p>{marker}</p><a href="{{{{ unsubscribe_url }}}}">unsubscribe</a>',
    }
    p["template_id"] = ok(tenant, "POST", "/v1/templates", template)["id"]
    p["sender_id"] = ok(
        tenant,
        "POST",
        "/v1/senders",
        {"channel": "email", "from_email": sender_address, "from_name": marker},
    )["id"]
    campaign = {
        "name": f"{marker} campaign",
        "channel": "email",
        "audience": {"list_ids": [p["list_id"]]},
        "template_ids": [p["template_id"]],
        "sender_ids": [p["sender_id"]],
    }
    p["campaign_id"] = ok(tenant, "POST", "/v1/campaigns", campaign)["id"]
    ok(tenant, "POST", f"/v1/campaigns/{p['campaign_id']}/send")
    drain()
    messages = ok(tenant, "GET", f"/v1/campaigns/{p['campaign_id']}/messages")["items"]
    p["message_id"] = messages[0]["message_id"]
    p["node_id"] = f"{marker}-send"
    flow = {
        "name": f"{marker} flow",
        "type": "workflow",
        "workflow": {
            "nodes": [
                {"id": "start", "kind": "trigger.event", "config": {"event_type": "signup"}},
                {
                    "id": p["node_id"],
                    "kind": "send",
                    "config": {"channel": "email", "template_ids": [p["template_id"]]},
                },
            ],
            "edges": [{"source": "start", "target": p["node_id"]}],
        },
    }
    ok(tenant, "POST", f"/v1/campaigns/{ok(tenant, 'POST', '/v1/campaigns', flow)['id']}/activate")
    webhook = {"url": f"https://hooks.example.com/{marker}", "event_types": ["message.delivered"]}
    p["webhook_id"] = ok(tenant, "POST", "/v1/webhooks", webhook)["id"]
    rows = f"email,first_name\n{marker}-cy@example.com,cy\n"
    p["import_id"] = ok(tenant, "POST", "/v1/imports", {"format": "csv", "data": rows})["id"]
    p["address"] = f"{marker}-gone@example.com"
    ok(tenant, "POST", "/v1/suppressions", {"address": p["address"]})
    p["key_id"] = ok(tenant, "POST", "/v1/api-keys", {"name": f"{marker} key"})["id"]
    p["tenant_id"] = tenant.id
    p["thread_id"] = open_thread(  # as a flow's notify_inbox step opens one
        tenant.id,
        thread_id=f"{p['campaign_id']}#{p['contact_id']}#call#0",
        contact_id=p["contact_id"],
        campaign_id=p["campaign_id"],
        node_id="call",
        title=f"{marker} call",
        now=clock.now(),
    ).id
    ann_inbox = onsite_inbox.store_message(  # as the onsite channel stores one
        tenant.id,
        p["contact_id"],
        InboxMessage(
            id=onsite_inbox.inbox_message_id(None),
            title=f"{marker} news",
            body=marker,
            created_at=clock.now(),
        ),
        campaign_message_id=None,
    )
    p["inbox_message_id"] = ann_inbox.id
    p["name"] = "explorer.js"  # a file of the API explorer (public, the same for everyone)
    p["token"] = unsubscribe_token(UnsubscribeClaim(tenant.id, contacts[1]["id"], "email"))
    seed002 = {"name": f"{marker} seed002", "channel": "email"}
    p["id"] = str(ok(tenant, "POST", "/campaigns/", seed002)["id"])
    p["campaign"] = str(ok(tenant, "POST", "/campaign", {"name": f"{marker} seed003"})["id"])
    seed001 = {"name": f"{marker} seed001", "company": ids.dashed(tenant.id)}
    p["sequence_id"] = ok(tenant, "POST", "/email/campaigns/", seed001)["id"]
    step = {"subject": f"{marker} step", "body_text": "Hello"}
    p["step_id"] = ok(tenant, "POST", f"/email/campaigns/{p['sequence_id']}/steps/", step)["id"]
    p["workspaceId"] = tenant.id
    visual = {
        "nodes": [
            {"id": "start", "type": "MANUAL", "position": {"x": 0, "y": 0}, "data": {}},
            {
                "id": "mail",
                "type": "SEND_MESSAGE",
                "position": {"x": 0, "y": 100},
                "data": {"channel": "email", "templateIds": [p["template_id"]]},
            },
            {"id": "tag", "type": "ADD_TAG", "position": {"x": 0, "y": 200}, "data": {"tag": "x"}},
        ],
        "edges": [{"source": "start", "target": "mail"}, {"source": "mail", "target": "tag"}],
    }
    seed004 = {"name": f"{marker} seed004", "type": "AUTOMATED", "workflow": visual}
    p["campaignId"] = ok(tenant, "POST", f"/api/workspaces/{tenant.id}/campaigns", seed004)["id"]
    p["list"] = str(_seed003_number(tenant, "/list", p["list_id"]))
    p["segment"] = str(_seed003_number(tenant, "/segment", p["segment_id"]))
    p["domain"] = str(_seed003_number(tenant, "/domain", p["sender_id"]))
    drain()  # the import done, nothing left to change this world by itself
    return world


def _seed003_number(tenant: Tenant, path: str, native_id: str) -> int:
    """Seed 003 numbers lists, segments and domains; the one for a native id."""
    listing = ok(tenant, "GET", path)
    items = listing if isinstance(listing, list) else listing.get("items", listing.get("data"))
    return next(int(item["id"]) for item in items if item["herald"]["id"] == native_id)
