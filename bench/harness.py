"""One broadcast through the real pipeline against in-process moto, measured.

``run_broadcast(n)`` builds a tenant with ``n`` contacts (through the contacts store's bulk
path, as an import writes them), a verified sender, a template and a campaign for all
contacts, sends it through the API (``POST /v1/campaigns/{id}/send``), then plays
Lambda: it feeds every queue to its real app.py handler with ``poll_once`` (real event
format, real partial-failure handling) until the campaign is sent and every SES event
(Send and Delivery for each message, from the embedded stack's SES simulator) has been
through the feedback worker. Nothing in Herald is stubbed or bypassed.

Lambda runs the queues' consumers concurrently; here one process runs one invocation at
a time, so the order matters for moto, whose SQS slows down with queue depth: the
planner (control queue) is only polled while the send queue holds fewer than
``SEND_QUEUE_LOW_WATER`` messages, and SES's events are published and their feedback
drained after every send batch. In AWS the queues' depth costs nothing; the order only
keeps moto fast, it changes no call Herald makes.

Measured per invocation: wall time, process CPU time, and (``bench.meter``) the AWS
calls made and the CPU time spent inside them. Herald's own time is the process CPU
time of the invocations minus the CPU time inside AWS calls.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import moto
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends

from bench import moto_speedups
from bench.import_contacts import ROOT, peak_rss_mb  # importing it sets the bench environment
from bench.meter import AwsMeter, Tally
from bench.sampler import Sampler

moto_speedups.install()
os.environ.update(
    # The throughput figure measures Herald, not the SES account's rate (a setting: see
    # bench/README.md for the rate 10 million an hour needs), so pacing must never wait.
    HERALD_SES_MAX_SEND_RATE="1000000",
    HERALD_SIMULATOR_DELAY_SECONDS="0",  # SES reports at once: nothing waits for feedback
)

SERVICES = ("dynamodb", "sqs", "sns", "sesv2", "ses", "events", "scheduler", "s3", "firehose")
SEND_QUEUE_LOW_WATER = 20
IDLE_WAIT_SECONDS = 0.1
TRACED_PAGES = (3, 20)  # trace the first 3 planner pages, then every 20th (tracemalloc is slow)
CONTACT_CHUNK = 1000
UNSUBSCRIBED_EVERY = 100  # every 100th contact has unsubscribed: skipped at planning
SUPPRESSED_EVERY = 250  # every 250th address is on the suppression list: skipped too
SENDER = "news@bench.example.com"
TEMPLATE = {
    "name": "bench",
    "channel": "email",
    "subject": "{{ contact.first_name | default('Hello') }}, your {{ contact.plan }} news",
    "html": (
        "<h1>Hi {{ contact.first_name | default('there') }}</h1>"
        "<p>Your plan: {{ contact.plan }}. Read more on "
        '<a href="https://news.bench.example.com/latest">our site</a>.</p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    ),
}


@dataclass
class Invocations:
    """What the handler invocations of one queue added up to."""

    count: int = 0
    messages: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)  # AWS calls made inside them
    aws_cpu_seconds: float = 0.0  # set when the run ends (AwsMeter.cpu_seconds)
    max_traced_mb: float = 0.0  # peak Python allocation inside one invocation (if traced)

    @property
    def herald_cpu_seconds(self) -> float:
        return max(0.0, self.cpu_seconds - self.aws_cpu_seconds)


@dataclass
class BroadcastRun:
    """Everything measured in one broadcast."""

    audience: int
    eligible: int
    setup_seconds: float
    pipeline_seconds: float
    pipeline_cpu_seconds: float
    invocations: dict[str, Invocations]
    herald: Tally  # the calls made inside handler invocations (Herald + Lambda's polling)
    provider: Tally  # the calls SES makes for us: publishing its events to SNS or Firehose
    ses_messages: int
    duplicate_messages: int
    dead_letters: int
    campaign: dict[str, Any]  # GET /v1/campaigns/{id} after the run
    counts: dict[str, int]  # the campaign's counters (sent, delivered, skipped.<reason>…)
    peak_rss_mb: float
    aws_cpu_ms: dict[str, float]  # mean CPU of one call, by operation (moto + botocore)

    @property
    def sent(self) -> int:
        return max(1, self.counts.get("sent", 0))


@contextmanager
def _aws() -> Iterator[None]:
    with moto.mock_aws():
        from chalicelib.aws import reset_clients
        from chalicelib.pipeline.queues import forget_queue_urls
        from chalicelib.settings import get_settings

        get_settings.cache_clear()
        reset_clients()
        forget_queue_urls()
        try:
            yield
        finally:
            reset_clients()
            forget_queue_urls()


def run_broadcast(
    audience: int, *, trace_planner: bool = False, sampler: Sampler | None = None
) -> BroadcastRun:
    """Send one broadcast to ``audience`` contacts and measure it (see the module docs);
    ``sampler`` samples the stacks from the ``/send`` request until every queue is empty."""
    with _aws():
        from chalicelib.local.provision import provision
        from chalicelib.local.ses_simulator import FeedbackSimulator
        from chalicelib.settings import get_settings
        from chalicelib.store.counters import read_counts

        settings = get_settings()
        started = time.perf_counter()
        provision()
        tenant_id, key = _tenant()
        eligible = _contacts(tenant_id, audience)
        meter = AwsMeter(settings.region).install(SERVICES)
        simulator = FeedbackSimulator().install()
        try:
            with _api() as http:
                campaign_id = _campaign(http, key)
                setup_seconds = time.perf_counter() - started
                began, began_cpu = time.perf_counter(), time.process_time()
                with sampler.sampling() if sampler else nullcontext():
                    with meter.attributed("herald"):
                        http.post(f"/v1/campaigns/{campaign_id}/send", key, {})
                    invocations = _run_pipeline(meter, simulator, trace_planner)
                pipeline_seconds = time.perf_counter() - began
                pipeline_cpu_seconds = time.process_time() - began_cpu
                campaign = http.get(f"/v1/campaigns/{campaign_id}", key)
                counts = read_counts(tenant_id, campaign_id)
        finally:
            simulator.uninstall()
            meter.uninstall()
        sent, duplicates = _ses_outbox(settings.region)
        return BroadcastRun(
            audience=audience,
            eligible=eligible,
            setup_seconds=round(setup_seconds, 1),
            pipeline_seconds=pipeline_seconds,
            pipeline_cpu_seconds=pipeline_cpu_seconds,
            invocations=invocations,
            herald=meter.tally("herald"),
            provider=meter.tally("ses"),
            ses_messages=sent,
            duplicate_messages=duplicates,
            dead_letters=_dead_letters(),
            campaign=campaign,
            counts=counts,
            peak_rss_mb=peak_rss_mb(),
            aws_cpu_ms=meter.mean_cpu_ms_by_operation(),
        )


# -- set-up -------------------------------------------------------------------------------
def verified_sender(address: str, tenant_id: str) -> None:
    """Verify ``address`` in SES directly (moto: verified at once) and, as it was verified
    outside Herald, give it to the tenant as an admin would."""
    from chalicelib.aws import client
    from chalicelib.services.senders import transfer_identity

    client("ses").verify_email_identity(EmailAddress=address)
    transfer_identity(address, tenant_id)


def _tenant() -> tuple[str, str]:
    from chalicelib.store import tenants

    tenant, _, key = tenants.create_tenant("Bench")
    verified_sender(SENDER, tenant.id)
    return tenant.id, key


def _contacts(tenant_id: str, audience: int) -> int:
    """Write ``audience`` contacts as an import chunk does; returns how many may be sent to."""
    from chalicelib.domain import clock
    from chalicelib.domain.contacts import ContactFields, identity_keys, new_contact
    from chalicelib.domain.imports import ChunkPlan
    from chalicelib.store.contacts import write_import_plan
    from chalicelib.store.suppression import suppress

    now = clock.now()
    eligible = 0
    for start in range(0, audience, CONTACT_CHUNK):
        plan = ChunkPlan()
        for n in range(start, min(audience, start + CONTACT_CHUNK)):
            unsubscribed = n % UNSUBSCRIBED_EVERY == UNSUBSCRIBED_EVERY - 1
            suppressed = n % SUPPRESSED_EVERY == 0
            fields = ContactFields(
                email=f"reader{n}@example.com",
                first_name=f"Reader {n}",
                attributes={"plan": ("free", "pro", "team")[n % 3]},
                status="unsubscribed" if unsubscribed else "subscribed",
            )
            contact = new_contact(fields, now)
            plan.created[contact.id] = contact
            plan.claimed.update(dict.fromkeys(identity_keys(contact), contact.id))
            if suppressed:
                suppress(tenant_id, str(contact.email), "bounced", now)
            eligible += not unsubscribed and not suppressed
        write_import_plan(tenant_id, plan)
    return eligible


class _Http:
    """The API through Chalice's test client: the same gate and handlers as in AWS."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        response = self._client.http.post(path, headers=headers, body=json.dumps(body))
        return self._ok(response)

    def get(self, path: str, key: str) -> dict[str, Any]:
        response = self._client.http.get(path, headers={"Authorization": f"Bearer {key}"})
        return self._ok(response)

    @staticmethod
    def _ok(response: Any) -> dict[str, Any]:
        if response.status_code >= 300:
            raise RuntimeError(f"API said {response.status_code}: {response.body!r}")
        return json.loads(response.body) if response.body else {}


