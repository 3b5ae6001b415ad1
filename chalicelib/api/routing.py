"""The single gate every HTTP route passes through.

``endpoint`` registers a Chalice view that, in order: authenticates the caller (tenant
key, admin key, or explicitly public), parses the body and query string into the
declared pydantic models (unknown fields refused), calls the handler with a ``Call``,
serialises what it returns, and turns every failure into the one error shape. It also
records the operation for the OpenAPI document, so the docs are the routes.

Chalice middleware never sees exceptions raised in views, hence a decorator and not
middleware. A route cannot forget authentication: ``auth`` has no default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from chalice import Blueprint, Chalice, Response
from chalice.app import BadRequestError, Request
from pydantic import BaseModel, ValidationError

from chalicelib.api import errors as api_errors
from chalicelib.api import idempotency
from chalicelib.domain import clock, errors, ids
from chalicelib.domain.onsite import ContactClaim
from chalicelib.domain.tenants import ADMIN_SCOPE, parse_key
from chalicelib.observability import logger
from chalicelib.services import limits
from chalicelib.store import tenants as tenant_store
from chalicelib.store.secrets import read_contact_token

# "contact": an end user with a contact token (the on-site inbox), never an API key.
Auth = Literal["tenant", "admin", "public", "contact"]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # all a read-only key may call


@dataclass(frozen=True)
class Operation:
    """One route as the OpenAPI document describes it."""

    method: str
    path: str
    summary: str
    auth: Auth
    tag: str
    status: int
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    path_params: tuple[str, ...]
    documented: bool
    idempotent: bool = False
    dialect_errors: bool = False  # errors reshaped by an ErrorEnvelope, not Herald's shape


OPERATIONS: list[Operation] = []


@dataclass
class Call:
    """What a handler gets: who is calling, and the parsed input."""

    request: Request
    tenant_id: str
    body: Any = None
    query: Any = None
    params: dict[str, str] = field(default_factory=dict)
    contact_id: str = ""  # the contact a contact token names (auth "contact" only)


Handler = Callable[[Call], Any]
# Rewrites an error response (status >= 400, Herald's shape) for an API dialect whose
# clients expect another envelope; see chalicelib/api/dialects.
ErrorEnvelope = Callable[[Response], Response]
# The envelope of each route path that has one, for refusals made before a view runs.
_ENVELOPES: dict[str, ErrorEnvelope] = {}


def endpoint(
    app: Chalice | Blueprint,
    path: str,
    method: str,
    *,
    auth: Auth,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    content_types: tuple[str, ...] = (JSON,),
    documented: bool = True,
    error_envelope: ErrorEnvelope | None = None,
    idempotent: bool = False,
    query_in_body: bool = False,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method path`` behind the gate (see module docstring).

    ``idempotent`` routes honour an ``Idempotency-Key`` header (chalicelib.api.idempotency).
    ``query_in_body``: the query string's parameters are read as the body's (a value in
    the body wins), for a dialect whose clients send either.
    """
    path_params = tuple(re.findall(r"{(\w+)}", path))

    def decorator(handler: Handler) -> Handler:
        def view(**params: str) -> Response:
            response = answer(**params)
            if error_envelope is not None and response.status_code >= 400:
                return error_envelope(response)
            return response

        def answer(**params: str) -> Response:
            request = app.current_request
            assert request is not None  # Chalice sets it before calling a view
            try:
                if auth == "contact":
                    claim = _contact_claim(request)
                    call = Call(
                        request=request,
                        tenant_id=claim.tenant_id,
                        params=_native_ids(params),
                        contact_id=claim.contact_id,
                    )
                else:
                    tenant_id = _authenticate(request, auth)
                    call = Call(request=request, tenant_id=tenant_id, params=_native_ids(params))
                if call.tenant_id and call.tenant_id != ADMIN_SCOPE:
                    logger.append_keys(tenant_id=call.tenant_id)
                    limits.admit_request(call.tenant_id)  # requests_per_minute (429)
                if query is not None:
                    call.query = _parse(query, _query_dict(request), "query")
                if body is not None:
                    data = read_body(request)
                    if query_in_body and isinstance(data, dict):
                        data = {**_query_dict(request), **data}
                    call.body = _parse(body, data, "")
                if idempotent:
                    return idempotency.answer_once(
                        request,
                        call.tenant_id,
                        f"{method} {path}",
                        call.params,
                        lambda: to_response(handler(call), status),
                    )
                return to_response(handler(call), status)
            except _InvalidInput as invalid:
                return api_errors.from_validation_error(invalid.error, invalid.prefix)
            except errors.HeraldError as error:
                return api_errors.from_domain_error(error)
            except Exception:
                logger.exception("unhandled error", extra={"path": path, "method": method})
                return api_errors.error_response(500, "internal_error", "internal error")

        view.__name__ = f"{handler.__name__}_{method.lower()}"
        app.route(path, methods=[method], content_types=list(content_types))(view)
        if error_envelope is not None:
            _ENVELOPES[path] = error_envelope
        OPERATIONS.append(
            Operation(
                method=method.lower(),
                path=path,
                summary=summary,
                auth=auth,
                tag=tag,
                status=status,
                body=body,
                query=query,
                response=response,
                path_params=path_params,
                documented=documented,
                idempotent=idempotent,
                dialect_errors=error_envelope is not None,
            )
        )
        return handler

    return decorator


