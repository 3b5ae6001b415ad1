"""How long a 100,000-contact import takes, and how much memory it needs.

Runs the real path against in-process moto: ``POST /v1/imports`` through the API gate
(CSV body), then every ``import.chunk`` message through the real control-queue handler
(``drain``), then ``GET /v1/imports/{id}``. Prints the figures and writes
``bench/out/import.json``.

    python -m bench.import_contacts [--rows 100000] [--format csv|jsonl] [--bad-every 500]

Peak RSS is the whole process's, moto's in-memory table included, so it is an upper
bound for the Lambda that runs one chunk; ``submit_peak_rss_mb`` is the peak once the
API handler has split and stored every row. ``parse_peak_mb`` is what the API Lambda
itself allocates to split the body into rows and chunks (tracemalloc, measured apart so
it does not slow the timed run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",
    HERALD_STAGE="bench",
    POWERTOOLS_METRICS_NAMESPACE="Herald",
    POWERTOOLS_LOG_LEVEL="WARNING",
    POWERTOOLS_METRICS_DISABLED="true",  # keep the figures readable
)
for _variable in ("AWS_ENDPOINT_URL", "HERALD_AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(_variable, None)

import moto  # noqa: E402  (before any boto3 client is made)

OUT = Path(__file__).resolve().parent / "out" / "import.json"
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    """CPU time this process used: unlike wall time, barely moved by other load on the host."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """The process's peak resident set so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def build_rows(rows: int, import_format: str, bad_every: int) -> tuple[str, str, int]:
    """The body, its content type, and how many rows are bad (an invalid email each)."""
    bad = 0
    lines = [] if import_format == "jsonl" else ["email,first_name,tags,attributes.plan"]
    for i in range(rows):
        email = f"user{i}@example.com"
        if bad_every and i % bad_every == bad_every - 1:
            email, bad = f"broken-{i}", bad + 1
        if import_format == "jsonl":
            row = {"email": email, "first_name": f"User {i}", "tags": ["bench"]}
            lines.append(json.dumps({**row, "attributes": {"plan": "gold"}}))
        else:
            lines.append(f"{email},User {i},bench,gold")
    content_type = "application/x-ndjson" if import_format == "jsonl" else "text/csv"
    return "\n".join(lines) + "\n", content_type, bad


def parse_peak_mb(body: str, import_format: str) -> float:
    """Peak Python allocation while splitting ``body`` into chunks, as POST /v1/imports does."""
    from chalicelib.domain.imports import chunk_records, split_records

    tracemalloc.start()
    chunk_records(split_records(import_format, body))  # type: ignore[arg-type]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / 1e6, 1)


def run(rows: int, import_format: str, bad_every: int) -> dict[str, Any]:
    from chalice.test import Client

    import app as herald
    from chalicelib.local.poller import drain
    from chalicelib.local.provision import provision
    from chalicelib.store import tenants

    with moto.mock_aws():
        provision()
        _, _, key = tenants.create_tenant("bench")
        body, content_type, bad = build_rows(rows, import_format, bad_every)
        auth = {"Authorization": f"Bearer {key}"}
        with Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as client:
            load_before = os.getloadavg()[0]
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            response = client.http.post(
                "/v1/imports", headers={**auth, "Content-Type": content_type}, body=body
            )
            submitted = time.perf_counter()
            assert response.status_code == 202, response.body
            submit_peak = peak_rss_mb()
            job_id = json.loads(response.body)["id"]
            messages = drain(["control"])
            finished = time.perf_counter()
            cpu_used = cpu_seconds() - cpu_before
            job = json.loads(client.http.get(f"/v1/imports/{job_id}", headers=auth).body)
    expected = {"created": rows - bad, "rejected": bad, "processed": rows}
    correct = job["status"] == "completed" and all(job[k] == v for k, v in expected.items())
    return {
        "rows": rows,
        "format": import_format,
        "body_mb": round(len(body.encode()) / 1e6, 2),
        "submit_seconds": round(submitted - started, 2),
        "process_seconds": round(finished - submitted, 2),
        "total_seconds": round(finished - started, 2),
        "rows_per_second": round(rows / (finished - started)),
        "cpu_seconds": round(cpu_used, 1),
        "cpu_ms_per_row": round(cpu_used * 1000 / rows, 2),
        "host_load_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "chunks": messages,
        "status": job["status"],
        "created": job["created"],
        "updated": job["updated"],
        "rejected": job["rejected"],
        "counts_correct": correct,
        "submit_peak_rss_mb": submit_peak,
        "parse_peak_mb": parse_peak_mb(body, import_format),
        "peak_rss_mb": peak_rss_mb(),
        "backend": "moto in-process (moto 5, one process, no network)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--bad-every", type=int, default=500, help="every n-th row is invalid")
    args = parser.parse_args(argv)
    result = run(args.rows, args.format, args.bad_every)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result.items():
        print(f"{name:>20}: {value}")
    print(f"{'written':>20}: {OUT.relative_to(ROOT)}")
    return 0 if result["counts_correct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