@contextmanager
def _api() -> Iterator[_Http]:
    from chalice.test import Client

    import app as herald

    with Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield _Http(client)


def _campaign(http: _Http, key: str) -> str:
    sender = http.post("/v1/senders", key, {"channel": "email", "from_email": SENDER})
    template = http.post("/v1/templates", key, TEMPLATE)
    campaign = http.post(
        "/v1/campaigns",
        key,
        {
            "name": "Bench broadcast",
            "channel": "email",
            "audience": {"all_contacts": True},
            "template_ids": [template["id"]],
            "sender_ids": [sender["id"]],
        },
    )
    return str(campaign["id"])


# -- playing Lambda -------------------------------------------------------------------------
def _run_pipeline(meter: AwsMeter, simulator: Any, trace_planner: bool) -> dict[str, Invocations]:
    """Run every queue until all are empty; returns what each queue's invocations took.

    Calls made by the invocations are tallied as "herald"; SES publishing its events (to
    SNS, or to Firehose in objects of the stream's buffer size) as "ses".
    """
    from chalicelib.settings import QUEUE_ROLES

    invocations: dict[str, Invocations] = {role: Invocations() for role in QUEUE_ROLES}
    buffered = _firehose_buffer_bytes()
    while True:
        with meter.attributed("herald"):
            handled = _invoke(meter, "send", invocations, trace=False)
        with meter.attributed("ses"):
            if handled == 0 or not buffered or simulator.pending_event_bytes() >= buffered:
                simulator.publish_due(everything=True)
        with meter.attributed("herald"):
            while _invoke(meter, "feedback", invocations, trace=False):
                handled += 1
            for role in ("callbacks", "triggers"):
                handled += _invoke(meter, role, invocations, trace=False)
            if handled == 0 or _depth("send") < SEND_QUEUE_LOW_WATER:
                pages = invocations["control"].count
                first, every = TRACED_PAGES
                trace = trace_planner and (pages < first or pages % every == 0)
                handled += _invoke(meter, "control", invocations, trace=trace)
        if handled == 0:
            if _all_empty():
                for tally in invocations.values():
                    tally.aws_cpu_seconds = meter.cpu_seconds(tally.calls)
                return invocations
            time.sleep(IDLE_WAIT_SECONDS)  # only delayed messages left: wait for them


