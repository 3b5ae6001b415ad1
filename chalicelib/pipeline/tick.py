"""The one-minute tick: periodic jobs (sweepers, callback flushes, due enrollments).

Each job registers itself with ``every_minute``; the tick runs them all and isolates
their failures, so one broken job never starves the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from chalicelib.observability import logger, metrics

Job = Callable[[datetime], None]
_JOBS: dict[str, Job] = {}


def every_minute(name: str) -> Callable[[Job], Job]:
    def register(job: Job) -> Job:
        _JOBS[name] = job
        return job

    return register


def run_tick(now: datetime | None = None) -> dict[str, str]:
    """Run every registered job once; returns each job's outcome ("ok" or the error)."""
    moment = now or datetime.now(UTC)
    outcomes: dict[str, str] = {}
    for name, job in sorted(_JOBS.items()):
        try:
            job(moment)
            outcomes[name] = "ok"
        except Exception as error:  # one job's failure must not stop the others
            logger.exception("tick job failed", extra={"job": name})
            metrics.add_metric(name="tick_job_failures", unit="Count", value=1)
            outcomes[name] = f"error: {error}"
    return outcomes
