"""The suppression list: list, look up, add, remove. A suppressed address is never sent to.

Addresses are normalised as contacts are (emails lower-cased, phones E.164), so
``Ann@X.com`` and ``ann@x.com`` are one entry. In a path the address is URL-encoded
(``/v1/suppressions/ann%40x.com``, ``/v1/suppressions/%2B4915112345678``). An entry's reason
only ever rises (manual < unsubscribed < bounced < complained): adding answers 201 when it
created the entry or raised its reason, 200 with the entry unchanged otherwise.
"""

from __future__ import annotations

from urllib.parse import unquote

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint, to_response
from chalicelib.domain import clock
from chalicelib.domain.suppression import Suppression, SuppressionReason
from chalicelib.store import suppression as store

blueprint = Blueprint(__name__)


class SuppressionListQuery(ListQuery):
    reason: SuppressionReason | None = None


class AddSuppression(Input):
    address: str = Field(min_length=3, max_length=320, description="An email or E.164 phone.")
    reason: SuppressionReason = "manual"


def _address(call: Call) -> str:
    """The path's address, decoded once more if the gateway left it encoded."""
    raw = call.params["address"]
    return unquote(raw) if "%" in raw else raw


@endpoint(
    blueprint,
    "/v1/suppressions",
    "GET",
    auth="tenant",
    tag="suppressions",
    summary="List suppressed addresses, optionally of one reason",
    query=SuppressionListQuery,
    response=ListPage[Suppression],
)
def list_suppressions(call: Call) -> ListPage[Suppression]:
    items, cursor = store.list_suppressions(
        call.tenant_id, reason=call.query.reason, cursor=call.query.cursor, limit=call.query.limit
    )
    return ListPage[Suppression](items=items, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/suppressions",
    "POST",
    auth="tenant",
    tag="suppressions",
    status=201,
    summary="Suppress an address (201 added or reason raised; 200 already so)",
    body=AddSuppression,
    response=Suppression,
)
def add_suppression(call: Call) -> object:
    record, changed = store.suppress(
        call.tenant_id, call.body.address, call.body.reason, clock.now()
    )
    return to_response(record, 201 if changed else 200)


@endpoint(
    blueprint,
    "/v1/suppressions/{address}",
    "GET",
    auth="tenant",
    tag="suppressions",
    summary="Is this address suppressed? (404 if not)",
    response=Suppression,
)
def get_suppression(call: Call) -> Suppression:
    return store.get_suppression(call.tenant_id, _address(call))


@endpoint(
    blueprint,
    "/v1/suppressions/{address}",
    "DELETE",
    auth="tenant",
    tag="suppressions",
    summary="Remove an address from the suppression list (sending to it is allowed again)",
)
def remove_suppression(call: Call) -> None:
    store.unsuppress(call.tenant_id, _address(call))
