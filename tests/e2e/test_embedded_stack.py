"""The embedded stack over real HTTP and real AWS calls: what `make run` gives a developer.

One stack runs in this process on free ports (next to any `make run`); the message kinds
below are registered in-process, and the stack's pollers run handlers in-process, so they
see them. The `python -m chalicelib.local` entrypoint is also run once as a subprocess,
and stopped with Ctrl-C (SIGINT) as a developer would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from chalicelib.local.runner import EmbeddedStack
from chalicelib.settings import get_settings
from tests.e2e.kit import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONSUMED, SCHEDULED = "test.e2e.consumed", "test.e2e.scheduled"
seen: dict[str, list[dict[str, Any]]] = {CONSUMED: [], SCHEDULED: []}


def _consumed(message: dict[str, Any]) -> None:
    seen[CONSUMED].append(message)


def _scheduled(message: dict[str, Any]) -> None:
    seen[SCHEDULED].append(message)


def port_of(url: str) -> int:
    return int(urlsplit(url).port or 0)


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def can_bind(port: int) -> bool:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as any server does
        try:
            server.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def aws(stack: EmbeddedStack, service: str) -> Any:
    """A plain boto3 client on the stack's endpoint, as an outside tool would make."""
    return boto3.client(
        service,
        endpoint_url=stack.aws_endpoint,
        region_name=get_settings().region,
        aws_access_key_id="outside",
        aws_secret_access_key="outside",
    )


def get(stack: EmbeddedStack, path: str, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{stack.api_url}{path}", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    """One stack for the module; after it stops, nothing of it may be left behind."""
    endpoint_before = os.environ.get("HERALD_AWS_ENDPOINT_URL")
    running = EmbeddedStack(port=0).start()
    import app as herald  # imported once the stack has set the settings, as the poller does

    with pytest.MonkeyPatch.context() as patch:  # two test kinds in app.py's table
        for role, kind, handler in (
            ("feedback", CONSUMED, _consumed),
            ("control", SCHEDULED, _scheduled),
        ):
            consumer = herald.QUEUE_CONSUMERS[role]
            handlers = {**consumer.handlers, kind: handler}
            patch.setitem(herald.QUEUE_CONSUMERS, role, replace(consumer, handlers=handlers))
        yield from _serving(running, endpoint_before)


def _serving(running: EmbeddedStack, endpoint_before: str | None) -> Iterator[EmbeddedStack]:
    """Yield the running stack; once stopped, check it left nothing behind."""
    api_port, moto_port, moto_pid = (
        port_of(running.api_url),
        port_of(running.aws_endpoint),
        running.moto_pid,
    )
    yield running
    running.stop()
    assert moto_pid is not None and not process_exists(moto_pid)
    assert not is_listening(api_port) and can_bind(api_port)
    assert not is_listening(moto_port)
    assert os.environ.get("HERALD_AWS_ENDPOINT_URL") == endpoint_before
    assert get_settings().aws_endpoint_url == endpoint_before  # in-process moto works again


def test_request_without_key_gets_401_with_the_error_shape(stack):
    response = get(stack, "/v1/api-keys")

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "unauthorized",
            "message": "missing bearer API key",
            "field": "Authorization",
        }
    }


def test_demo_tenant_key_lists_its_keys(stack):
    response = get(stack, "/v1/api-keys", key=stack.api_key)

    assert response.status_code == 200
    assert [k["prefix"] for k in response.json()["items"]] == [stack.api_key[: len("hk_") + 12]]


def test_admin_key_creates_a_tenant_whose_key_works(stack):
    created = requests.post(
        f"{stack.api_url}/v1/admin/tenants",
        json={"name": "Initech"},
        headers={"Authorization": f"Bearer {stack.admin_key}"},
        timeout=10,
    )

    assert created.status_code == 201
    body = created.json()
    assert body["tenant"]["name"] == "Initech"
    assert body["tenant"]["id"] != stack.tenant_id
    assert get(stack, "/v1/api-keys", key=body["api_key"]["key"]).status_code == 200


def test_message_put_on_a_queue_is_consumed_by_its_poller(stack):
    token = uuid.uuid4().hex
    sqs = aws(stack, "sqs")
    url = sqs.get_queue_url(QueueName=get_settings().queue_name("feedback"))["QueueUrl"]

    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": CONSUMED, "token": token}))

    assert eventually(lambda: [m for m in seen[CONSUMED] if m["token"] == token])
    assert eventually(lambda: not sqs.receive_message(QueueUrl=url).get("Messages"))


def test_due_schedule_fires_into_the_control_queue_and_its_handler(stack):
    token = uuid.uuid4().hex
    settings = get_settings()
    berlin_a_minute_ago = datetime.now(UTC) + timedelta(hours=1) - timedelta(minutes=1)
    scheduler = aws(stack, "scheduler")

    scheduler.create_schedule(
        Name=f"e2e-{token}",
        GroupName=settings.schedule_group_name,
        ScheduleExpression=f"at({berlin_a_minute_ago:%Y-%m-%dT%H:%M:%S})",
        ScheduleExpressionTimezone="Etc/GMT-1",  # UTC+1 all year (POSIX signs are inverted)
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": settings.queue_arn("control"),
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps({"kind": SCHEDULED, "token": token}),
        },
    )

    def schedule_names() -> list[str]:
        listed = scheduler.list_schedules(GroupName=settings.schedule_group_name)["Schedules"]
        return [s["Name"] for s in listed]

    assert eventually(lambda: [m for m in seen[SCHEDULED] if m["token"] == token])
    assert eventually(lambda: f"e2e-{token}" not in schedule_names())  # DELETE after completion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_make_run_entrypoint_serves_until_ctrl_c_and_leaves_nothing_behind(tmp_path):
    port, state_file, log = free_port(), tmp_path / "local.json", tmp_path / "run.log"
    env = {**os.environ, "HERALD_PORT": str(port), "HERALD_LOCAL_STATE": str(state_file)}
    with log.open("w") as output:  # a file, not a pipe: a full pipe would block the runner
        runner = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert eventually(state_file.exists, timeout=60), "the runner never became ready"
        state = json.loads(state_file.read_text())
        assert state["api_url"] == f"http://127.0.0.1:{port}"
        listed = requests.get(
            f"{state['api_url']}/v1/api-keys",
            headers={"Authorization": f"Bearer {state['api_key']}"},
            timeout=10,
        )
        assert listed.status_code == 200
        assert set(state) == {
            "api_url",
            "admin_key",
            "api_key",
            "tenant_id",
            "aws_endpoint",
            "telegram_api_url",
        }

        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=15)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()

    output = log.read_text()
    assert runner.returncode == 0, output
    assert "stopped api" in output
    assert "stopped moto" in output
    assert not state_file.exists()
    assert not is_listening(port)
    assert not is_listening(port_of(state["aws_endpoint"]))
