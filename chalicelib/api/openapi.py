"""The OpenAPI 3.1 document, generated from the routes the gate registered and their models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.api import idempotency
from chalicelib.api.errors import ErrorBody
from chalicelib.api.routing import OPERATIONS, Operation

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Malformed request",
    "401": "Missing, invalid, revoked or expired API key",
    "403": "The key may not use this route (an admin route, or a write with a read-only key)",
    "404": "Not found (or not this tenant's)",
    "409": "Conflicts with the current state",
    "413": "The request body is too large",
    "415": "The Content-Type is not one this operation takes",
    "422": "Validation failed; `error.field` names the field",
}
# A seed dialect's errors keep the shape its own clients parse (see docs/api-seed-00N.md).
_DIALECT_ERROR = {
    "type": "object",
    "description": "The dialect's own error shape, as its seed document defines it.",
}


# The seed dialects are their own groups in an explorer, described by their seed number.
_SEED_TAGS = {
    "seed 000": "Seed 000's Laravel-style email campaigns API (docs/api-seed-000.md): "
    "`/public/v1/email/campaigns`, event-triggered sends, delivery-gated automation "
    "iterations, address verification; `{ok, message, errors}` error shapes.",
    "seed 001": "Seed 001's DRF-style email sequences API (docs/api-seed-001.md): "
    "`/email/campaigns/` with nested steps, UUIDs, send windows, stop on reply.",
    "seed 002": "Seed 002's DRF-style campaigns API (docs/api-seed-002.md): "
    "`/campaigns/`, page-numbered lists, DRF error shapes.",
    "seed 003": "Seed 003's numbered campaigns API (docs/api-seed-003.md): "
    "`/campaign/<n>`, form or JSON parameters, numbered lists, segments and domains.",
    "seed 004": "Seed 004's visual-editor campaigns API (docs/api-seed-004.md): "
    "`/api/workspaces/{workspaceId}/campaigns`, workflows of trigger, action, condition and "
    "delay nodes run by the flow runtime, enrolment and trigger execution.",
}


def _tags(operations: list[Operation]) -> list[dict[str, str]]:
    """Every tag once, native ones first in registration order, then the seed dialects."""
    names = list(dict.fromkeys(op.tag for op in operations))
    names.sort(key=lambda name: name.split(":")[0] in _SEED_TAGS)
    return [
        {"name": name, "description": _SEED_TAGS[name.split(":")[0]]}
        if name.split(":")[0] in _SEED_TAGS
        else {"name": name}
        for name in names
    ]


def _schema_name(model: type[BaseModel]) -> str:
    return model.__name__.replace("[", "_").replace("]", "").replace(",", "_").replace(" ", "")


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    documented = [op for op in OPERATIONS if op.documented]
    models: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
    for op in documented:
        if op.body:
            models.append((op.body, "validation"))
        if op.query:
            models.append((op.query, "validation"))
        if op.response:
            models.append((op.response, "serialization"))
    refs, definitions = models_json_schema(models, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in documented:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": "1.0.0",
            "description": "Herald's native API (`/v1`): contacts, content, campaigns and "
            "their results; and the seed 000 to 004 campaign APIs, each its own group.",
        },
        "tags": _tags(documented),
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Tenant API key"},
                "adminKey": {"type": "http", "scheme": "bearer", "description": "Admin key"},
                "contactToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A contact token (POST /v1/contacts/{contact_id}/token): "
                    "one contact reads its on-site inbox",
                },
            },
        },
    }


_SECURITY_SCHEMES = {"tenant": "apiKey", "admin": "adminKey", "contact": "contactToken"}


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in op.path_params
        ],
        "responses": {},
    }
    if op.idempotent:
        operation["parameters"].append(
            {
                "name": idempotency.HEADER,
                "in": "header",
                "required": False,
                "description": (
                    "Makes a retry safe: the first request with a key runs, and every repeat "
                    "with the same key (same tenant, same route) within 24 hours gets its "
                    "answer again, with `Idempotent-Replayed: true`. The same key with a "
                    "different request is refused with 422 `idempotency_key_reused`; a "
                    "repeat while the first still runs gets 409."
                ),
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.MAX_KEY_LENGTH,
                },
            }
        )
    if op.auth != "public":
        operation["security"] = [{_SECURITY_SCHEMES[op.auth]: []}]
    if op.query:
        schema = op.query.model_json_schema(ref_template=_REF)
        for name, prop in schema.get("properties", {}).items():
            operation["parameters"].append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "schema": prop,
                }
            )
    if op.body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    success: dict[str, Any] = {"description": "OK"}
    if op.response:
        success["content"] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    operation["responses"][str(op.status)] = success
    error_ref = _DIALECT_ERROR if op.dialect_errors else refs[(ErrorBody, "serialization")]
    for status, description in _ERRORS.items():
        if status in ("401", "403") and op.auth == "public":
            continue
        operation["responses"][status] = {
            "description": description,
            "content": {"application/json": {"schema": error_ref}},
        }
    return operation
