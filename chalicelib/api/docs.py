"""The API's own description: the OpenAPI document and a page for people."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.openapi import docs_page, openapi_document
from chalicelib.api.routing import Call, endpoint

blueprint = Blueprint(__name__)


@endpoint(
    blueprint,
    "/v1/openapi.json",
    "GET",
    auth="public",
    tag="meta",
    summary="This API's OpenAPI 3.1 document",
    documented=False,
)
def openapi(call: Call) -> dict[str, Any]:
    return openapi_document()


@endpoint(
    blueprint,
    "/docs",
    "GET",
    auth="public",
    tag="meta",
    summary="Human-readable API docs",
    documented=False,
)
def docs(call: Call) -> Response:
    return Response(
        body=docs_page(), status_code=200, headers={"Content-Type": "text/html; charset=utf-8"}
    )
