"""Per-tenant limits and the counters they are charged against.

Layout (tenant scope): ``LIMITS / current`` holds what an admin set for the tenant (only
the fields set; the rest come from settings). ``QUOTA#<rate> / <window start>`` counts a
rate in one fixed window (``used``) and expires (DynamoDB TTL ``expires_at``) a window
after it ends.

A charge is ONE conditional UpdateItem: ``ADD used :n`` only if ``used`` stays within the
limit, so concurrent Lambdas never overspend a window, and a refused charge writes
nothing (its ConditionalCheckFailed costs one write unit like an accepted one). That is
the whole price of the per-request rate limit: one write per API request, no read (the
limits themselves are cached per process for ``LIMITS_CACHE_SECONDS``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from chalicelib.domain.limits import Allowance, LimitChanges, Limits, RateName, Window
from chalicelib.settings import get_settings
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_LIMITS = "LIMITS"
_CURRENT = "current"
LIMITS_CACHE_SECONDS = 30.0
_lock = threading.Lock()
_cached: dict[str, tuple[float, Limits]] = {}


def _defaults() -> dict[str, Any]:
    settings = get_settings()
    return {name: getattr(settings, f"limit_{name}") for name in Limits.model_fields}


def get_limits(tenant_id: str, *, max_age: float = 0.0) -> Limits:
    """The tenant's limits: defaults with the admin's values on top."""
    with _lock:
        hit = _cached.get(tenant_id)
    if max_age > 0 and hit is not None and time.monotonic() - hit[0] <= max_age:
        return hit[1]
    stored = tenant_table(tenant_id).get(_LIMITS, _CURRENT) or {}
    limits = Limits.model_validate(
        {**_defaults(), **{k: v for k, v in stored.items() if k in Limits.model_fields}}
    )
    with _lock:
        _cached[tenant_id] = (time.monotonic(), limits)
    return limits


def forget_cached_limits() -> None:
    with _lock:
        _cached.clear()


def set_limits(tenant_id: str, changes: LimitChanges) -> Limits:
    """Apply an admin's changes (null returns a field to the default); the limits after."""
    given = {name: getattr(changes, name) for name in changes.model_fields_set}
    kept = {k: v for k, v in given.items() if v is not None}
    cleared = [k for k, v in given.items() if v is None]
    if given:
        tenant_table(tenant_id).update(_LIMITS, _CURRENT, set_values=kept, remove=cleared)
    forget_cached_limits()
    return get_limits(tenant_id)


def charge(tenant_id: str, name: RateName, amount: int, now: datetime) -> Allowance:
    """Count ``amount`` against the tenant's ``name`` rate in the window of ``now``.

    All or nothing: granted is ``amount`` when it fits what is left, else 0 and nothing is
    counted; ``retry_after`` is the seconds until the next window.
    """
    limit: int = getattr(get_limits(tenant_id, max_age=LIMITS_CACHE_SECONDS), name)
    window = Window.of(name, now)
    retry_after = window.seconds_left(now)
    if amount <= 0:
        return Allowance(name, amount, amount, 0, limit, retry_after)
    partition = f"QUOTA#{name}"
    table = tenant_table(tenant_id)
    room = Condition(
        "attribute_not_exists(used) OR used <= :c_room",
        values={":c_room": limit - amount},
    )
    if amount > limit:
        return Allowance(name, amount, 0, 0, limit, retry_after)
    try:
        item = table.update(
            partition,
            str(window.start),
            add_values={"used": amount},
            set_values={"expires_at": window.start + 2 * window.seconds},
            condition=room,
        )
    except ConditionFailed:
        current = table.get(partition, str(window.start), consistent=False) or {}
        return Allowance(name, amount, 0, int(current.get("used", limit)), limit, retry_after)
    return Allowance(name, amount, amount, int(item["used"]), limit, retry_after)
