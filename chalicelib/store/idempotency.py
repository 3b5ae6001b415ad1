"""Idempotency keys of create requests: the first answer, kept a day, for the retries.

Layout (tenant scope): ``T#<tenant>#IDEMPOTENCY / <route> <sha256 of the key>`` holding
``state`` (``in_progress`` while the first request runs, then ``done``), the request's
``fingerprint``, ``lease_until`` (epoch seconds: an ``in_progress`` claim older than this
was left by a request that died, and the same request may take it over), the answer's
``status`` and ``body`` once done, and ``expires_at`` (the table's TTL attribute). DynamoDB
deletes expired items only within a day or two, so expiry is also checked on every claim:
an expired record counts as absent.

One conditional put decides who runs a request; a lost race reads the winner's record.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.store.table import Condition, ConditionFailed, tenant_table

RETENTION = timedelta(hours=24)
# A first request runs within an API Gateway request (29 s at most): a claim still
# in_progress after this was left by a request that died, and its retry may take over.
LEASE = timedelta(seconds=60)
_PARTITION = "IDEMPOTENCY"
_IN_PROGRESS, _DONE = "in_progress", "done"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str


@dataclass(frozen=True)
class Claim:
    """What a claim found: run the request (``claimed``), replay ``answer``, or refuse."""

    outcome: Literal["claimed", "replay", "mismatch", "in_progress"]
    answer: StoredAnswer | None = None


def _sort_key(route: str, key: str) -> str:
    return f"{route} {hashlib.sha256(key.encode()).hexdigest()}"


def claim(tenant_id: str, route: str, key: str, fingerprint: str, now: datetime) -> Claim:
    """Claim ``key`` for a request with ``fingerprint``, or say what holds it already."""
    table = tenant_table(tenant_id)
    sort = _sort_key(route, key)
    moment = int(now.timestamp())
    free = Condition(
        "attribute_not_exists(pk) OR expires_at < :now"
        " OR (#state = :running AND lease_until < :now AND fingerprint = :fingerprint)",
        {"#state": "state"},
        {":now": moment, ":running": _IN_PROGRESS, ":fingerprint": fingerprint},
    )
    record = {
        "state": _IN_PROGRESS,
        "fingerprint": fingerprint,
        "lease_until": moment + int(LEASE.total_seconds()),
        "expires_at": moment + int(RETENTION.total_seconds()),
    }
    try:
        table.put(_PARTITION, sort, record, condition=free)
        return Claim("claimed")
    except ConditionFailed:
        held = table.get(_PARTITION, sort)
    if held is None:  # deleted (released or expired) since the put: a retry will claim it
        return Claim("in_progress")
    if held["fingerprint"] != fingerprint:
        return Claim("mismatch")
    if held["state"] == _DONE:
        return Claim("replay", StoredAnswer(int(held["status"]), str(held["body"])))
    return Claim("in_progress")


def remember(tenant_id: str, route: str, key: str, fingerprint: str, answer: StoredAnswer) -> None:
    """Keep the first answer for the retries (only the claim's own request may write it)."""
    tenant_table(tenant_id).update(
        _PARTITION,
        _sort_key(route, key),
        set_values={"state": _DONE, "status": answer.status, "body": answer.body},
        remove=["lease_until"],
        condition=Condition.equals("fingerprint", fingerprint),
    )


def release(tenant_id: str, route: str, key: str, fingerprint: str) -> None:
    """Give up a claim whose request failed, so that a retry runs it afresh."""
    with contextlib.suppress(ConditionFailed):  # gone, or taken over after the lease ran out
        tenant_table(tenant_id).delete(
            _PARTITION,
            _sort_key(route, key),
            condition=Condition(
                "fingerprint = :f AND #s = :running",
                {"#s": "state"},
                {":f": fingerprint, ":running": _IN_PROGRESS},
            ),
        )
