"""Checking a tenant's limits where the API spends something (see chalicelib/domain/limits.py).

Every function raises ``LimitExceeded`` (429 with ``Retry-After``, the field naming the
limit) or, for an SMS destination outside the tenant's countries, ``ValidationFailed``
naming the address. The send pipeline charges its own sends with
``chalicelib.store.quotas.charge`` (per batch, never per recipient).
"""

from __future__ import annotations

from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain import clock
from chalicelib.domain.limits import CountName, check_room, check_sms_destinations
from chalicelib.observability import logger
from chalicelib.store import quotas
from chalicelib.store import senders as sender_store
from chalicelib.store import templates as template_store
from chalicelib.store import tenants as tenant_store
from chalicelib.store import webhooks as webhook_store


def admit_request(tenant_id: str) -> None:
    """Count one API request against ``requests_per_minute`` (one DynamoDB write).

    Fails open: if DynamoDB itself cannot count, the request goes on (logged) rather than
    every tenant's API failing with the limiter.
    """
    try:
        allowance = quotas.charge(tenant_id, "requests_per_minute", 1, clock.now())
    except (ClientError, BotoCoreError) as error:
        logger.warning("request rate not counted", extra={"error": str(error)})
        return
    if not allowance.allowed:
        raise allowance.refusal()


def _current(tenant_id: str, name: CountName, at_most: int) -> int:
    if name == "senders":
        return sender_store.count_senders(tenant_id, at_most=at_most)
    if name == "templates":
        return template_store.count_templates(tenant_id, at_most=at_most)
    if name == "webhooks":
        return webhook_store.count_webhooks(tenant_id, at_most=at_most)
    now = clock.now()
    return sum(1 for key in tenant_store.list_api_keys(tenant_id) if key.usable_at(now))


def check_room_for(tenant_id: str, name: CountName) -> None:
    """LimitExceeded when the tenant already has as many ``name`` as its limit allows."""
    limits = quotas.get_limits(tenant_id, max_age=quotas.LIMITS_CACHE_SECONDS)
    limit: int = getattr(limits, name)
    check_room(name, _current(tenant_id, name, limit + 1), limits)


def charge_test_send(tenant_id: str, channel: str, addresses: Sequence[str]) -> None:
    """Admit a test send to ``addresses``: SMS only to the tenant's countries, then the
    hourly test-send limit (and for SMS the daily SMS limit), each all or nothing."""
    limits = quotas.get_limits(tenant_id)
    if channel == "sms":
        check_sms_destinations(list(addresses), limits, field="addresses")
    now = clock.now()
    count = len(set(addresses))
    allowance = quotas.charge(tenant_id, "test_sends_per_hour", count, now)
    if not allowance.allowed:
        raise allowance.refusal()
    if channel == "sms":
        sms = quotas.charge(tenant_id, "sms_per_day", count, now)
        if not sms.allowed:
            raise sms.refusal()
