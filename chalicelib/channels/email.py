"""Email through SES v2 ``SendEmail`` with raw MIME.

Raw MIME, not SES's "simple" content, because only raw content carries our own headers
(List-Unsubscribe and List-Unsubscribe-Post for RFC 8058 one-click unsubscribe, Reply-To)
exactly as built; moto also keeps raw messages whole, so tests read the headers that real
recipients would get. Every message goes out with Herald's configuration set (whose event
destination feeds the feedback queue) and ``EmailTags`` naming tenant, campaign and
message, which SES copies onto every event about the message.

Tracking: SES turns open and click tracking on per configuration set (an OPEN/CLICK event
destination), not per message. Per message, Herald can only opt links out of click
tracking, which it does for ``track_clicks=False`` with SES's ``ses:no-track`` link
attribute. ``track_opens=False`` has no per-message switch on a single configuration set:
it would need a second set without OPEN events (see docs/engine.md); until then opens of
such a campaign are still recorded.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.channels.base import (
    ChannelName,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
    register_channel,
)
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import tag_value
from chalicelib.settings import get_settings

# SES v2 error codes worth retrying; everything else from SendEmail is final for the message.
_TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "LimitExceededException",  # daily quota: clears with time
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
# Headers are folded only past RFC 5322's hard limit: the default 78 would fold the long
# unsubscribe URL into RFC 2047 encoded words, which mail clients do not read as a URL.
# Bodies stay 7-bit (quoted-printable or base64) so no relay has to downgrade them.
_MIME_POLICY = SMTP.clone(max_line_length=998, cte_type="7bit")
_ANCHOR = re.compile(r"<a(?=[\s>])(?![^>]*\bses:no-track\b)", re.IGNORECASE)


def build_mime(message: OutboundMessage) -> bytes:
    """The message as RFC 5322 bytes: text part, optional HTML alternative, our headers.

    ValueError if a header value would break the message (a CR or LF in a subject is a
    header injection, refused by the email package).
    """
    mime = EmailMessage(policy=_MIME_POLICY)
    mime["From"] = Address(display_name=message.sender_name or "", addr_spec=message.sender)
    mime["To"] = message.to
    mime["Subject"] = message.subject
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    for name, value in message.headers.items():
        mime[name] = value
    mime.set_content(message.text)
    if message.html is not None:
        html = message.html if message.track_clicks else untracked_links(message.html)
        mime.add_alternative(html, subtype="html")
    return mime.as_bytes()


def untracked_links(html: str) -> str:
    """Mark every link ``ses:no-track`` so SES leaves it out of click tracking."""
    return _ANCHOR.sub("<a ses:no-track", html)


class EmailChannel:
    """Email to a contact's address through SES v2."""

    name: ChannelName = "email"

    def address_of(self, contact: Contact) -> str | None:
        return contact.email

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            raw = build_mime(message)
        except (ValueError, TypeError) as error:
            raise PermanentSendError(
                f"message cannot be built: {error}", code="BadMessage"
            ) from error
        request: dict[str, Any] = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {"Raw": {"Data": raw}},
            "ConfigurationSetName": get_settings().ses_configuration_set,
            "EmailTags": [
                {"Name": tag_value(name), "Value": tag_value(value)}
                for name, value in message.tags.items()
            ],
        }
        try:
            response = client("sesv2").send_email(**request)
        except ClientError as error:
            raise _classified(error) from error
        except BotoCoreError as error:  # connection reset, read timeout: the call may retry
            raise TransientSendError(f"SES unreachable: {error}", code="Connection") from error
        return SendResult(provider_message_id=str(response["MessageId"]))


def _classified(error: ClientError) -> TransientSendError | PermanentSendError:
    code = error.response.get("Error", {}).get("Code", "")
    text = error.response.get("Error", {}).get("Message", "") or str(error)
    if code in _TRANSIENT_CODES:
        return TransientSendError(text, code=code)
    return PermanentSendError(text, code=code)


EMAIL = register_channel(EmailChannel())
