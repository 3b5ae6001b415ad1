"""One JSON error shape for every 4xx and 5xx: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response
from pydantic import ConfigDict, ValidationError

from chalicelib.api.models import ApiModel
from chalicelib.domain import errors

STATUS_BY_ERROR: dict[type[errors.HeraldError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.InvalidTransition: 409,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.ValidationFailed: 422,
    errors.LimitExceeded: 429,
    errors.Unavailable: 503,
}


class ErrorDetail(ApiModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(ApiModel):
    """What every failed request returns."""

    error: ErrorDetail


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field, details=details))
    return Response(
        body=body.model_dump_json(exclude_none=True),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def from_domain_error(error: errors.HeraldError) -> Response:
    status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(error, cls)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(error, errors.RetryLater):
        headers["Retry-After"] = str(error.retry_after)
    details = getattr(error, "details", None)  # ValidationFailures: every problem found
    return error_response(
        status, error.code, error.message, field=error.field, details=details, headers=headers
    )


def field_path(location: tuple[int | str, ...], prefix: str = "") -> str:
    """``("steps", 0, "subject")`` → ``steps.0.subject``; the form every error names a field in."""
    parts = [str(p) for p in location if p not in ("body", "query")]
    path = ".".join(parts)
    return f"{prefix}.{path}" if prefix and path else (path or prefix)


def _said(problem: Any) -> str:
    """Pydantic's message, except where it would name one of Herald's classes."""
    if problem["type"] == "model_type":
        return "Expected a JSON object."
    return str(problem["msg"])


def from_validation_error(error: ValidationError, prefix: str = "") -> Response:
    """Pydantic's errors as a 422 naming the first bad field, with all of them in ``details``."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    details = [
        {"field": field_path(tuple(p["loc"]), prefix), "message": _said(p), "type": p["type"]}
        for p in problems
    ]
    first = details[0] if details else {"field": prefix, "message": "invalid input"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return error_response(
        422, "validation_error", message, field=first["field"] or None, details=details
    )


def json_body(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)
