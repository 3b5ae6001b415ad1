"""``Idempotency-Key`` on the native create routes: a retried request gets the first answer.

A client that sends the header on ``POST /v1/campaigns``, ``/v1/contacts``, ``/v1/imports``
or ``/v1/events`` may repeat the request (a timeout, a lost connection) without creating
twice: the first request with a key runs; every later one with the same key, tenant and
route gets the first answer's status and body back (``Idempotent-Replayed: true``) for 24
hours. The same key with a different request (path, query, content type or body) is
refused with 422; a repeat that arrives while the first still runs gets 409 and should be
retried. Only successful answers are kept: a request refused with a 4xx, or failing with
a 5xx, leaves the key free, so the corrected or retried request runs.

Herald keeps the keys in its own table under the tenant's scope (``store.idempotency``)
rather than with Powertools' idempotency utility, whose DynamoDB layer puts every key of
a function in one partition outside any tenant's scope and stores a function's return
value, not an HTTP answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable

from chalice import Response
from chalice.app import Request

from chalicelib.domain import clock
from chalicelib.domain.errors import Conflict, ValidationFailed
from chalicelib.store import idempotency as keys

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
MAX_KEPT_BODY = 300_000  # characters; DynamoDB items stop at 400 KB
_KEY = re.compile(r"^[\x21-\x7e]{1," + str(MAX_KEY_LENGTH) + "}$")


class IdempotencyKeyReused(ValidationFailed):
    """The key was first used with another request."""

    code = "idempotency_key_reused"


def answer_once(
    request: Request,
    tenant_id: str,
    route: str,
    params: dict[str, str],
    produce: Callable[[], Response],
) -> Response:
    """``produce()`` the answer, once per idempotency key (when the request carries one)."""
    key = request.headers.get(HEADER)
    if key is None:
        return produce()
    if not _KEY.match(key):
        raise ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters", field=HEADER
        )
    fingerprint = _fingerprint(request, params)
    held = keys.claim(tenant_id, route, key, fingerprint, clock.now())
    if held.outcome == "mismatch":
        raise IdempotencyKeyReused(
            f"this {HEADER} was already used with a different request", field=HEADER
        )
    if held.outcome == "in_progress":
        raise Conflict(f"a request with this {HEADER} is still running; retry it", field=HEADER)
    if held.answer is not None:
        return Response(
            body=held.answer.body,
            status_code=held.answer.status,
            headers={"Content-Type": "application/json", REPLAYED_HEADER: "true"},
        )
    try:
        response = produce()
    except BaseException:
        keys.release(tenant_id, route, key, fingerprint)
        raise
    body = response.body if isinstance(response.body, str) else None
    if response.status_code < 400 and body is not None and len(body) <= MAX_KEPT_BODY:
        keys.remember(
            tenant_id, route, key, fingerprint, keys.StoredAnswer(response.status_code, body)
        )
    else:
        keys.release(tenant_id, route, key, fingerprint)
    return response


def _fingerprint(request: Request, params: dict[str, str]) -> str:
    """What makes two requests the same: path parameters, query, content type and body.

    A JSON body is compared by value, so a client that re-serialises it (other key order
    or spacing) still retries the same request.
    """
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = request.raw_body or b""
    if isinstance(raw, str):
        raw = raw.encode()
    body = raw.decode("utf-8", errors="replace")
    if content_type in ("", "application/json"):
        with contextlib.suppress(ValueError):  # not JSON after all: compared as sent
            body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    query = request.query_params
    shape = {
        "params": params,
        "query": sorted((name, sorted(query.getlist(name))) for name in query) if query else [],
        "content_type": content_type,
        "body": body,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
