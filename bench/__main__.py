"""Herald's benchmark: what a broadcast costs, how fast it goes, what a cold start pays.

    python -m bench            # 10,000 and 100,000 recipients, cold start, package size
    python -m bench --quick    # 10,000 recipients, cold start, package size
    python -m bench --recipients 2000 --no-package --profile

Prints a table of the figures against their targets (bench/README.md defines each) and
writes ``bench/results.json`` (``bench/out/results-quick.json`` with ``--quick``, so a
quick run never overwrites the committed full results). Exits 1 if the pipeline's sanity
check fails (a lost or duplicated message, counters that do not add up); a missed target
is reported, never a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import figures, flows, footprint, prices
from bench.harness import BroadcastRun, run_broadcast

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
QUICK_RESULTS = ROOT / "bench" / "out" / "results-quick.json"
PROFILE = ROOT / "bench" / "out" / "profile.txt"
OUT_DIR = ROOT / "bench" / "out"
FULL_SIZES = (10_000, 100_000)
QUICK_SIZES = (10_000,)
FULL_FLOWS = (500, 3_125)  # contacts walked per flow, due entries swept (bench/flows.py)
QUICK_FLOWS = (50, 1_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 recipients, no package")
    parser.add_argument("--recipients", type=int, nargs="+", help="audience sizes to run")
    parser.add_argument(
        "--no-package",
        action="store_true",
        help="skip chalice package and the cold start (which imports app from the package)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"pyinstrument profile of the largest run to {PROFILE}",
    )
    args = parser.parse_args(argv)
    sizes = tuple(args.recipients or (QUICK_SIZES if args.quick else FULL_SIZES))
    started, load_before = time.perf_counter(), os.getloadavg()

    runs: dict[int, BroadcastRun] = {}
    for size in sorted(sizes):
        print(f"broadcast to {size:,} contacts…", file=sys.stderr, flush=True)
        profile = args.profile and size == max(sizes)
        runs[size] = _profiled(size) if profile else run_broadcast(size, trace_planner=True)
        # Kept at once: a run killed later still leaves this one's figures behind.
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / f"run-{size}.json").write_text(
            json.dumps(run_details(runs[size]), indent=2) + "\n"
        )
    cold = package = None
    if not args.no_package:
        # Built fresh every time: the cold start imports app from this package.
        print("chalice package…", file=sys.stderr, flush=True)
        package = footprint.package()
        print("cold start…", file=sys.stderr, flush=True)
        cold = footprint.cold_start()

    results = _results(runs, cold, package)
    print("flows…", file=sys.stderr, flush=True)
    results["flows"] = flows.run(*(QUICK_FLOWS if args.quick else FULL_FLOWS))
    results["machine"] = _machine(load_before)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    out = QUICK_RESULTS if args.quick or args.recipients else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten: {out.relative_to(ROOT)} ({results['bench_seconds']} s)")
    return 0 if all(r["sanity"]["ok"] for r in results["runs"].values()) else 1


def _profiled(size: int) -> BroadcastRun:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        return run_broadcast(size, trace_planner=False)
    finally:
        profiler.stop()
        PROFILE.parent.mkdir(parents=True, exist_ok=True)
        PROFILE.write_text(profiler.output_text(unicode=True, color=False))


def _results(
    runs: dict[int, BroadcastRun],
    cold: dict[str, Any] | None,
    package: dict[str, Any] | None,
) -> dict[str, Any]:
    from chalicelib.settings import get_settings

    settings = get_settings()
    largest, smallest = runs[max(runs)], runs[min(runs)]
    details = {str(size): run_details(run) for size, run in runs.items()}
    big = details[str(max(runs))]
    planner_mb = {size: d["planner_peak_traced_mb"] for size, d in details.items()}
    values: dict[str, float | None] = {
        "aws_calls_per_recipient": big["aws_calls_per_recipient"],
        "overhead_usd_per_million": big["cost"]["total_usd_per_million"],
        "max_item_writes_per_10k": big["hottest_item"]["per_10k"],
        "recipients_per_second": big["timing"]["recipients_per_second"],
        "herald_ms_per_recipient": big["timing"]["herald_ms_per_recipient"],
        "scaling_ratio": (
            round(figures.per_recipient_ms(largest) / figures.per_recipient_ms(smallest), 3)
            if len(runs) > 1
            else None
        ),
        "planner_peak_rss_mb": (
            round(cold["rss_after_import_mb"] + max(planner_mb.values()), 1) if cold else None
        ),
        "cold_import_ms": cold["import_ms"] if cold else None,
        "package_mb": package["zipped_mb"] if package else None,
    }
    return {
        "figures": {
            key: {
                "value": value,
                "target": f"{figures.TARGETS[key][0]} {figures.TARGETS[key][1]}",
                "met": figures.met(key, value),
            }
            for key, value in values.items()
        },
        "runs": details,
        "planner_peak_traced_mb_by_audience": planner_mb,
        "cold_start": cold,
        "package": package,
        "settings": {
            "lambda_memory_mb": _lambda_memory_mb(),
            "send_batch_size": settings.send_batch_size,
            "send_concurrency": settings.send_concurrency,
            "ses_max_send_rate": settings.ses_max_send_rate,
        },
        "prices_checked": prices.CHECKED,
    }


def run_details(run: BroadcastRun) -> dict[str, Any]:
    """Everything one broadcast measured, as results.json keeps it."""
    from chalicelib.settings import get_settings

    return {
        "audience": run.audience,
        "eligible": run.eligible,
        "sent": run.counts.get("sent", 0),
        "setup_seconds": run.setup_seconds,
        "aws_calls_per_recipient": round(run.herald.total_calls / run.sent, 3),
        "calls_per_recipient": figures.calls_per_recipient(run.herald, run.sent),
        "ses_event_publishes_per_recipient": figures.calls_per_recipient(run.provider, run.sent),
        "idle_polls": run.herald.idle_polls,
        "cost": figures.cost(run, _lambda_memory_mb(), get_settings().send_concurrency),
        "hottest_item": figures.hottest_item(run.herald, run.sent),
        "timing": figures.timing(run),
        "aws_cpu_ms_per_call": run.aws_cpu_ms,
        "planner_peak_traced_mb": round(run.invocations["control"].max_traced_mb, 1),
        "peak_rss_mb": run.peak_rss_mb,
        "sanity": figures.sanity(run),
        "counts": run.counts,
    }


def _lambda_memory_mb() -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(config["lambda_memory_size"])


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
    print(f"\n{'figure':<28}{'value':>12}  {'target':<10}met")
    for key, figure in results["figures"].items():
        value = "-" if figure["value"] is None else f"{figure['value']:,}"
        mark = {True: "yes", False: "NO", None: "-"}[figure["met"]]
        print(f"{key:<28}{value:>12}  {figure['target']:<10}{mark}")
    print("\nflows (bench/flows.py):")
    for key, figure in results["flows"]["figures"].items():
        mark = "yes" if figure["met"] else "NO"
        print(f"  {key:<40}{figure['value']:>10,}  {figure['target']:<10}{mark}")
    for size, run in results["runs"].items():
        sanity = "ok" if run["sanity"]["ok"] else f"FAILED {run['sanity']}"
        print(f"\n{int(size):,} contacts: sanity {sanity}; calls per recipient:")
        for name, per in sorted(run["calls_per_recipient"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<34}{per:>8.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
