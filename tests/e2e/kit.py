"""What the end-to-end tests share: polling for an outcome and the demo tenant's API."""

from __future__ import annotations

import email
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import requests

from chalicelib.local.runner import EmbeddedStack
from chalicelib.settings import get_settings


@contextmanager
def stack_with(settings: Mapping[str, str]) -> Iterator[EmbeddedStack]:
    """An embedded stack started with the ``HERALD_*`` variables in ``settings`` set (a
    test module's fast timings), stopped and the variables restored on exit."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        with EmbeddedStack(port=0) as running:
            yield running


def eventually(check: Callable[[], Any], timeout: float = 40.0, interval: float = 0.2) -> Any:
    """The first truthy result of ``check``, polled until ``timeout`` seconds have passed
    (then its last result, so the assertion shows what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def moto_state(stack: EmbeddedStack) -> dict[str, Any]:
    """moto's own record of everything (``/moto-api/data.json``): what SES and SNS sent."""
    response = requests.get(f"{stack.aws_endpoint}/moto-api/data.json", timeout=60)
    data: dict[str, Any] = response.json()
    return data


def emails_from(state: dict[str, Any], sender: str) -> Counter[str]:
    """How many messages from ``sender`` each address got, as moto's SES recorded them."""
    return Counter(
        str(email.message_from_string(m["raw_data"])["To"])
        for m in state.get("ses", {}).get("RawMessage", [])
        if sender in str(m.get("source", ""))
    )


class Api:
    """The embedded stack's demo tenant over HTTP."""

    def __init__(self, stack: EmbeddedStack, timeout: float = 30.0) -> None:
        self.base = stack.api_url
        self.headers = {"Authorization": f"Bearer {stack.api_key}"}
        self.timeout = timeout
        self._admin = {"Authorization": f"Bearer {stack.admin_key}"}
        self._tenant_id = stack.tenant_id

    def verify_and_own(self, stack: EmbeddedStack, address: str) -> None:
        """Verify ``address`` in SES as its owner would (outside Herald), then own it."""
        boto3.client(
            "ses",
            endpoint_url=stack.aws_endpoint,
            region_name=get_settings().region,
            aws_access_key_id="outside",
            aws_secret_access_key="outside",
        ).verify_email_identity(EmailAddress=address)
        self.own(address)

    def own(self, identity: str) -> None:
        """Give the demo tenant an identity verified in SES out of band (an admin's transfer)."""
        body = {"identity": identity, "tenant_id": self._tenant_id}
        response = requests.post(
            f"{self.base}/v1/admin/identities/transfer",
            json=body,
            headers=self._admin,
            timeout=self.timeout,
        )
        assert response.status_code == 200, response.text

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """The raw response (``body`` is sent as JSON)."""
        if body is not None:
            kwargs["json"] = body
        return requests.request(
            method, f"{self.base}{path}", headers=self.headers, timeout=self.timeout, **kwargs
        )

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a successful response (None when it has no body)."""
        response = self.call(method, path, body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def __call__(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        """The JSON of a response that has exactly the ``expect`` status."""
        response = self.call(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()
