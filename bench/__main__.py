"""Herald's benchmark: what a broadcast costs, how fast it goes, what a cold start pays.

    python -m bench            # 10,000 and 100,000 recipients, every section
    python -m bench --quick    # 5,000 recipients, the quick sections (under 2 min, 2 cores)
    python -m bench --recipients 2000 --no-package --profile

Prints progress on stderr, then the table of every figure against its target
(``bench.figures.FIGURES``; bench/README.md defines each) on stdout, and writes the JSON
(``--quick`` and ``--recipients`` write ``bench/out/results-quick.json``, so they never
overwrite the committed full results). Exits 1 if a broadcast's sanity check fails (a
lost or duplicated message, counters that do not add up); a missed target is reported,
never a failure.

Order of work, for a 2-core machine: the package and the cold start first and alone (the
cold start is a wall-clock figure); then the largest broadcast in this process while a
second process runs the smaller broadcasts and the sections (``SECTIONS``) beside it. Each
is one single-threaded process on its own core, and every figure but the wall-clock
``recipients_per_second`` and ``segment_entry_p95_ms`` is counted or CPU time.
``--serial`` runs everything in this process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

# bench.harness (imported by bench.sections) sets the benchmark's environment: first.
from bench.sections import PROFILE, ROOT, SECTIONS, beside, broadcast, lambda_memory_mb, progress

RESULTS = ROOT / "bench" / "results.json"
QUICK_RESULTS = ROOT / "bench" / "out" / "results-quick.json"
FULL_SIZES = (10_000, 100_000)
# --quick: one broadcast of 5,000 (until 2026-12-07: 10,000, whose ~140 s of CPU alone kept
# the quick run over its 2 minutes); its figures are per recipient, and the full run's
# 100,000 is the one the tables quote.
QUICK_SIZES = (5_000,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 recipients, fewer sections")
    parser.add_argument("--recipients", type=int, nargs="+", help="audience sizes to run")
    parser.add_argument(
        "--no-package",
        action="store_true",
        help="skip chalice package and the cold start (which imports app from the package)",
    )
    parser.add_argument(
        "--no-sections", action="store_true", help="the broadcasts (and package) only"
    )
    parser.add_argument("--serial", action="store_true", help="one process, one part at a time")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"pyinstrument profile of the largest run to {PROFILE}",
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.recipients or (QUICK_SIZES if args.quick else FULL_SIZES)))
    sections = [] if args.no_sections else [s.name for s in SECTIONS if s.quick or not args.quick]
    started, load_before = time.perf_counter(), os.getloadavg()

    footprint = None
    if not args.no_package:
        # First and alone: the cold start's import time is wall time.
        progress("chalice package, cold start…")
        from bench import footprint as footprint_bench

        footprint = footprint_bench.measure()
    largest, others = sizes[-1], sizes[:-1]
    if args.serial or (os.cpu_count() or 1) < 2 or not (others or sections):
        besides = beside(others, sections, args.quick)
        runs = {largest: broadcast(largest, args.profile)}
    else:
        spawn = multiprocessing.get_context("spawn")  # a fresh moto, nothing inherited
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            pending = pool.submit(beside, others, sections, args.quick)
            runs = {largest: broadcast(largest, args.profile)}
            besides = pending.result()
    runs.update(besides["runs"])

    results = _results(runs, footprint, besides["sections"])
    results["machine"] = _machine(load_before)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    out = QUICK_RESULTS if args.quick or args.recipients else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten: {out.relative_to(ROOT)} ({results['bench_seconds']} s)")
    return 0 if all(r["sanity"]["ok"] for r in results["runs"].values()) else 1


def broadcast_figures(
    runs: dict[int, dict[str, Any]], footprint: dict[str, Any] | None
) -> dict[str, float | None]:
    """The table's figures the broadcasts give (at the largest size run)."""
    big, small = runs[max(runs)], runs[min(runs)]
    planner_mb = max(d["planner_peak_traced_mb"] for d in runs.values())
    cold = footprint["cold_start"] if footprint else None
    return {
        "aws_calls_per_recipient": big["aws_calls_per_recipient"],
        "overhead_usd_per_million": big["cost"]["total_usd_per_million"],
        "max_item_writes_per_10k": big["hottest_item"]["per_10k"],
        "recipients_per_second": big["timing"]["recipients_per_second"],
        "herald_ms_per_recipient": big["timing"]["herald_ms_per_recipient"],
        "scaling_ratio": (
            round(
                big["timing"]["cpu_ms_per_recipient"] / small["timing"]["cpu_ms_per_recipient"], 3
            )
            if len(runs) > 1
            else None
        ),
        "planner_peak_rss_mb": round(cold["rss_after_import_mb"] + planner_mb, 1) if cold else None,
    }


def _results(
    runs: dict[int, dict[str, Any]],
    footprint: dict[str, Any] | None,
    sections: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    from bench import figures, prices
    from chalicelib.settings import get_settings

    settings = get_settings()
    values = broadcast_figures(runs, footprint)
    details: dict[str, Any] = {}
    for name, measured in {"footprint": footprint or {}, **sections}.items():
        values.update(measured.get("figures", {}))
        details[name] = {key: value for key, value in measured.items() if key != "figures"}
    return {
        "figures": figures.judged(values),
        "runs": {str(size): runs[size] for size in sorted(runs)},
        "planner_peak_traced_mb_by_audience": {
            str(size): runs[size]["planner_peak_traced_mb"] for size in sorted(runs)
        },
        **details,
        "settings": {
            "lambda_memory_mb": lambda_memory_mb(),
            "send_batch_size": settings.send_batch_size,
            "send_concurrency": settings.send_concurrency,
            "ses_max_send_rate": settings.ses_max_send_rate,
        },
        "prices_checked": prices.CHECKED,
    }


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    import moto

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "moto": moto.__version__,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


def _print_table(results: dict[str, Any]) -> None:
    print(f"\n{'figure':<38}{'value':>12}  {'target':<12}met")
    for key, figure in results["figures"].items():
        value = "-" if figure["value"] is None else f"{figure['value']:,}"
        mark = {True: "yes", False: "NO", None: "-"}[figure["met"]]
        print(f"{key:<38}{value:>12}  {figure['target']:<12}{mark}")
    for size, run in results["runs"].items():
        sanity = "ok" if run["sanity"]["ok"] else f"FAILED {run['sanity']}"
        print(f"\n{int(size):,} contacts: sanity {sanity}; calls per recipient:")
        for name, per in sorted(run["calls_per_recipient"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<34}{per:>8.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
