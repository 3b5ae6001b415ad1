"""Which credentials Herald's boto3 clients sign with: the default chain in AWS, fixed
fake ones for an emulator on this machine (the admin CLI next to ``make run`` works in a
shell without AWS credentials, and real keys never reach moto)."""

from __future__ import annotations

import pytest

from chalicelib.aws import signing_credentials

FAKE = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:41235", "http://localhost:5000", "http://[::1]:4566", "http://127.0.0.2"],
)
def test_an_endpoint_on_this_machine_is_signed_for_with_fake_credentials(endpoint: str) -> None:
    assert signing_credentials(endpoint) == FAKE


@pytest.mark.parametrize(
    "endpoint",
    [None, "", "https://sqs.eu-west-1.amazonaws.com", "http://10.0.0.5:4566", "http://moto:5000"],
)
def test_aws_and_other_hosts_use_the_default_credential_chain(endpoint: str | None) -> None:
    assert signing_credentials(endpoint) == {}
