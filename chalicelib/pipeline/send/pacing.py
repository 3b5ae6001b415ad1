"""Pacing and stopping: how fast a send worker calls the provider, and when it stops.

Each worker paces provider calls to the account rate divided by the number of workers;
a batch's threads stop when the campaign is paused or cancelled, when the lease's time
is up (checked again after every pacer slot), or when the provider's daily quota is
spent (docs/engine.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from chalicelib.channels.base import (
    Channel,
    OutboundMessage,
    SendResult,
    TransientSendError,
)
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign
from chalicelib.domain.delivery import (
    backoff_seconds,
)
from chalicelib.observability import logger, metrics
from chalicelib.settings import get_settings
from chalicelib.store.campaigns import get_campaign

STATUS_RECHECK_SECONDS = 5.0  # how stale the campaign status may get while a batch runs
SENDING_STATUSES = frozenset({"calculating", "sending"})


class Pacer:
    """Spaces provider calls ``1 / rate`` seconds apart across all threads of a worker.

    Each worker paces to the account rate divided by the number of workers
    (``send_workers``, the send Lambda's reserved concurrency), so all workers together
    stay under the account's rate (docs/engine.md).
    """

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = clock.now().timestamp()
            slot = max(now, self._next)
            self._next = slot + self._interval
        clock.sleep(slot - now)


def worker_rate(channel: str) -> float:
    """One worker's share of the channel's account-wide rate (``<channel>_max_send_rate``;
    email's is SES's)."""
    settings = get_settings()
    name = "ses_max_send_rate" if channel == "email" else f"{channel}_max_send_rate"
    account: float = getattr(settings, name)
    return account / settings.send_workers


class StopWatch:
    """Tells the sending threads to stop: out of time, or the campaign paused or cancelled.

    The campaign's status is read again at most every ``STATUS_RECHECK_SECONDS`` (one
    GetItem), so a cancel takes effect within seconds even in a long batch.
    """

    def __init__(self, tenant_id: str, campaign: Campaign, deadline: datetime) -> None:
        self._tenant_id = tenant_id
        self._campaign_id = campaign.id
        self._deadline = deadline
        self._checked_at = clock.now()
        self._lock = threading.Lock()
        self.reason: str | None = "cancelled" if campaign.status == "cancelled" else None

    def stop_reason(self) -> str | None:
        with self._lock:
            if self.reason is not None:
                return self.reason
            now = clock.now()
            if now >= self._deadline:
                self.reason = "deadline"
            elif (now - self._checked_at).total_seconds() >= STATUS_RECHECK_SECONDS:
                self._checked_at = now
                status = get_campaign(self._tenant_id, self._campaign_id).status
                if status not in SENDING_STATUSES:
                    self.reason = status
            return self.reason

    def stop(self, reason: str) -> None:
        """Stop every thread of the batch (the provider's quota is spent, say)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason

    def time_left(self) -> float:
        return (self._deadline - clock.now()).total_seconds()


class QuotaSpent(Exception):
    """The provider's daily sending quota is used up: retrying before it rolls over only
    burns worker time, so the campaign pauses until then."""


# SES v2 reports a spent 24-hour sending quota this way; it clears only with time.
QUOTA_CODES = frozenset({"LimitExceededException"})


def send_with_retries(
    channel: Channel, message: OutboundMessage, pacer: Pacer, time_left: Callable[[], float]
) -> SendResult | None:
    """Send, retrying transient errors with backoff while there is time; None when time ran
    out (a batch's recipient then stays unsent and is handed back with the batch).

    The time is checked after the pacer grants the slot, right before the call: at a low
    rate the slot may come long after the request for it, and a send must never start
    later than the lease can cover. QuotaSpent when the provider's daily quota is used up.
    """
    attempt = 0
    while True:
        attempt += 1
        pacer.wait()
        if time_left() <= 0:
            return None
        try:
            return channel.send(message)
        except TransientSendError as error:
            if error.code in QUOTA_CODES or "quota exceeded" in str(error).lower():
                raise QuotaSpent(str(error)) from error
            # A provider that names its wait (Telegram's retry_after) is waited for in
            # full; out of time, the recipient stays unsent and the batch is handed back.
            delay = max(backoff_seconds(attempt), error.retry_after or 0.0)
            metrics.add_metric(name="send_throttled", unit="Count", value=1)
            if time_left() <= delay:
                logger.warning("out of time retrying a send", extra={"code": error.code})
                return None
            clock.sleep(delay)
