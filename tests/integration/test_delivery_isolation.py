"""Outgoing HTTP under one deadline per attempt, and each delivery of a callbacks batch on
its own: a tenant's tarpit is cut at the deadline, other tenants' deliveries in the same
batch are posted exactly once even when the batch comes back, and a URL that once made
every attempt raise is normalised at registration and delivered."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.channels.http import post
from chalicelib.local.poller import drain, invoke, sqs_event
from chalicelib.pipeline.messages import HttpDelivery
from chalicelib.pipeline.queues import enqueue, queue_url
from chalicelib.resources import herald_resources
from chalicelib.services.notices import WebhookNotice, notify_webhooks
from chalicelib.settings import Settings, get_settings
from tests.conftest import Tenant, body_of
from tests.feedback_kit import receiver

DRIP = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"  # one byte per DRIP_INTERVAL
DRIP_INTERVAL = 0.25  # far below any per-operation timeout: each read gets its byte


@dataclass
class Tarpit:
    """A receiver that reads the request, then answers one byte at a time."""

    port: int = 0
    connections: int = 0
    bytes_sent: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def tarpit() -> Iterator[Tarpit]:
    state = Tarpit()
    listener = socket.create_server(("127.0.0.1", 0))
    state.port = listener.getsockname()[1]
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        sent = 0
        with conn:
            conn.recv(65536)
            for byte in DRIP:
                if stop.wait(DRIP_INTERVAL):
                    break
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the client hung up: that is the point
                    break
                sent += 1
        state.bytes_sent.append(sent)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            state.connections += 1
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        listener.close()
        thread.join(5)


@pytest.fixture(autouse=True)
def loopback_and_short_deadline(herald_env: Callable[..., None]) -> None:
    """Local receivers on 127.0.0.1 (the embedded stack's setting), a 1 s deadline."""
    herald_env(allow_loopback_callbacks="true", callback_deadline_seconds="1")


def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline(aws: None) -> None:
    with tarpit() as pit:
        outcome = post(f"{pit.url}/slow", b"{}", {"Content-Type": "application/json"})
    assert outcome.status is None
    assert outcome.error is not None and "deadline" in outcome.error
    # Each byte came well within any per-read timeout, yet the attempt was cut after ~1 s:
    # the server got to send only part of its status line.
    assert pit.bytes_sent and pit.bytes_sent[0] < len(DRIP) // 2


def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline(aws: None) -> None:
    """The handshake is under the same deadline: a server that accepts and says nothing."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        outcome = post(f"https://127.0.0.1:{port}/x", b"{}", {})
    assert outcome.status is None
    assert outcome.error is not None and "deadline" in outcome.error


def register(tenant: Tenant, url: str) -> dict[str, Any]:
    response = tenant.call("POST", "/v1/webhooks", {"url": url})
    assert response.status_code == 201, response.body
    return dict(body_of(response))


def test_one_tenants_tarpit_never_makes_another_tenants_delivery_post_twice(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with tarpit() as pit, receiver() as good:
        stalled = register(tenant, f"{pit.url}/hook")
        register(other_tenant, f"{good.url}/hook")
        notices = [
            WebhookNotice(t.id, "message.delivered", datetime(2026, 6, 1, tzinfo=UTC), {"n": 1})
            for t in (tenant, other_tenant)
        ]
        assert notify_webhooks(notices) == 2
        received = client("sqs").receive_message(
            QueueUrl=queue_url("callbacks"), MaxNumberOfMessages=10
        )["Messages"]
        assert len(received) == 2
        batch = sqs_event("callbacks", received)

        first = invoke("callbacks", batch)
        # The same batch again: what SQS does when a worker dies or times out mid-batch.
        again = invoke("callbacks", batch)

    assert first == again == {"batchItemFailures": []}
    assert len(good.requests) == 1  # posted once, not once per receive
    assert pit.connections == 1  # the stalled attempt is not re-run either: it was retried
    attempts = body_of(tenant.call("GET", f"/v1/webhooks/{stalled['id']}/deliveries"))["items"]
    assert [a["outcome"] for a in attempts] == ["retrying"]
    assert "deadline" in attempts[0]["error"]


def test_a_delivery_that_raises_fails_only_its_own_record(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    with receiver() as good:
        register(other_tenant, f"{good.url}/hook")
        notify_webhooks(
            [WebhookNotice(other_tenant.id, "message.delivered", datetime.now(UTC), {"n": 1})]
        )
        broken = {"kind": HttpDelivery.KIND, "tenant_id": tenant.id, "target": "webhook"}  # no ids
        enqueue("callbacks", [broken])
        received = client("sqs").receive_message(
            QueueUrl=queue_url("callbacks"), MaxNumberOfMessages=10
        )["Messages"]
        response = invoke("callbacks", sqs_event("callbacks", received))
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {m["MessageId"] for m in received if json.loads(m["Body"]) == broken}
    assert len(good.requests) == 1


def test_a_non_ascii_url_is_normalised_at_registration_and_delivered(tenant: Tenant) -> None:
    created = register(tenant, "http://93.184.216.34/caf\u00e9?q=\u00fc")
    assert created["url"] == "http://93.184.216.34/caf%C3%A9?q=%C3%BC"
    idna = register(tenant, "https://b\u00fccher.example/x")
    assert idna["url"] == "https://xn--bcher-kva.example/x"
    refused = tenant.call("POST", "/v1/webhooks", {"url": "https://a..b\u00fc/"})
    assert refused.status_code == 422 and body_of(refused)["error"]["field"] == "url"


def test_a_stored_non_ascii_callback_url_is_posted_percent_encoded(tenant: Tenant) -> None:
    """A callback queued before normalisation existed (or by any path) still goes out."""
    with receiver() as hook:
        enqueue(
            "callbacks",
            [
                {
                    "kind": HttpDelivery.KIND,
                    "tenant_id": tenant.id,
                    "target": "callback",
                    "target_id": "cmp_1",
                    "event_type": "delivered",
                    "delivery_id": "msg_1",
                    "body": "event=delivered&when=1",
                    "attempt": 1,
                    "not_before": 0,
                    "url": f"{hook.url}/caf\u00e9",
                }
            ],
        )
        drain(["callbacks"])
    assert [r.path for r in hook.requests] == ["/caf%C3%A9"]


def test_a_campaign_event_callback_is_normalised_too(tenant: Tenant) -> None:
    created = tenant.call(
        "POST",
        "/v1/campaigns",
        {"name": "x", "channel": "email", "event_callback": "http://93.184.216.34/\u00e9"},
    )
    assert created.status_code == 201, created.body
    assert body_of(created)["event_callback"] == "http://93.184.216.34/%C3%A9"


def test_only_ports_80_and_443_unless_the_operator_widens_them(
    tenant: Tenant, herald_env: Callable[..., None]
) -> None:
    for url in ("http://93.184.216.34:8080/x", "https://93.184.216.34:25/", "http://h.invalid:22/"):
        refused = tenant.call("POST", "/v1/webhooks", {"url": url})
        assert refused.status_code == 422, url
        error = body_of(refused)["error"]
        assert error["field"] == "url" and "port" in error["message"]
    for url in ("http://93.184.216.34/x", "https://93.184.216.34/x"):
        register(tenant, url)
    herald_env(callback_ports="[80, 443, 8080]")
    register(tenant, "http://93.184.216.34:8080/x")


def test_a_batch_of_deliveries_always_ends_inside_the_worker_timeout() -> None:
    """Deliveries in a batch run one after another, each under the deadline: the largest
    deadline the settings accept, times the batch size, fits the callbacks worker."""
    spec = herald_resources(get_settings()).queue("callbacks")
    largest = Settings.model_fields["callback_deadline_seconds"].metadata
    ceiling = next(m.le for m in largest if getattr(m, "le", None) is not None)
    assert spec.batch_size * ceiling + 5 <= spec.consumer_timeout_seconds
    with pytest.raises(ValueError):
        Settings(callback_deadline_seconds=ceiling + 1)
