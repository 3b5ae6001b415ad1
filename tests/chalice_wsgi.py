"""Chalice's local API Gateway as a WSGI application, so WSGI test tools (schemathesis) call
Herald's real routes in-process, through the same gateway the embedded stack serves."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from chalice.test import Client

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class ChaliceWsgi:
    """A WSGI callable that hands each request to a ``chalice.test.Client``'s gateway."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # API Gateway sees the raw (still percent-encoded) path, as chalice local does.
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if not path:
            path = quote(environ.get("PATH_INFO", "/"), safe="/:@!$&'()*+,;=-._~")
            if environ.get("QUERY_STRING"):
                path = f"{path}?{environ['QUERY_STRING']}"
        headers = {
            name[5:].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        response = self.client.http.request(
            environ["REQUEST_METHOD"], path, headers=headers, body=body
        )
        status = HTTPStatus(response.status_code)
        start_response(f"{status.value} {status.phrase}", list(response.headers.items()))
        payload = response.body
        return [payload if isinstance(payload, bytes) else str(payload or "").encode()]
