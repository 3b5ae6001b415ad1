"""The API's own description: the OpenAPI document and an explorer for people.

The explorer is Swagger UI 5 (swagger-ui-dist from the npm registry, Apache-2.0: see
explorer/LICENSE), vendored as its two built files and served from the package itself, so
it works offline on the embedded stack and inside a VPC with no CDN.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.openapi import openapi_document
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain.errors import NotFound

blueprint = Blueprint(__name__)

SWAGGER_UI_VERSION = "5.35.0"
_ASSETS_DIR = Path(__file__).parent / "explorer"
# The files the explorer page loads, and their content types; nothing else is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
}
# Relative URLs: the page is at {stage}/docs, its assets at {stage}/docs/assets/.
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/assets/swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body>
<noscript>The explorer needs JavaScript. The API is described by
<a href="v1/openapi.json">v1/openapi.json</a> (OpenAPI 3.1).</noscript>
<div id="explorer"></div>
<script src="docs/assets/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="docs/assets/explorer.js?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
"""


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
    summary="The interactive API explorer (Swagger UI)",
    documented=False,
)
def docs(call: Call) -> Response:
    return Response(
        body=_PAGE, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"}
    )


@endpoint(
    blueprint,
    "/docs/assets/{name}",
    "GET",
    auth="public",
    tag="meta",
    summary="A file of the API explorer",
    documented=False,
)
def docs_asset(call: Call) -> Response:
    name = call.params["name"]
    if name not in ASSETS:
        raise NotFound("no such explorer file", field="name")
    return Response(
        body=_asset(name),
        status_code=200,
        headers={"Content-Type": ASSETS[name], "Cache-Control": "public, max-age=86400"},
    )


@cache
def _asset(name: str) -> str:
    return (_ASSETS_DIR / name).read_text(encoding="utf-8")
