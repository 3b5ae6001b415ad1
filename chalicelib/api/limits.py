"""Per-tenant limits: an admin reads and sets a tenant's, a tenant reads its own.

What they bound and how they are counted: chalicelib/domain/limits.py. Over a limit
any route answers 429 ``limit_exceeded`` with ``Retry-After``, the field naming the limit.
"""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Call, endpoint
from chalicelib.domain.errors import NotFound
from chalicelib.domain.limits import LimitChanges, Limits
from chalicelib.domain.tenants import is_tenant_id
from chalicelib.store import quotas
from chalicelib.store import tenants as tenant_store

blueprint = Blueprint(__name__)


def _tenant(call: Call) -> str:
    tenant_id = call.params["tenant_id"]
    if not is_tenant_id(tenant_id):
        raise NotFound(f"tenant '{tenant_id}' not found", field="tenant_id")
    tenant_store.get_tenant(tenant_id)
    return tenant_id


@endpoint(
    blueprint,
    "/v1/admin/tenants/{tenant_id}/limits",
    "GET",
    auth="admin",
    tag="admin",
    summary="A tenant's limits (defaults where none was set)",
    response=Limits,
)
def get_tenant_limits(call: Call) -> Limits:
    return quotas.get_limits(_tenant(call))


@endpoint(
    blueprint,
    "/v1/admin/tenants/{tenant_id}/limits",
    "PATCH",
    auth="admin",
    tag="admin",
    summary="Set a tenant's limits (null returns one to the default)",
    body=LimitChanges,
    response=Limits,
)
def set_tenant_limits(call: Call) -> Limits:
    return quotas.set_limits(_tenant(call), call.body.checked())


@endpoint(
    blueprint,
    "/v1/limits",
    "GET",
    auth="tenant",
    tag="limits",
    summary="This tenant's limits",
    response=Limits,
)
def get_own_limits(call: Call) -> Limits:
    return quotas.get_limits(call.tenant_id)
