"""The BOLA matrix (OWASP API1): tenant B calls EVERY route of the app, native and each
seed dialect, with tenant A's ids, numbers, cursors and references, and gets a refusal,
never A's data, and A's data is unchanged afterwards.

The routes come from ``app.routes``, so a route added later is probed without anyone
remembering to: its path parameters are filled from A's world (tests/tenant_world.py, which
fails naming a parameter it cannot fill), its query gets A's cursor and organisation, its
body A's references (by field name, from the route's own pydantic model). B is a fresh
tenant with nothing of its own, so seed 003's per-tenant numbers of A name nothing of B's.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from pydantic import BaseModel

import app as herald
from chalicelib.api.routing import OPERATIONS, Operation
from chalicelib.local.poller import drain
from tests.conftest import Tenant, body_of, call
from tests.tenant_world import World, build_world

# Routes whose path is a capability, not a tenant's resource: anyone holding the link may
# use it by design (the recipient of the message it came in), whatever API key they have.
CAPABILITIES = {"/u/{token}"}
# What each seed documents as its refusal of another tenant's object, beside 404.
SEED_REFUSALS = {"/campaigns": {400}}  # DRF: 400 {"field": ['Invalid pk "…" - …']}


# Values B adds to a body, when the route's model has the field, so the body is valid and
# a refusal is about A's object, not a missing field.
FILLERS = {
    "name": "probe by B",
    "channel": "email",
    "scheduled_at": "2030-01-01T00:00:00Z",
    "addresses": ["probe@example.com"],
    "contact_ids": ["c_probe"],
    "workflow": {"nodes": [{"id": "probe", "kind": "trigger.manual"}], "edges": []},
    "platform": "GCM",
    "token": "probe-device-token",
}


def _references(a: World) -> dict[str, Any]:
    """A's objects by the body and query field names that refer to them."""
    p = a.params
    return {
        "contact_ids": [p["contact_id"]],
        "list_ids": [p["list_id"]],
        "template_ids": [p["template_id"]],
        "sender_ids": [p["sender_id"]],
        "audience": {"list_ids": [p["list_id"]], "segment_ids": [p["segment_id"]]},
        "segment_id": p["segment_id"],
        "email_message_id": p["template_id"],
        "sms_message_id": p["template_id"],
        "sender_id": p["sender_id"],
        "organization_id": a.tenant.id,
        "list": int(p["list"]),
        "segments": [int(p["segment"])],
        "domain": int(p["domain"]),
        "cursor": a.cursor,
    }


@pytest.fixture
def worlds(tenant: Tenant, other_tenant: Tenant, admin_key: str, herald_env: Any) -> World:
    herald_env(ses_max_send_rate="1000000", simulator_delay_seconds="0")
    a = build_world(tenant, "alphaworld")
    page = body_of(tenant.call("GET", "/v1/contacts?limit=1"))
    a.cursor = page["next_cursor"]
    assert a.cursor, "A needs a second page for its cursor"
    return a


def _operation(path: str, method: str) -> Operation | None:
    return next((op for op in OPERATIONS if op.path == path and op.method == method.lower()), None)


def _fields(model: type[BaseModel] | None) -> set[str]:
    if model is None:
        return set()
    return set(model.model_json_schema(mode="validation").get("properties", {}))


def _probe(a: World, path: str, method: str) -> tuple[str, Any]:
    """The request B sends: A's path parameters, A's references in query and body."""
    op = _operation(path, method)
    refs = _references(a)
    url = a.fill(path)
    if op is not None and op.query is not None:
        query = {name: refs[name] for name in _fields(op.query) if name in refs}
        if query:
            url = f"{url}?{urlencode(query, doseq=True)}"
    body: dict[str, Any] | None = None
    if op is not None and op.body is not None:
        fields = _fields(op.body)
        body = {name: value for name, value in FILLERS.items() if name in fields}
        if not op.path_params:  # with A's object in the path, that is what is probed
            body |= {name: value for name, value in refs.items() if name in fields}
    return url, body


def _snapshot(a: World) -> dict[str, Any]:
    """Everything A can read of itself: every GET route with A's own ids, as A."""
    seen = {}
    for path, methods in sorted(herald.app.routes.items()):
        op = _operation(path, "GET")
        if "GET" in methods and op is not None and op.auth == "tenant":
            response = a.tenant.call("GET", a.fill(path))
            seen[path] = (response.status_code, body_of(response))
    return seen


def test_tenant_b_reaches_nothing_of_tenant_a_on_any_route(
    worlds: World, other_tenant: Tenant, client: Client
) -> None:
    a, b = worlds, other_tenant
    # Routes for end users take a contact token: B's, for a contact of B's own.
    b_contact = body_of(b.call("POST", "/v1/contacts", {"email": "probe@example.com"}))["id"]
    b_contact_token = body_of(b.call("POST", f"/v1/contacts/{b_contact}/token"))["token"]
    before = _snapshot(a)
    assert before["/v1/campaigns/{campaign_id}"][0] == 200  # A's world is really there
    secrets = a.secrets()
    answers = []
    for path, methods in sorted(herald.app.routes.items()):
        for method in sorted(methods):
            if path in CAPABILITIES:
                assert _operation(path, method).auth == "public"  # type: ignore[union-attr]
                continue
            url, body = _probe(a, path, method)
            op = _operation(path, method)
            key = b_contact_token if op is not None and op.auth == "contact" else b.key
            response = call(client, method, url, body, key=key)
            sent = url + json.dumps(body)
            leaked = _leaked(response.body.decode(), secrets, sent)
            answers.append((method, path, response.status_code, leaked, response.body[:300]))
    drain()  # anything B's calls queued for A's objects would act now
    bad = [answer for answer in answers if not _refused(answer, a)]
    assert not bad, "\n".join(map(str, bad))
    assert _snapshot(a) == before


def test_a_draft_naming_another_tenants_objects_cannot_be_sent(
    worlds: World, other_tenant: Tenant
) -> None:
    """A draft may hold ids its tenant lacks (they are checked when it is scheduled or
    sent): B's draft naming A's list, template and sender can never send."""
    a, b = worlds, other_tenant
    body = {"name": "probe by B", "channel": "email"}
    body |= {k: v for k, v in _references(a).items() if k in ("audience", "template_ids")}
    body["sender_ids"] = [a.params["sender_id"]]
    created = b.call("POST", "/v1/campaigns", body)
    assert created.status_code in (201, 404, 422), created.body
    if created.status_code == 201:
        sent = b.call("POST", f"/v1/campaigns/{body_of(created)['id']}/send")
        assert sent.status_code in (404, 409, 422), sent.body


def _leaked(text: str, secrets: set[str], sent: str) -> list[str]:
    """A's secrets in the response that B did not itself send."""
    for mine in sorted(secrets, key=len, reverse=True):
        if mine in sent:
            text = text.replace(mine, "")
    return [secret for secret in secrets if secret in text]


def _refused(answer: tuple[str, str, int, list[str], bytes], a: World) -> bool:
    method, path, status, leaked, _ = answer
    if leaked or status >= 500:
        return False
    op = _operation(path, method)
    if op is None or op.auth == "public":
        return True
    if op.auth == "admin":
        return status == 403
    refusals = {404} | next((s for p, s in SEED_REFUSALS.items() if path.startswith(p)), set())
    if op.path_params:
        return status in refusals
    if method == "GET":  # B's own (empty) listing, or A's cursor or organisation refused
        return status in {200, 400, 404, 422}
    # A create: B's own object (a draft may name ids its tenant does not have, checked
    # when it is sent: see the test below), or refused; never A's data (checked above).
    return True
