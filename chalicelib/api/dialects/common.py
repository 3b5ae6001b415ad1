"""What the seed dialects share: native input models built from translated fields, errors
named in the seed's terms, and Django REST framework's error shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from chalice import Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.api.errors import json_body
from chalicelib.domain.errors import NotFound, ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)


def native(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """``values`` (translated from a seed's fields) as the native input ``model``.

    A value the native model refuses is a ValidationFailed naming the native field (the
    dialect renames it), never an unhandled pydantic error.
    """
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in problem["loc"]) or None
        raise ValidationFailed(problem["msg"], field=field) from None


@contextmanager
def fields_renamed(rename: Callable[[str], str | None]) -> Iterator[None]:
    """A ValidationFailed raised inside names the seed's field (``rename`` of the native
    one; None: no field) instead of the native field the domain checked."""
    try:
        yield
    except ValidationFailed as error:
        if error.field is not None:
            error.field = rename(error.field)
        raise


def drf_errors(response: Response) -> Response:
    """Herald's error as DRF shapes it, and nothing else (a client iterates the keys).

    Validation (422 in Herald) is DRF's 400 ``{"field": ["message", ...]}`` (a problem
    without a field goes under ``non_field_errors``); anything else is ``{"detail": ...}``
    with Herald's status (a body that is not JSON: 400, as DRF's parse error).
    """
    error = json.loads(response.body)["error"]
    validation = response.status_code == 422
    shaped: dict[str, Any]
    if validation:
        shaped = {}
        for problem in error.get("details") or [error]:
            name = (problem.get("field") or "non_field_errors").removeprefix("query.")
            shaped.setdefault(name, []).append(problem["message"])
    else:
        shaped = {"detail": error["message"]}
    return Response(
        body=json_body(shaped),
        status_code=400 if validation else response.status_code,
        headers=dict(response.headers or {}),
    )


# -- DRF's page-number pagination (seeds 001 and 002) --------------------------------------
_PAGE_NUMBER = re.compile(r"^[0-9]{1,9}$")


def page_number(raw: str, pages: int) -> int:
    """DRF's page parameter: 1..pages or 'last'; anything else is 404 "Invalid page."."""
    if raw == "last":
        return pages
    if not _PAGE_NUMBER.match(raw) or not 1 <= int(raw) <= pages:
        raise NotFound("Invalid page.", field="page")
    return int(raw)


def page_link(request: Request, page: int, base: str) -> str:
    """The URL of ``page`` of the listing at ``base``: the same query, ``page`` replaced
    (dropped for the first page), parameters sorted, as DRF's ``replace_query_param``
    builds it."""
    query = request.query_params
    params = [
        (name, value)
        for name in sorted(query or {})
        if name != "page"
        for value in (query.getlist(name) if query else [])
    ]
    if page > 1:
        params = sorted([*params, ("page", str(page))])
    return f"{base}?{urlencode(params)}" if params else base
