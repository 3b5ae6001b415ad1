"""The one interface every delivery channel implements (``registry`` finds them by name).

A channel knows two things: which of a contact's addresses it delivers to
(``address_of``) and how to hand one rendered message to its provider (``send``). The
sender pipeline knows nothing else about email or SMS, so push (SNS mobile endpoints),
on-site (a per-contact inbox) and Telegram fit in by implementing these two methods and
taking a line in ``chalicelib.channels.registry``.

``send`` either returns the provider's message id or raises one of two errors, because the
pipeline needs exactly one decision from a failure: retry it (``TransientSendError``:
throttling, timeouts, provider faults) or give up on this recipient
(``PermanentSendError``: rejected, unverified sender, opted out). A permanent error may
carry a ``skip`` reason when the recipient, not the message, is the problem (an SMS
opt-out): the pipeline counts it as skipped and suppresses the address instead of
counting a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message for one recipient, as a provider needs it.

    ``text`` is the SMS, push, Telegram or on-site body or the email's plain-text part;
    ``subject`` is the email's subject or the title of a push or on-site message; ``html``
    is email-only, ``data`` push-only, ``url`` on-site-only, ``parse_mode`` Telegram-only.
    ``sender`` is the email From address, the SMS sender id / origination number, or the
    id of the tenant's push, Telegram or on-site sender (whose credentials the channel
    reads itself). ``headers`` are extra email headers (List-Unsubscribe); ``tags`` travel
    with the message to the provider and come back on its events (tenant, campaign,
    message).
    """

    tenant_id: str
    message_id: str
    to: str
    text: str
    sender: str
    subject: str = ""
    html: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    track_opens: bool = True
    track_clicks: bool = True
    data: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    parse_mode: str | None = None


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message under this id (SES MessageId, SNS MessageId)."""

    provider_message_id: str


class SendError(Exception):
    """A provider did not accept a message."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying later: throttling, timeouts, provider-side faults. ``retry_after``
    is the provider's own wait in seconds when it names one (Telegram's 429)."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying will not help; ``skip`` is set when the recipient refuses (not a failure)."""

    def __init__(self, message: str, *, code: str = "", skip: SkipReason | None = None) -> None:
        super().__init__(message, code=code)
        self.skip = skip


class Channel(Protocol):
    """What the sender pipeline needs from a channel."""

    name: ChannelName

    def address_of(self, contact: Contact) -> str | None:
        """The contact's address on this channel, or None if it has none."""
        ...

    def send(self, message: OutboundMessage) -> SendResult:
        """Hand ``message`` to the provider; raises TransientSendError or PermanentSendError."""
        ...
