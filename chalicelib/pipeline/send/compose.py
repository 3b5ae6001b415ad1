"""Composing one recipient's message: the step's templates and senders (cached a minute
per process), rendered for a contact with its unsubscribe link and headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chalicelib.channels.base import (
    OutboundMessage,
)
from chalicelib.channels.identities import sender_usability
from chalicelib.domain import clock
from chalicelib.domain.campaigns import Campaign, Step
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import NotFound
from chalicelib.domain.feedback import TAG_MESSAGE
from chalicelib.domain.senders import Sender
from chalicelib.domain.templates import (
    RenderContext,
    RenderedEmail,
    RenderedPush,
    RenderedSms,
    RenderedTelegram,
    Template,
    contact_variables,
    render,
)
from chalicelib.domain.unsubscribe import UnsubscribeClaim, unsubscribe_headers, unsubscribe_url
from chalicelib.settings import get_settings
from chalicelib.store.secrets import unsubscribe_token
from chalicelib.store.senders import get_sender
from chalicelib.store.templates import get_template

CONTENT_CACHE_SECONDS = 60.0  # templates and senders are re-read at most this often
T = TypeVar("T")
RENDER_ERROR_PREFIX = "render_error"


class _TimedCache:
    """Per-process cache of templates and senders for ``CONTENT_CACHE_SECONDS``: a batch
    reads its pools without a DynamoDB call each time, and an edit shows within a minute."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str], load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < CONTENT_CACHE_SECONDS:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_content_cache = _TimedCache()


def forget_cached_content() -> None:
    """Drop cached templates and senders (tests that edit them between sends)."""
    _content_cache.clear()


@dataclass(frozen=True)
class Content:
    """The usable templates and senders of a campaign step, loaded once per batch."""

    templates: list[Template]
    senders: list[Sender]


def load_content(tenant_id: str, template_ids: Sequence[str], sender_ids: Sequence[str]) -> Content:
    """The step's templates and usable senders; missing ones are left out of the rotation."""
    templates = [
        t
        for t in (_cached(tenant_id, "template", i, get_template) for i in template_ids)
        if t is not None
    ]
    senders = [
        s
        for s in (_cached(tenant_id, "sender", i, get_sender) for i in sender_ids)
        if s is not None and sender_usability(s)[0].usable
    ]
    return Content(templates, senders)


def _cached(tenant_id: str, kind: str, item_id: str, read: Callable[[str, str], T]) -> T | None:
    def load() -> T | None:
        try:
            return read(tenant_id, item_id)
        except NotFound:
            return None

    return _content_cache.get((tenant_id, kind, item_id), load)


def compose(
    tenant_id: str,
    campaign: Campaign,
    contact: Contact | None,
    address: str,
    *,
    template: Template,
    sender: Sender,
    tags: Mapping[str, str],
    step: Step | None = None,
    event: Mapping[str, Any] | None = None,
) -> OutboundMessage:
    """Render ``template`` for one recipient; RenderError when it cannot be rendered.

    On email and SMS a contact gets an unsubscribe link (and email the one-click
    headers); an address with no contact (a test send to a colleague) gets neither. The
    other channels have no unsubscribe link (``unsubscribe_url`` renders empty): a user
    leaves them in the app, the chat or the page (docs/channels.md). ``step`` is the
    campaign's step being sent (a flow's send node; a broadcast's main step by default);
    ``event`` the event that enrolled the contact in a flow, rendered as
    ``{{ event.properties.x }}``.
    """
    settings = get_settings()
    sent = step or campaign.main_step
    token = None
    if contact is not None and sent.channel in ("email", "sms"):
        # A flow's message is named by its full message id (one per visit); a broadcast's
        # by its step, the message id following from it.
        ref = tags.get(TAG_MESSAGE, sent.id) if step is not None else sent.id
        claim = UnsubscribeClaim(tenant_id, contact.id, sent.channel, campaign.id, ref)
        token = unsubscribe_token(claim)
    context = RenderContext(
        contact=contact_variables(contact) if contact is not None else {"email": address},
        now=clock.now(),
        campaign={"id": campaign.id, "name": campaign.name, "number": campaign.number},
        unsubscribe_url=unsubscribe_url(token, settings) if token else "",
        event=event,
    )
    rendered = render(template.content, context)
    common: dict[str, Any] = {
        "tenant_id": tenant_id,
        "message_id": tags.get(TAG_MESSAGE, ""),
        "to": address,
        "tags": tags,
    }
    if isinstance(rendered, RenderedEmail):
        reply_to = campaign.reply_to or ", ".join(sender.reply_to) or None
        return OutboundMessage(
            **common,
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            sender=sender.from_email or "",
            sender_name=campaign.from_name or sender.from_name,
            reply_to=reply_to,
            headers=unsubscribe_headers(token, settings) if token else {},
            track_opens=campaign.track_opens,
            track_clicks=campaign.track_clicks,
        )
    if isinstance(rendered, RenderedSms):
        sms_sender = sender.origination_number or sender.sender_id or ""
        return OutboundMessage(**common, text=rendered.body, sender=sms_sender)
    if isinstance(rendered, RenderedPush):
        return OutboundMessage(
            **common,
            subject=rendered.title,
            text=rendered.body,
            data=rendered.data,
            sender=sender.id,
        )
    if isinstance(rendered, RenderedTelegram):
        return OutboundMessage(
            **common, text=rendered.text, parse_mode=rendered.parse_mode, sender=sender.id
        )
    return OutboundMessage(
        **common, subject=rendered.title, text=rendered.body, url=rendered.url, sender=sender.id
    )