def _native_ids(params: dict[str, str]) -> dict[str, str]:
    """Path ids given as dashed UUIDs (or prefix + dashed UUID) in their native form."""
    return {
        name: ids.native(value, ids.PATH_PREFIXES[name]) if name in ids.PATH_PREFIXES else value
        for name, value in params.items()
    }


def gateway_errors(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """HTTP middleware: Chalice's own refusals, made before any view runs (415 for a
    content type the route does not take, 405 for a method the path does not have), in
    Herald's one error shape (or the route's dialect envelope) instead of Chalice's
    ``{"Code", "Message"}``."""
    response = get_response(request)
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", str(body["Code"]).removesuffix("Error")).lower()
    field = "Content-Type" if response.status_code == 415 else None
    headers = {
        k: str(v) for k, v in (response.headers or {}).items() if k.lower() != "content-type"
    }
    herald = api_errors.error_response(
        response.status_code, code, str(body["Message"]), field=field, headers=headers
    )
    envelope = _ENVELOPES.get(str(request.context.get("resourcePath", "")))
    return envelope(herald) if envelope is not None else herald


class _InvalidInput(Exception):
    def __init__(self, error: ValidationError, prefix: str) -> None:
        self.error = error
        self.prefix = prefix


def _parse(model: type[BaseModel], data: Any, prefix: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _InvalidInput(error, prefix) from error


def _authenticate(request: Request, auth: Auth) -> str:
    """The caller's scope: a tenant id, ADMIN_SCOPE, or '' for a public route."""
    if auth == "public":
        return ""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise errors.Unauthorized("missing bearer API key", field="Authorization")
    parsed = parse_key(presented.strip())
    grant = tenant_store.authenticate(parsed, clock.now()) if parsed else None
    if grant is None:
        raise errors.Unauthorized("invalid, revoked or expired API key", field="Authorization")
    if grant.read_only and request.method not in READ_METHODS:
        raise errors.Forbidden("this API key is read-only", field="Authorization")
    scope = grant.scope
    if auth == "admin" and scope != ADMIN_SCOPE:
        raise errors.Forbidden("this route needs an admin key", field="Authorization")
    if auth == "tenant" and scope == ADMIN_SCOPE:
        raise errors.Forbidden("this route needs a tenant API key", field="Authorization")
    return scope


def _contact_claim(request: Request) -> ContactClaim:
    """The contact a ``Authorization: Bearer <contact token>`` names; 401 otherwise. Only
    the header is read: a token in a query string would end up in access logs."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    claim = None
    if scheme.lower() == "bearer" and presented.strip():
        claim = read_contact_token(presented.strip(), clock.now())
    if claim is None:
        raise errors.Unauthorized(
            "missing, invalid or expired contact token", field="Authorization"
        )
    return claim


def _query_dict(request: Request) -> dict[str, Any]:
    """Query parameters; a name given more than once becomes a list."""
    params = request.query_params
    result: dict[str, Any] = {}
    if not params:
        return result
    for name in params:
        values = params.getlist(name)
        result[name] = values if len(values) > 1 else values[0]
    return result


def read_body(request: Request) -> Any:
    """The request body as JSON, or as a dict when form-encoded (repeated names → lists)."""
    content_type = (request.headers.get("content-type") or JSON).split(";")[0].strip().lower()
    raw = request.raw_body or b""
    if isinstance(raw, str):
        raw = raw.encode()
    if content_type == FORM:
        pairs = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v if len(v) > 1 or k.endswith("[]") else v[0] for k, v in pairs.items()}
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, BadRequestError) as error:
        raise errors.BadRequest(f"request body is not valid JSON: {error}", field="body") from error


def to_response(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(body="", status_code=204 if status == 200 else status)
    if isinstance(result, BaseModel):
        payload = result.model_dump_json(by_alias=True)
    else:
        payload = api_errors.json_body(_dump(result))
    return Response(body=payload, status_code=status, headers={"Content-Type": JSON})


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def tenant_routes(
    app: Chalice | Blueprint, tag: str, **defaults: Any
) -> Callable[..., Callable[[Handler], Handler]]:
    """The route decorator of one API dialect: ``endpoint`` for a tenant's key, in the
    dialect's ``tag``, with its fixed options (error envelope, content types) in
    ``defaults``; a route's own options win."""

    def route(path: str, method: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        chosen = {**defaults, **options}
        return endpoint(app, path, method, auth="tenant", tag=tag, summary=summary, **chosen)

    return route
