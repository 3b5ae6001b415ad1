"""Absolute links Herald puts in API responses (seed-002 ``next``/``previous``).

They are built from ``Settings.public_base_url`` (the stack's API URL, or the operator's
custom domain; the local runner sets the embedded API's own URL), never from the
request's ``Host`` or ``X-Forwarded-Proto``: those are whatever the client sends, and a
link built from them points wherever a caller (or anything in front of a cache) says.
"""

from __future__ import annotations

from chalice.app import Request

from chalicelib.settings import get_settings


def route_url(request: Request) -> str:
    """The public URL of the route that answered ``request`` (no query string).

    The route comes from API Gateway's ``resourcePath`` (the stage is part of the base URL,
    not of the route), with a trailing slash when the client used one. For routes without
    path parameters: a parameter would be left as its ``{name}``."""
    context = request.context or {}
    route = str(context.get("resourcePath") or "/")
    used = str(context.get("path") or route)
    if used.endswith("/") and not route.endswith("/"):
        route += "/"
    return get_settings().public_base_url.rstrip("/") + route
