"""Aggregated event callbacks (seed 003): the form Herald POSTs and the windows it fills.

When a campaign has an ``event_callback`` URL, the addresses that had the same event are
gathered over a window (``Settings.callback_window_seconds``, 60 s by default) and POSTed
together as ``application/x-www-form-urlencoded``::

    event=delivered&when=1700000000&email[0]=a@example.com&email[1]=b@example.com

(``telephone[i]`` for SMS campaigns). The URL is called exactly as registered, so its own
query string reaches the receiver unchanged. A window is keyed by when Herald *received*
the events, not when they happened, so a late event lands in an open window instead of
one already flushed; ``when`` is the earliest event time in the POST.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from chalicelib.domain.feedback import CallbackEvent, Channel

ADDRESSES_PER_POST = 500  # keeps a POST (and the queue message carrying it) well under 64 KB
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def window_start(at: datetime, window_seconds: int) -> int:
    """The Unix second the window holding ``at`` began."""
    epoch = int(at.astimezone(UTC).timestamp())
    return epoch - epoch % window_seconds


def address_field(channel: Channel) -> str:
    return "telephone" if channel == "sms" else "email"


def callback_form(
    event: CallbackEvent, when: int, channel: Channel, addresses: Sequence[str]
) -> bytes:
    """The body of one callback POST, fields in the seed's order and names."""
    name = address_field(channel)
    fields = [("event", event), ("when", str(when))]
    fields += [(f"{name}[{index}]", address) for index, address in enumerate(addresses)]
    return urlencode(fields).encode()


def in_posts(addresses: Sequence[str], size: int = ADDRESSES_PER_POST) -> Iterator[Sequence[str]]:
    """``addresses`` split into the groups one POST each carries."""
    for start in range(0, len(addresses), size):
        yield addresses[start : start + size]
