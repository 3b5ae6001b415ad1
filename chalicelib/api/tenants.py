"""Tenants and admin keys (admin key), and a tenant's own API keys (tenant key)."""

from __future__ import annotations

from datetime import datetime

from chalice import Blueprint
from pydantic import AwareDatetime, Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.tenants import ApiKey, Tenant, is_tenant_id
from chalicelib.services import limits
from chalicelib.store import tenants as store

blueprint = Blueprint(__name__)


class CreateTenant(Input):
    name: str = Field(min_length=1, max_length=200)


class CreateApiKey(Input):
    name: str = Field(default="", max_length=200)
    read_only: bool = Field(default=False, description="The key may call GET routes only.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (in the future, with an offset)."
    )


class ApiKeyView(ApiModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    read_only: bool = False
    expires_at: datetime | None = None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls.model_validate(key.model_dump(exclude={"tenant_id"}))


class IssuedApiKey(ApiKeyView):
    key: str = Field(description="The API key itself. Shown only in this response.")


class TenantCreated(ApiModel):
    tenant: Tenant
    api_key: IssuedApiKey


class ApiKeyList(ApiModel):
    items: list[ApiKeyView]


@endpoint(
    blueprint,
    "/v1/admin/tenants",
    "POST",
    auth="admin",
    tag="admin",
    status=201,
    summary="Create a tenant and its first API key",
    body=CreateTenant,
    response=TenantCreated,
)
def create_tenant(call: Call) -> TenantCreated:
    tenant, key, secret = store.create_tenant(call.body.name)
    return TenantCreated(
        tenant=tenant, api_key=IssuedApiKey(**ApiKeyView.of(key).model_dump(), key=secret)
    )


@endpoint(
    blueprint,
    "/v1/admin/tenants",
    "GET",
    auth="admin",
    tag="admin",
    summary="List tenants",
    query=ListQuery,
    response=ListPage[Tenant],
)
def list_tenants(call: Call) -> ListPage[Tenant]:
    tenants, cursor = store.list_tenants(call.query.limit, call.query.cursor)
    return ListPage[Tenant](items=tenants, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/admin/tenants/{tenant_id}",
    "GET",
    auth="admin",
    tag="admin",
    summary="Get a tenant",
    response=Tenant,
)
def get_tenant(call: Call) -> Tenant:
    tenant_id = call.params["tenant_id"]
    if not is_tenant_id(tenant_id):
        raise NotFound(f"tenant '{tenant_id}' not found", field="tenant_id")
    return store.get_tenant(tenant_id)


@endpoint(
    blueprint,
    "/v1/admin/keys",
    "GET",
    auth="admin",
    tag="admin",
    summary="List admin keys, revoked ones too (never the keys themselves)",
    response=ApiKeyList,
)
def list_admin_keys(call: Call) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyView.of(k) for k in store.list_admin_keys()])


@endpoint(
    blueprint,
    "/v1/admin/keys/{key_id}",
    "DELETE",
    auth="admin",
    tag="admin",
    summary="Revoke an admin key; it fails from the next request on",
    response=ApiKeyView,
)
def revoke_admin_key(call: Call) -> ApiKeyView:
    return ApiKeyView.of(store.revoke_admin_key(call.params["key_id"]))


@endpoint(
    blueprint,
    "/v1/api-keys",
    "POST",
    auth="tenant",
    tag="api-keys",
    status=201,
    summary="Create an API key (the key is shown once)",
    body=CreateApiKey,
    response=IssuedApiKey,
)
def create_api_key(call: Call) -> IssuedApiKey:
    body: CreateApiKey = call.body
    limits.check_room_for(call.tenant_id, "api_keys")
    if body.expires_at is not None and body.expires_at <= clock.now():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    key, secret = store.create_api_key(
        call.tenant_id, body.name, read_only=body.read_only, expires_at=body.expires_at
    )
    return IssuedApiKey(**ApiKeyView.of(key).model_dump(), key=secret)


@endpoint(
    blueprint,
    "/v1/api-keys",
    "GET",
    auth="tenant",
    tag="api-keys",
    summary="List this tenant's API keys (never the keys themselves)",
    response=ApiKeyList,
)
def list_api_keys(call: Call) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyView.of(k) for k in store.list_api_keys(call.tenant_id)])


@endpoint(
    blueprint,
    "/v1/api-keys/{key_id}",
    "DELETE",
    auth="tenant",
    tag="api-keys",
    summary="Revoke an API key; it fails from the next request on",
    response=ApiKeyView,
)
def revoke_api_key(call: Call) -> ApiKeyView:
    return ApiKeyView.of(store.revoke_api_key(call.tenant_id, call.params["key_id"]))
