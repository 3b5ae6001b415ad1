"""Shared fixtures: Herald's real handlers against moto's in-process AWS.

Every test that touches AWS gets a fresh moto state with all resources provisioned by the
same provisioner the local stack uses. boto3 clients are made once (after moto is
imported, so moto intercepts them) and reused across tests: that keeps a test's set-up
near 70 ms.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    HERALD_STAGE="dev",
    HERALD_VERIFICATION_RESOLVER="stub",
    # One planning chain unless a test asks for more (tests/integration/test_plan_chains.py):
    # the suite's audiences are small, and its page and batch ids are the single chain's.
    HERALD_PLAN_CHAINS="1",
    POWERTOOLS_DEV="false",
    POWERTOOLS_METRICS_NAMESPACE="Herald",
)
for variable in ("AWS_ENDPOINT_URL", "HERALD_AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(variable, None)

import moto  # noqa: E402  (must be imported before any boto3 client is made)
import pytest  # noqa: E402
from chalice.test import Client  # noqa: E402

import app as herald  # noqa: E402
from chalicelib.channels.identities import forget_cached_statuses  # noqa: E402
from chalicelib.local.poller import drain  # noqa: E402
from chalicelib.local.provision import provision  # noqa: E402
from chalicelib.local.ses_simulator import FeedbackSimulator  # noqa: E402
from chalicelib.pipeline.send.compose import forget_cached_content  # noqa: E402
from chalicelib.settings import get_settings  # noqa: E402
from chalicelib.store import tenants  # noqa: E402
from chalicelib.store.quotas import forget_cached_limits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def aws() -> Iterator[None]:
    """A fresh moto account with every Herald resource provisioned."""
    forget_cached_statuses()  # SES answers and limits are cached per process
    forget_cached_limits()
    with moto.mock_aws():
        resources = provision()
        if resources.configuration_set.stream is not None:
            # S3 tests the feedback queue's notification with an s3:TestEvent when it is
            # set; the worker drops it, as a deployed stack's first feedback batch does.
            drain(("feedback",))
        yield


@pytest.fixture
def client(aws: None) -> Iterator[Client]:
    with Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


@pytest.fixture
def admin_key(aws: None) -> str:
    return tenants.create_admin_key("tests")


class Tenant:
    """A tenant created through the admin route, with helpers to call the API as it."""

    def __init__(self, client: Client, tenant_id: str, key: str) -> None:
        self.client = client
        self.id = tenant_id
        self.key = key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return call(self.client, method, path, body, key=key or self.key, headers=headers)


def call(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """One HTTP request through the real gate; returns the Chalice test response."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key:
        sent["Authorization"] = f"Bearer {key}"
    payload = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return client.http.request(method, path, headers=sent, body=payload or b"")


def body_of(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


def make_tenant(client: Client, admin_key: str, name: str = "Acme") -> Tenant:
    response = call(client, "POST", "/v1/admin/tenants", {"name": name}, key=admin_key)
    assert response.status_code == 201, response.body
    created = body_of(response)
    return Tenant(client, created["tenant"]["id"], created["api_key"]["key"])


def own(tenant_id: str, *identities: str) -> None:
    """Give ``identities`` to a tenant as an admin's transfer does: for tests that verify an
    identity in SES directly (out of band), which by itself makes nobody its owner."""
    from chalicelib.services.senders import transfer_identity

    for identity in identities:
        transfer_identity(identity, tenant_id)


@pytest.fixture
def tenant(client: Client, admin_key: str) -> Tenant:
    return make_tenant(client, admin_key, "Acme")


@pytest.fixture
def other_tenant(client: Client, admin_key: str) -> Tenant:
    return make_tenant(client, admin_key, "Globex")


@pytest.fixture
def herald_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set ``HERALD_*`` settings for one test: ``herald_env(ses_max_send_rate="1000")``.

    Settings and the sender's cached templates and senders are re-read after each call and
    again when the test ends (after which monkeypatch restores the environment).
    """

    def apply(**settings: str) -> None:
        for name, value in settings.items():
            monkeypatch.setenv(f"HERALD_{name.upper()}", value)
        get_settings.cache_clear()
        forget_cached_content()

    yield apply
    get_settings.cache_clear()
    forget_cached_content()


@pytest.fixture
def simulator(aws: None) -> Iterator[FeedbackSimulator]:
    """The embedded stack's SES/SMS feedback simulator, answering this test's sends."""
    watching = FeedbackSimulator().install()
    yield watching
    watching.uninstall()
