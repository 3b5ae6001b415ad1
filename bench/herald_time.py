"""Herald's own time per recipient, by a sampling profiler over broadcasts.

    python -m bench.herald_time --recipients 2000 --runs 3

Sends ``runs`` broadcasts (``bench.harness.run_broadcast``, planner not traced: tracemalloc
would be charged to Herald) with ``bench.sampler`` sampling every thread, and reports
Herald's CPU milliseconds per message sent for each run, their median and spread. The
profile of the last run (where Herald's time goes) is written to
``bench/out/herald-profile.txt``. ``section`` is what ``python -m bench`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.harness import run_broadcast
from bench.sampler import Sampler

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "bench" / "out" / "herald-profile.txt"
_CONCURRENCY = "HERALD_SEND_CONCURRENCY"
RECIPIENTS = 2000
WARM_UP_RECIPIENTS = 200


def measure(recipients: int, runs: int = 1) -> dict[str, Any]:
    """Herald's sampled CPU ms per recipient over ``runs`` broadcasts to ``recipients``.

    The send worker runs one sending thread here (``HERALD_SEND_CONCURRENCY=1``). Its pool
    exists to overlap the network waits of SES and DynamoDB calls; against in-process moto
    there are none, so eight threads would only take the GIL from each other, and a thread
    can only be sampled where it lets the GIL go (a lock, ``os.urandom``), which would
    charge its last milliseconds to that spot. With one sending thread every sample finds
    one thread running, and Herald's code does the same work per recipient.
    """
    figures: list[dict[str, Any]] = []
    report = ""
    before = os.environ.get(_CONCURRENCY)
    os.environ[_CONCURRENCY] = "1"
    try:
        # Unmeasured: the first broadcast of a process pays what a Lambda container pays
        # once (Jinja and Powertools' batch utility imported, models built on first use);
        # the figure is the per-recipient cost of a warm worker, as 10 million sends see it.
        run_broadcast(WARM_UP_RECIPIENTS)
        for _ in range(runs):
            sampler = Sampler()
            run = run_broadcast(recipients, sampler=sampler)
            figures.append(sampler.profile.summary(run.sent))
            report = sampler.profile.report(run.sent)
    finally:
        if before is None:
            os.environ.pop(_CONCURRENCY)
        else:
            os.environ[_CONCURRENCY] = before
    PROFILE.parent.mkdir(parents=True, exist_ok=True)
    PROFILE.write_text(report)
    values = [f["herald_ms_per_recipient"] for f in figures]
    median = statistics.median(values)
    return {
        "herald_ms_per_recipient": round(median, 3),
        "runs": values,
        "spread_pct": round((max(values) - min(values)) / median * 100, 1) if median else None,
        "recipients": recipients,
        "last_run": figures[-1],
    }


def section(quick: bool) -> dict[str, Any]:
    """``herald_ms_per_recipient`` for ``python -m bench`` (``bench.sections.SECTIONS``):
    the median of three sampled broadcasts (one with ``--quick``)."""
    measured = measure(RECIPIENTS, runs=1 if quick else 3)
    return {"figures": {"herald_ms_per_recipient": measured["herald_ms_per_recipient"]}, **measured}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=RECIPIENTS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(args.recipients, args.runs)
    print(json.dumps(result, indent=2))
    print(f"profile: {PROFILE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