def _firehose_buffer_bytes() -> int:
    """How many bytes of SES's events to gather before putting them on the stream: with
    transport firehose, the stream's S3 buffer size (Firehose writes an object per 1 MiB
    or per buffer interval, and a broadcast fills 1 MiB in well under a second at volume),
    so the worker reads objects the size AWS writes; 0 with SNS (an event each)."""
    from chalicelib.resources import herald_resources
    from chalicelib.settings import get_settings

    stream = herald_resources(get_settings()).configuration_set.stream
    return 0 if stream is None else stream.buffer_mib * 1024 * 1024


def _invoke(meter: AwsMeter, role: Any, invocations: dict[str, Invocations], trace: bool) -> int:
    from chalicelib.local.poller import poll_once

    wall, cpu, calls = time.perf_counter(), time.process_time(), meter.calls_so_far()
    if trace:
        tracemalloc.start()
    try:
        received = poll_once(role, redeliver_failures=True)
    finally:
        traced_peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    if received:
        tally = invocations[role]
        tally.count += 1
        tally.messages += received
        tally.wall_seconds += time.perf_counter() - wall
        tally.cpu_seconds += time.process_time() - cpu
        tally.calls.update(meter.calls_so_far() - calls)
        tally.max_traced_mb = max(tally.max_traced_mb, traced_peak / 1e6)
    return received


def _queues() -> dict[str, Any]:
    from chalicelib.settings import get_settings

    settings = get_settings()
    queues: dict[str, Any] = sqs_backends[DEFAULT_ACCOUNT_ID][settings.region].queues
    return queues


def _depth(role: Any) -> int:
    from chalicelib.settings import get_settings

    queue = _queues()[get_settings().queue_name(role)]
    return len(queue._messages)


def _all_empty() -> bool:
    return all(len(q._messages) == 0 for q in _queues().values() if not q.name.endswith("-dlq"))


def _dead_letters() -> int:
    return sum(len(q._messages) for q in _queues().values() if q.name.endswith("-dlq"))


def _ses_outbox(region: str) -> tuple[int, int]:
    """How many messages moto's SES accepted, and how many went to an address twice."""
    sent = ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages
    recipients = Counter(
        address
        for message in sent
        for address in {parseaddr(d)[1].lower() for d in message.destinations}
    )
    return len(sent), sum(n - 1 for n in recipients.values() if n > 1)
