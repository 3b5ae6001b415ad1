"""From measured broadcasts to the figures in bench/README.md (each defined there).

Per recipient always means per message sent (the campaign's ``sent`` count): contacts
skipped at planning (unsubscribed, suppressed) are in the audience but get no message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bench import prices

if TYPE_CHECKING:  # only types: importing the harness patches moto and sets the environment
    from bench.harness import BroadcastRun, Invocations
    from bench.meter import Tally

# Assumed in-region latency of one call, for the billed-duration estimate (moto answers
# in-process, so its times say nothing about the network). Conservative round numbers:
# DynamoDB "single-digit milliseconds", SQS and SNS tens, an SES send tens of ms.
LATENCY_SECONDS = {
    "dynamodb": 0.006,
    "sqs": 0.010,
    "sns": 0.020,
    "sesv2": 0.040,
    "ses": 0.040,
    "events": 0.020,
    "scheduler": 0.030,
    "s3": 0.030,
}


@dataclass(frozen=True)
class Figure:
    """One line of the benchmark's table: ``figures.<key>`` in results.json, defined in
    full in bench/README.md ("The figures")."""

    key: str
    target: tuple[Literal["<=", ">="], float] | None  # None: reported, never judged
    method: str  # how the value is measured, in a line (results.json carries it)

    def judged(self, value: float | None) -> dict[str, Any]:
        """The figure as results.json keeps it; a value of None was not measured in this
        run (``--quick``, ``--no-package``) or has no measurement wired yet."""
        met = None
        if value is not None and self.target is not None:
            comparison, target = self.target
            met = value <= target if comparison == "<=" else value >= target
        target_text = "report only" if self.target is None else " ".join(map(str, self.target))
        return {"value": value, "target": target_text, "met": met, "method": self.method}


# Every figure of the table, in its order. A new figure is one line here, and its value is
# one key of the "figures" of a section in bench/__main__.py (SECTIONS) or of
# ``broadcast_figures`` below.
FIGURES: dict[str, Figure] = {
    figure.key: figure
    for figure in (
        Figure(
            "overhead_usd_per_million",
            ("<=", 2.00),
            "AWS list prices of every billed call and unit of the 100,000 broadcast "
            "(DynamoDB units sized per item, Lambda duration = Herald CPU + stated latency "
            "per call), per 1,000,000 emails, SES itself left out",
        ),
        Figure(
            "aws_calls_per_recipient",
            ("<=", 3.0),
            "every AWS call Herald and Lambda's queue polling made in the 100,000 "
            "broadcast, counted by botocore hooks, per message sent",
        ),
        Figure(
            "herald_ms_per_recipient",
            ("<=", 0.5),
            "Herald's CPU outside AWS calls in every invocation, by a sampling profiler "
            "(bench/sampler.py: thread stacks and CPU clocks every 0.5 ms), broadcasts to "
            "2,000 contacts after a warm-up, median of 3, per message sent",
        ),
        Figure(
            "plan_seconds_per_10m",
            ("<=", 300),
            "planning chains run in parallel threads against moto (bench/planning.py): CPU "
            "per full page measured, plus the page's calls at stated latencies and the SQS "
            "hand-off, projected to 10,000,000 recipients in settings.plan_chains chains",
        ),
        Figure(
            "time_to_account_rate_s",
            ("<=", 60),
            "a model (bench/planning.py): first batches after the start and the chains' "
            "first pages, then Lambda's SQS scaling (5, +5/s) up to the send workers a "
            "1,000/s rate needs, each at min(pacing, latency-bound, CPU-bound) rate",
        ),
        Figure(
            "cold_import_ms",
            ("<=", 250),
            "the slowest Lambda function's median `import app` (its AWS_LAMBDA_FUNCTION_NAME "
            "set: app.py imports that function's modules only) in 7 fresh interpreters from "
            "the deployment package unpacked as Lambda unpacks it, timed inside the child",
        ),
        Figure(
            "recipients_per_second",
            None,
            "messages sent / wall time of the 100,000 broadcast, one process with "
            "in-process moto: bounded by moto, not Herald",
        ),
        Figure(
            "max_item_writes_per_10k",
            ("<=", 250),
            "most writes any one DynamoDB item took in the 100,000 broadcast, per 10,000 "
            "recipients",
        ),
        Figure(
            "scaling_ratio",
            ("<=", 1.25),
            "CPU ms per recipient of the whole broadcast at 100,000 / the same at 10,000",
        ),
        Figure(
            "planner_peak_rss_mb",
            ("<=", 200),
            "RSS of a fresh `import app` + the peak tracemalloc of one planner invocation",
        ),
        Figure(
            "package_mb",
            ("<=", 10),
            "zipped `chalice package` output: deployment.zip + layer-deployment.zip",
        ),
        Figure(
            "flow_step_aws_calls",
            ("<=", 2),
            "AWS calls per non-send flow step, Lambda's polling included (bench/flows.py)",
        ),
        Figure(
            "flow_send_step_aws_calls",
            ("<=", 3.5),
            "AWS calls a send node adds to a walk: the walk trigger → send → delay less "
            "the same walk without the send (bench/flows.py)",
        ),
        Figure(
            "flow_overhead_usd_per_million_steps",
            ("<=", 3.00),
            "both flows' calls priced as the broadcast's, per million steps (bench/flows.py)",
        ),
        Figure(
            "timer_sweep_per_second",
            (">=", 2000),
            "due entries one flow.sweep handler queues per CPU second, moto included "
            "(bench/flows.py)",
        ),
        Figure(
            "timer_lateness_p99_s",
            ("<=", 60),
            "a model from measured rates: tick offset + a shard's sweep + the queue's "
            "drain by 50 flow workers (bench/flows.py)",
        ),
        Figure(
            "segment_entry_p95_ms",
            ("<=", 5000),
            "PATCH of a contact over HTTP until its segment state is 'in', on the embedded "
            "stack (moto in a child process, local pollers), 95th percentile "
            "(bench/segment_entry.py)",
        ),
    )
}


def judged(values: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """Every registered figure in the registry's order, with its target and method; a
    figure no part of the run measured is there with the value None."""
    unknown = set(values) - set(FIGURES)
    if unknown:
        raise KeyError(f"figures not in bench.figures.FIGURES: {sorted(unknown)}")
    return {key: figure.judged(values.get(key)) for key, figure in FIGURES.items()}


def calls_per_recipient(tally: Tally, sent: int) -> dict[str, float]:
    return {name: round(n / sent, 4) for name, n in sorted(tally.calls.items())}


def lambda_seconds(run: BroadcastRun, memory_mb: int, concurrency: int) -> dict[str, float]:
    """Billed Lambda duration, estimated for AWS: Herald's CPU time plus ``LATENCY_SECONDS``
    per call (the sender's per-recipient calls run ``concurrency`` at a time). The wall
    time measured here is reported beside it, but says little: in-process moto answers
    without a network, on a machine other work shares."""
    measured = sum(i.wall_seconds for i in run.invocations.values())
    waiting = 0.0
    for name, count in run.herald.calls.items():
        service = name.split(".")[0]
        pooled = run.herald.pooled_calls.get(name, 0)
        latency = LATENCY_SECONDS.get(service, 0.02)
        waiting += (count - pooled) * latency + pooled * latency / concurrency
    estimated = sum(i.herald_cpu_seconds for i in run.invocations.values()) + waiting
    gigabytes = memory_mb / 1024
    return {
        "measured_seconds": round(measured, 1),
        "estimated_aws_seconds": round(estimated, 1),
        "gb_seconds": round(estimated * gigabytes, 1),
    }


def cost(run: BroadcastRun, memory_mb: int, concurrency: int) -> dict[str, Any]:
    """Every billed item of the broadcast, priced; SES's own price left out."""
    herald, ses_side = run.herald, run.provider
    sent = run.sent
    billed = Counter(herald.billed_requests)
    sqs_requests = sum(n for name, n in billed.items() if name.startswith("sqs."))
    sns_publishes = billed.get("sns.Publish", 0) + ses_side.billed_requests.get("sns.Publish", 0)
    invocations = sum(i.count for i in run.invocations.values())
    duration = lambda_seconds(run, memory_mb, concurrency)
    items = {
        "dynamodb_writes": prices.usd(
            "dynamodb_write_unit", herald.write_units + herald.index_write_units
        ),
        "dynamodb_reads": prices.usd("dynamodb_read_unit", herald.read_units),
        "sqs": prices.usd("sqs_request", sqs_requests),
        "sns": prices.usd("sns_publish", sns_publishes),
        "eventbridge": prices.usd("eventbridge_event", billed.get("events.PutEvents", 0)),
        # SES's events through Firehose: the ingestion (SES's puts), the objects Firehose
        # writes (S3 PUTs) and the feedback worker's reads of them (S3 GETs, Herald's).
        "firehose": prices.usd("firehose_gb", ses_side.firehose_billed_kb / 1024**2),
        "s3": prices.usd("s3_put", ses_side.firehose_objects)
        + prices.usd("s3_get", herald.calls.get("s3.GetObject", 0)),
        "scheduler": prices.usd(
            "scheduler_invocation", herald.calls.get("scheduler.CreateSchedule", 0)
        ),
        "lambda_requests": prices.usd("lambda_request", invocations),
        "lambda_duration": prices.usd("lambda_gb_second", duration["gb_seconds"]),
    }
    per_million = {name: round(usd / sent * 1e6, 3) for name, usd in items.items()}
    return {
        "usd_per_million": per_million,
        "total_usd_per_million": round(sum(per_million.values()), 2),
        "units_per_recipient": {
            "write_units": round(herald.write_units / sent, 3),
            "index_write_units": round(herald.index_write_units / sent, 3),
            "read_units": round(herald.read_units / sent, 3),
            "sqs_requests": round(sqs_requests / sent, 3),
            "sns_publishes": round(sns_publishes / sent, 3),
            "firehose_records": round(ses_side.firehose_records / sent, 3),
            "firehose_billed_kb": round(ses_side.firehose_billed_kb / sent, 3),
            "firehose_bytes": round(ses_side.firehose_bytes / sent, 1),
            "s3_puts": round(ses_side.firehose_objects / sent, 4),
            "s3_gets": round(herald.calls.get("s3.GetObject", 0) / sent, 4),
            "lambda_invocations": round(invocations / sent, 4),
        },
        "lambda": duration,
    }


def hottest_item(tally: Tally, sent: int) -> dict[str, Any]:
    (_, key), writes = max(tally.item_writes.items(), key=lambda kv: kv[1])
    scope_end = key.find("#")
    return {
        "key": key[scope_end + 1 :] if key.startswith("T#") else key,
        "writes": writes,
        "per_10k": round(writes * 10_000 / sent, 1),
    }


def timing(run: BroadcastRun) -> dict[str, Any]:
    sent = run.sent
    herald_cpu = sum(i.herald_cpu_seconds for i in run.invocations.values())
    process_cpu = sum(i.cpu_seconds for i in run.invocations.values())
    return {
        "pipeline_seconds": round(run.pipeline_seconds, 1),
        "recipients_per_second": round(sent / run.pipeline_seconds, 1),
        "pipeline_cpu_seconds": round(run.pipeline_cpu_seconds, 1),
        "recipients_per_cpu_second": round(sent / run.pipeline_cpu_seconds, 1),
        "herald_ms_per_recipient": round(herald_cpu / sent * 1000, 3),
        "aws_ms_per_recipient": round((process_cpu - herald_cpu) / sent * 1000, 3),
        "cpu_ms_per_recipient": round(run.pipeline_cpu_seconds / sent * 1000, 3),
        "by_queue": {
            role: _queue_timing(i, sent) for role, i in run.invocations.items() if i.count
        },
    }


def _queue_timing(invocations: Invocations, sent: int) -> dict[str, Any]:
    return {
        "invocations": invocations.count,
        "messages": invocations.messages,
        "wall_seconds": round(invocations.wall_seconds, 1),
        "herald_ms_per_recipient": round(invocations.herald_cpu_seconds / sent * 1000, 3),
        "aws_ms_per_recipient": round(invocations.aws_cpu_seconds / sent * 1000, 3),
        "peak_traced_mb": round(invocations.max_traced_mb, 1) or None,
    }


def sanity(run: BroadcastRun) -> dict[str, Any]:
    """The pipeline did what it must: one message per eligible contact, none twice, the
    campaign ``sent`` with counters that add up, every delivery counted once."""
    counts = run.counts
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped."))
    checks = {
        "ses_messages_equal_eligible": run.ses_messages == run.eligible,
        "no_duplicate_messages": run.duplicate_messages == 0,
        "no_dead_letters": run.dead_letters == 0,
        "campaign_sent": run.campaign.get("status") == "sent",
        "sent_counter_equals_eligible": counts.get("sent", 0) == run.eligible,
        "skipped_counters_cover_the_rest": skipped == run.audience - run.eligible,
        "delivered_counter_equals_sent": counts.get("delivered", 0) == run.eligible,
        "no_failures": counts.get("failed", 0) == 0,
    }
    return {"ok": all(checks.values()), **checks}
