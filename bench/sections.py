"""The parts of ``python -m bench``: broadcasts, and the sections measured beside them.

A module of its own (not ``bench/__main__.py``) because the parts that run beside the
largest broadcast run in a second process, which must import them by name.

Adding a figure measured apart from the broadcasts takes two lines: the figure in
``bench.figures.FIGURES`` (key, target, method) and its section in ``SECTIONS`` below
(a function ``measure(quick) -> {"figures": {key: value}, ...details}``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import figures
from bench.harness import BroadcastRun, run_broadcast

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
PROFILE = OUT_DIR / "profile.txt"
FULL_FLOWS = (500, 3_125)  # contacts walked per flow, due entries swept (bench/flows.py)
QUICK_FLOWS = (50, 1_000)
SEGMENT_ENTRY_SAMPLES = 20


def _flows(quick: bool) -> dict[str, Any]:
    from bench import flows

    return flows.run(*(QUICK_FLOWS if quick else FULL_FLOWS))


def _segment_entry(quick: bool) -> dict[str, Any]:
    from bench import segment_entry

    return segment_entry.measure(SEGMENT_ENTRY_SAMPLES)


def _planning(quick: bool) -> dict[str, Any]:
    from bench import planning

    return planning.measure(quick=quick)


@dataclass(frozen=True)
class Section:
    """A measurement beside the broadcasts. ``measure(quick)`` returns a dict whose
    ``"figures"`` (key → value, each key registered in ``bench.figures.FIGURES``) join the
    table, and whose other keys are kept under ``name`` in results.json. A section's value
    for a figure the broadcasts also give (``bench.__main__.broadcast_figures``) replaces
    theirs (the broadcasts' own stays in ``runs`` in results.json)."""

    name: str
    measure: Callable[[bool], dict[str, Any]]
    quick: bool = True  # part of --quick too


def _herald_time(quick: bool) -> dict[str, Any]:
    from bench import herald_time

    return herald_time.section(quick)


SECTIONS: tuple[Section, ...] = (
    Section("herald_time", _herald_time),
    Section("flows", _flows),
    Section("segment_entry", _segment_entry, quick=False),
    Section("planning", _planning),
)


def progress(line: str) -> None:
    """A progress line, on stderr: stdout is the table's."""
    print(line, file=sys.stderr, flush=True)


def broadcast(size: int, profile: bool = False) -> dict[str, Any]:
    """One broadcast, its details as results.json keeps them (also written at once to
    bench/out/run-<size>.json: a run killed later still leaves this one's figures)."""
    progress(f"broadcast to {size:,} contacts…")
    run = _profiled(size) if profile else run_broadcast(size, trace_planner=True)
    details = run_details(run)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"run-{size}.json").write_text(json.dumps(details, indent=2) + "\n")
    seconds = details["setup_seconds"] + details["timing"]["pipeline_seconds"]
    cpu = details["timing"]["pipeline_cpu_seconds"]
    progress(f"broadcast to {size:,} contacts: {seconds:.0f} s ({cpu:.0f} s CPU sending)")
    return details


def beside(sizes: list[int], sections: list[str], quick: bool) -> dict[str, Any]:
    """What runs beside the largest broadcast: the smaller ones, then the sections."""
    runs = {size: broadcast(size) for size in sizes}
    measured = {}
    for section in SECTIONS:
        if section.name in sections:
            progress(f"{section.name}…")
            began, began_cpu = time.perf_counter(), time.process_time()
            measured[section.name] = section.measure(quick)
            seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
            # The run's own cost; its CPU time too, which the machine's load moves less.
            measured[section.name]["section_seconds"] = round(seconds, 1)
            measured[section.name]["section_cpu_seconds"] = round(cpu, 1)
            progress(f"{section.name}: {seconds:.0f} s ({cpu:.0f} s CPU)")
    return {"runs": runs, "sections": measured}


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
        "cost": figures.cost(run, lambda_memory_mb(), get_settings().send_concurrency),
        "hottest_item": figures.hottest_item(run.herald, run.sent),
        "timing": figures.timing(run),
        "aws_cpu_ms_per_call": run.aws_cpu_ms,
        "planner_peak_traced_mb": round(run.invocations["control"].max_traced_mb, 1),
        "peak_rss_mb": run.peak_rss_mb,
        "sanity": figures.sanity(run),
        "counts": run.counts,
    }


def lambda_memory_mb() -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(config["lambda_memory_size"])
