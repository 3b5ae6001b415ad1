"""The one-minute tick: periodic jobs (sweepers, callback flushes, due enrollments).

app.py lists the jobs; the tick runs them all and isolates their failures, so one
broken job never starves the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from chalicelib.observability import logger, metrics

Job = Callable[[datetime], None]


def run_tick(jobs: Mapping[str, Job], now: datetime | None = None) -> dict[str, str]:
    """Run every job once, by name; returns each job's outcome ("ok" or the error)."""
    moment = now or datetime.now(UTC)
    outcomes: dict[str, str] = {}
    for name, job in sorted(jobs.items()):
        try:
            job(moment)
            outcomes[name] = "ok"
        except Exception as error:  # one job's failure must not stop the others
            logger.exception("tick job failed", extra={"job": name})
            metrics.add_metric(name="tick_job_failures", unit="Count", value=1)
            outcomes[name] = f"error: {error}"
    return outcomes
