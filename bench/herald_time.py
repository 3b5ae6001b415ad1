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
from chalicelib.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "bench" / "out" / "herald-profile.txt"
RECIPIENTS = 2000
WARM_UP_RECIPIENTS = 200
SEND_THREADS = 1


def measure(
    recipients: int,
    runs: int = 1,
    *,
    send_threads: int = SEND_THREADS,
    send_concurrency: int | None = None,
) -> dict[str, Any]:
    """Herald's sampled CPU ms per recipient over ``runs`` broadcasts to ``recipients``.

    The sender runs as deployed, in rounds of ``send_concurrency`` (8) recipients, each
    round's records written with one BatchWriteItem, but the round's sends are carried by
    one thread (``HERALD_SEND_THREADS=1``) instead of eight. The eight threads exist to
    overlap the network waits of SES and DynamoDB calls; against in-process moto there are
    none, so eight threads only take turns at the GIL: measured side by side on
    2026-12-06 (load 7-11, rounds of one recipient each), eight threads charged a median
    1.62 ms per recipient to Herald against 0.94 for one (the pool's 0.31 became 1.05,
    spread over whatever Herald line each thread was parked at while the others ran),
    while the process's CPU per recipient did not grow (14.9 ms against 18.9, last
    runs): CPU moved from moto's bucket to Herald's, it was not Herald's work. One thread
    does the same work per recipient as each of the eight: the batch hands a round's
    eight sends to the pool, waits once and commits once, so a round's overhead is
    shared by eight recipients as in a deployed worker. (Until 2026-12-06 the measurement
    ran ``send_concurrency=1``: rounds of one recipient, a hand-off, a wait and a
    BatchWriteItem per recipient, which a deployed worker shares by eight. Side by side,
    the batch's own thread fell from 0.52 to 0.13 ms per recipient with this method, but
    the pool's rose from 0.23 to 0.59 and Herald's total stayed (1.18 against 1.16); on
    the same code, rounds of one against rounds of eight read 1.01 against 1.36 (load
    10-13), the pool's 0.18 against 0.75. The pool's figure is its own thread's CPU
    clock: ``compose`` timed directly with ``thread_time`` inside the pool took 310-350 µs
    a message, as sampled, where the same call alone in a loop takes 50-90 µs. Herald's
    code runs several times slower in this process than alone, most likely because the
    0.1 ms switch interval interleaves it with moto's large working set (a thread that
    runs without pause, as the pool does with rounds of eight, is switched out most);
    a Lambda runs Herald alone. ``--send-concurrency 1`` measures the old way.)
    ``send_threads`` and ``send_concurrency`` may be set to measure otherwise.
    """
    figures: list[dict[str, Any]] = []
    report = ""
    settings = {"HERALD_SEND_THREADS": str(send_threads)}
    if send_concurrency is not None:
        settings["HERALD_SEND_CONCURRENCY"] = str(send_concurrency)
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
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
        for name, value in before.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    PROFILE.parent.mkdir(parents=True, exist_ok=True)
    PROFILE.write_text(report)
    values = [f["herald_ms_per_recipient"] for f in figures]
    median = statistics.median(values)
    return {
        "herald_ms_per_recipient": round(median, 3),
        "runs": values,
        "spread_pct": round((max(values) - min(values)) / median * 100, 1) if median else None,
        "recipients": recipients,
        "send_threads": send_threads,
        "send_concurrency": send_concurrency or get_settings().send_concurrency,
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
    parser.add_argument("--send-threads", type=int, default=SEND_THREADS)
    parser.add_argument("--send-concurrency", type=int, help="default: the settings' (8)")
    args = parser.parse_args(argv)
    result = measure(
        args.recipients,
        args.runs,
        send_threads=args.send_threads,
        send_concurrency=args.send_concurrency,
    )
    print(json.dumps(result, indent=2))
    print(f"profile: {PROFILE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
