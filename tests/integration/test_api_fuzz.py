"""Schemathesis fuzzes every operation of ``/v1/openapi.json`` (the native API and the seed
002/003 dialects) through Herald's real gate against moto: no request may answer 5xx, and
every 4xx has the error shape the document declares for that operation.

In-process: Chalice's local API Gateway (the one the embedded stack serves over HTTP) is
wrapped as a WSGI app (tests/chalice_wsgi.py), so ~20 requests cost what one HTTP round
trip to the stack would. Derandomised with a fixed example budget: the same cases every run.

Each operation is called twice per example: with the generated path parameters (mostly
unknown ids: the 404 paths) and with the ids of real resources the tenant owns (so the
generated bodies and queries reach the handlers' domain code).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import moto
import pytest
import schemathesis
from chalice.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator
from schemathesis import APIOperation, Case
from schemathesis.checks import not_a_server_error

import app as herald
from chalicelib.api.openapi import openapi_document
from chalicelib.local.provision import provision
from chalicelib.settings import get_settings
from chalicelib.store import tenants
from tests.chalice_wsgi import ChaliceWsgi
from tests.conftest import ROOT, make_tenant
from tests.tenant_world import World, build_world

EXAMPLES = 8
DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(DOCUMENT)))
_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def fuzz_setup() -> Iterator[tuple[ChaliceWsgi, World, str]]:
    """One moto account and one tenant's world for every operation: building the world
    (a campaign sent included) once keeps the whole run near its example budget."""
    with pytest.MonkeyPatch.context() as patch, moto.mock_aws():
        patch.setenv("HERALD_SES_MAX_SEND_RATE", "1000000")
        patch.setenv("HERALD_SIMULATOR_DELAY_SECONDS", "0")
        get_settings.cache_clear()
        provision()
        with Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as client:
            admin_key = tenants.create_admin_key("fuzz")
            tenant = make_tenant(client, admin_key, "Fuzz")
            yield ChaliceWsgi(client), build_world(tenant, "fuzz"), admin_key
    get_settings.cache_clear()


# One pytest test per operation, each with its own id: pytest-xdist schedules tests by
# id, and schemathesis' own ``schema.parametrize()`` gives every operation the same one
# (under xdist only the first then reports, and a failure elsewhere passes unseen).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize(
    "operation", OPERATIONS, ids=[f"{op.method.upper()} {op.path}" for op in OPERATIONS]
)
def test_no_operation_answers_5xx_and_every_4xx_has_the_documented_shape(
    operation: APIOperation, fuzz_setup: tuple[ChaliceWsgi, World, str]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def examples(case: Case) -> None:
        _check(case, *fuzz_setup)

    examples()


def _check(case: Case, wsgi: ChaliceWsgi, world: World, admin_key: str) -> None:
    definition = case.operation.definition.raw
    admin = any("adminKey" in s for s in definition.get("security", []))
    headers = {"Authorization": f"Bearer {admin_key if admin else world.tenant.key}"}
    attempts = [dict(case.path_parameters or {})]
    if case.path_parameters:
        attempts.append(world.path_parameters(case.operation.path))
    for path_parameters in attempts:
        case.path_parameters = path_parameters
        response = case.call(app=wsgi, headers=headers)
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
        if 400 <= response.status_code < 500:
            _assert_documented_error(definition, response.status_code, response.json())


def _assert_documented_error(definition: dict[str, Any], status: int, body: Any) -> None:
    responses = definition["responses"]
    declared = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    if declared is None and status == 429:  # a rate limit may answer any route: one shape
        declared = {"content": {"application/json": {"schema": _ERROR_BODY}}}
    assert declared is not None, f"{status} is not a documented answer"
    schema_ref = declared["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema_ref, "components": DOCUMENT["components"]})
    problems = [error.message for error in validator.iter_errors(body)]
    assert not problems, f"{status} body {body} breaks its documented shape: {problems}"
