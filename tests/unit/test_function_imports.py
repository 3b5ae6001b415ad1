"""Each Lambda function imports only what it runs, and runs what the whole app wires.

app.py runs one block per function: in Lambda only the block of the function whose name
Lambda sets (``AWS_LAMBDA_FUNCTION_NAME``), outside it every block. Each case below is a
fresh interpreter, as a cold start, importing app.py as one function; what it wired is
compared with what the whole app (this process, as ``chalice package`` and every other
test import it) wires, which the integration tests drive.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import app as herald
from chalicelib.settings import Settings, get_settings
from tests.fresh_python import probe

HANDLERS = herald.resources.handlers
UNSUBSCRIBE_HOOKS = [
    "chalicelib.pipeline.feedback.count_unsubscribe",
    "chalicelib.services.enrolments.exit_on_unsubscribe",
]
CONTACT_EVENT_REACTORS = [
    "chalicelib.pipeline.segment_triggers.on_contact_event",
    "chalicelib.services.enrolments.on_event",
]
_PROBE = """
import json, sys
import app
modules = sorted(sys.modules)  # before the probe's own imports
from chalicelib.domain.unsubscribe import unsubscribe_hooks
from chalicelib.pipeline.events import _REACTORS

def name(function):
    return f"{function.__module__}.{function.__qualname__}"

print(json.dumps({
    "modules": modules,
    "consumers": {
        role: {kind: name(handler) for kind, handler in consumer.handlers.items()}
        for role, consumer in app.QUEUE_CONSUMERS.items()
    },
    "tick_jobs": {job: name(run) for job, run in app.TICK_JOBS.items()},
    "routes": sorted(app.app.routes),
    "unsubscribe_hooks": [name(hook) for hook in unsubscribe_hooks()],
    "contact_event_reactors": sorted(_REACTORS),
}))
"""


def name(function: Any) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def import_as(function_name: str | None) -> dict[str, Any]:
    """What a fresh interpreter wired after ``import app`` as the Lambda function named so."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    env.update({"HERALD_STAGE": get_settings().stage, "AWS_DEFAULT_REGION": "us-east-1"})
    if function_name is not None:
        env["AWS_LAMBDA_FUNCTION_NAME"] = function_name
    return probe(_PROBE, env)


def whole_app() -> dict[str, Any]:
    """What this process's ``import app`` (no function named: every block) wired; its
    hooks are ``UNSUBSCRIBE_HOOKS`` and ``CONTACT_EVENT_REACTORS`` (tests may add their own
    in this process)."""
    return {
        "consumers": {
            role: {kind: name(handler) for kind, handler in consumer.handlers.items()}
            for role, consumer in herald.QUEUE_CONSUMERS.items()
        },
        "tick_jobs": {job: name(run) for job, run in herald.TICK_JOBS.items()},
        "routes": sorted(herald.app.routes),
    }


def loads(wired: dict[str, Any], package: str) -> bool:
    return any(m == package or m.startswith(f"{package}.") for m in wired["modules"])


@pytest.mark.parametrize("role", [spec.role for spec in herald.resources.queues])
def test_a_queue_worker_imports_no_api_and_wires_its_queue_as_the_whole_app_does(role):
    whole = whole_app()

    wired = import_as(get_settings().function_name(herald.resources.queue(role).handler))

    assert not loads(wired, "chalicelib.api")
    assert wired["routes"] == []
    assert wired["consumers"] == {role: whole["consumers"][role]}
    assert wired["tick_jobs"] == {}
    assert wired["unsubscribe_hooks"] == []
    # The trigger worker runs the contact-event reactors; no other function records events.
    reactors = CONTACT_EVENT_REACTORS if role == "triggers" else []
    assert wired["contact_event_reactors"] == reactors


def test_the_api_function_wires_every_route_and_the_unsubscribe_hooks_and_no_worker():
    whole = whole_app()

    wired = import_as(get_settings().function_name(herald.resources.api_handler))

    assert wired["routes"] == whole["routes"]
    assert len(wired["routes"]) > 50
    assert wired["unsubscribe_hooks"] == UNSUBSCRIBE_HOOKS
    assert wired["contact_event_reactors"] == []
    assert (wired["consumers"], wired["tick_jobs"]) == ({}, {})
    workers_only = ("send.batch", "planner", "flows.worker", "events", "replies")
    for worker_only in (f"chalicelib.pipeline.{module}" for module in workers_only):
        assert not loads(wired, worker_only), worker_only


def test_the_tick_runs_every_job_and_imports_no_api():
    whole = whole_app()

    wired = import_as(get_settings().function_name(herald.resources.tick_handler))

    assert wired["tick_jobs"] == whole["tick_jobs"]
    assert (wired["routes"], wired["consumers"]) == ([], {})
    assert not loads(wired, "chalicelib.api")


def test_the_status_log_forwarder_imports_no_api_and_no_queue_handler():
    wired = import_as(get_settings().function_name(herald.resources.sms_status_logs.handler))

    assert loads(wired, "chalicelib.pipeline.status_logs")
    assert not loads(wired, "chalicelib.api")
    assert (wired["routes"], wired["consumers"], wired["tick_jobs"]) == ([], {}, {})


@pytest.mark.parametrize(
    "function_name", [None, "herald-dev", "herald-dev-renamed_by_hand", "someone-elses"]
)
def test_outside_lambda_or_under_a_name_this_stage_did_not_give_every_function_is_wired(
    function_name,
):
    # chalice package imports app.py with no function name and must see every handler; a
    # function renamed by hand still works, at the whole app's cold start.
    wired = import_as(function_name)

    assert {key: wired[key] for key in whole_app()} == whole_app()
    assert wired["unsubscribe_hooks"] == UNSUBSCRIBE_HOOKS
    assert wired["contact_event_reactors"] == CONTACT_EVENT_REACTORS
    assert loads(wired, "chalicelib.api")


def test_the_handler_is_the_function_name_without_the_stage_prefix():
    assert Settings(stage="qa", lambda_function="herald-qa-send_worker").lambda_handler == (
        "send_worker"
    )
    assert Settings(stage="qa", lambda_function="herald-prod-send_worker").lambda_handler is None
    assert Settings(stage="qa").lambda_handler is None


def test_every_function_infra_deploys_is_a_handler_app_py_knows():
    assert set(HANDLERS) == {
        "api_handler",
        *(spec.handler for spec in herald.resources.queues),
        "tick",
        "sms_status_forwarder",
    }
    for handler in HANDLERS:
        assert callable(getattr(herald, "app" if handler == "api_handler" else handler))
