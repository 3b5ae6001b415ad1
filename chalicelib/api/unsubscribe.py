"""Public unsubscribe links: ``GET /u/{token}`` asks, ``POST /u/{token}`` unsubscribes.

RFC 8058 one-click: mail clients POST ``List-Unsubscribe=One-Click`` to the link in the
``List-Unsubscribe`` header, without cookies or login, and expect it to work; so the POST
needs no auth, accepts any body and content type, never redirects, and answers 200 every
time (repeating it changes nothing). A GET only shows a page with a button: link scanners
and mail-security proxies fetch every link, and must not unsubscribe anyone.

What an unsubscribe does, for the contact the token names: its status becomes
``unsubscribed`` (a bounced or complained contact keeps that stronger status), and the
address of the channel the message came by (email or phone) goes on the suppression list
with reason ``unsubscribed``. Hooks registered with
``chalicelib.domain.unsubscribe.on_unsubscribe`` hear of it once per effective change.
A token for a contact deleted since still answers 200: nothing will be sent to it anyway.

A forged, garbled or unknown-keyed token is 404: an HTML page for browsers (Accept
includes text/html), the usual JSON error otherwise. Pages carry no address, are never
cached, and tell the browser not to send the token on as a Referer.
"""

from __future__ import annotations

import html
from datetime import datetime

from chalice import Blueprint, Response

from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.errors import NotFound
from chalicelib.domain.unsubscribe import UnsubscribeClaim, Unsubscribed, unsubscribe_hooks
from chalicelib.observability import logger
from chalicelib.store import contacts as contacts_store
from chalicelib.store import suppression
from chalicelib.store.secrets import read_unsubscribe_token

blueprint = Blueprint(__name__)

_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_WHAT = {"email": "emails", "sms": "text messages"}


def _page(status: int, title: str, body: str) -> Response:
    document = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:32rem;"
        "padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(body=document, status_code=status, headers=dict(_HEADERS))


def _claim(call: Call) -> UnsubscribeClaim | Response:
    """The token's claim; for a bad token, a 404 page (browsers) or NotFound (the rest)."""
    claim = read_unsubscribe_token(call.params["token"])
    if claim is not None:
        return claim
    if "text/html" in (call.request.headers.get("accept") or ""):
        text = "This unsubscribe link is not valid. It may have been mistyped or cut short."
        return _page(404, "Link not found", f"<p>{html.escape(text)}</p>")
    raise NotFound("unknown or invalid unsubscribe link", field="token")


@endpoint(
    blueprint,
    "/u/{token}",
    "GET",
    auth="public",
    tag="unsubscribe",
    summary="Unsubscribe confirmation page (changes nothing)",
    documented=False,
)
def unsubscribe_page(call: Call) -> Response:
    claim = _claim(call)
    if isinstance(claim, Response):
        return claim
    what = html.escape(_WHAT[claim.channel])
    return _page(
        200,
        "Unsubscribe",
        f"<p>Stop receiving these {what}?</p>"
        "<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@endpoint(
    blueprint,
    "/u/{token}",
    "POST",
    auth="public",
    tag="unsubscribe",
    summary="One-click unsubscribe (RFC 8058): 200, idempotent, no redirect",
    content_types=("*/*",),
    documented=False,
)
def unsubscribe(call: Call) -> Response:
    claim = _claim(call)
    if isinstance(claim, Response):
        return claim
    unsubscribe_recipient(claim, clock.now())
    what = html.escape(_WHAT[claim.channel])
    return _page(200, "You are unsubscribed", f"<p>You will not receive these {what} again.</p>")


def unsubscribe_recipient(claim: UnsubscribeClaim, at: datetime) -> bool:
    """Apply ``claim`` (see the module docstring); True when it was news.

    "News" is decided by the suppression list's conditional write when the contact has an
    address on the channel (so two racing clicks notify the hooks once), else by the
    status change.
    """
    try:
        contact = contacts_store.get_contact(claim.tenant_id, claim.contact_id)
    except NotFound:
        return False
    address = contact.email if claim.channel == "email" else contact.phone
    news = False
    if address:
        _, news = suppression.suppress(claim.tenant_id, address, "unsubscribed", at)
    if contact.status == "subscribed":
        contacts_store.set_status(claim.tenant_id, contact.id, "unsubscribed", at)
        news = news or not address
    if news:
        _notify(Unsubscribed(claim=claim, address=address, at=at))
    return news


def _notify(event: Unsubscribed) -> None:
    """Tell every hook; one that fails is logged, and neither stops the others nor the 200."""
    for hook in unsubscribe_hooks():
        try:
            hook(event)
        except Exception:
            logger.exception(
                "unsubscribe hook failed",
                extra={"hook": getattr(hook, "__name__", repr(hook))},
            )
