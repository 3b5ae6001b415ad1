"""Email through SES v2 ``SendEmail`` with raw MIME.

Raw MIME, not SES's "simple" content, because only raw content carries our own headers
(List-Unsubscribe and List-Unsubscribe-Post for RFC 8058 one-click unsubscribe, Reply-To)
exactly as built; moto also keeps raw messages whole, so tests read the headers that real
recipients would get. Every message goes out with Herald's configuration set (whose event
destination feeds the feedback queue) and ``EmailTags`` naming tenant, campaign and
message, which SES copies onto every event about the message.

Tracking: SES tracks opens and clicks of every message whose configuration set publishes
OPEN and CLICK events, as Herald's does. A campaign opts out per message: links carry SES's
``ses:no-track`` attribute for ``track_clicks=False``, and ``track_opens=False`` (which has
no mark in the message to carry it) sends with SES v2's ``ConfigurationOverrides``
``Tracking.OpenTrackingEnabled = DISABLED``, so SES adds no tracking image. The override
also wins over account-level engagement tracking (VDM), which a configuration set without
OPEN events would not.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import threading
from email.utils import formataddr
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.channels import identities
from chalicelib.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import tag_value
from chalicelib.domain.headers import reject_header_breaks
from chalicelib.observability import logger
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
_ANCHOR = re.compile(r"<a(?=[\s>])(?![^>]*\bses:no-track\b)", re.IGNORECASE)

# -- MIME ---------------------------------------------------------------------------------
# Messages are written directly, not through ``email.message.EmailMessage``: its policy
# objects parse and re-fold every header of every message (≈ 1.3 ms each, more than half
# of Herald's own CPU per recipient on the send path). What a marketing message needs is
# small and fixed: a few headers that are ASCII nearly always, and one or two text parts.
#
# ASCII headers are folded only past RFC 5322's hard limit of 998 characters: folding at
# the customary 78 would break the long List-Unsubscribe URL, which mail clients then do
# not read as a URL. Non-ASCII values become RFC 2047 encoded words on lines of at most
# 78 (a display name excepted: see _from_header). Bodies stay 7-bit (quoted-printable or
# base64 when needed) so no relay has to downgrade them. SES adds Message-ID and Date.
_CRLF = "\r\n"
_LINE_MAX = 998  # RFC 5322 2.1.1: the hard limit of a line, without its CRLF
_ENCODED_LINE_MAX = 78  # RFC 5322 2.1.1's recommended limit, kept for encoded words
_ENCODED_WORD_EXTRA = len("=?utf-8?b??=")
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # printable ASCII but the colon (RFC 5322 2.2)
_WRITTEN_HEADERS = frozenset(
    {"from", "to", "subject", "reply-to", "mime-version", "content-type"}
    | {"content-transfer-encoding"}
)


def build_mime(message: OutboundMessage) -> bytes:
    """The message as RFC 5322 bytes: text part, optional HTML alternative, our headers.

    ValueError if a header would break the message: a CR, LF or NUL in any header value
    (a header injection), a malformed or duplicated header name, or an address SES cannot
    carry (a non-ASCII local part).
    """
    lines = [
        _from_header(message.sender_name, message.sender),
        _address_header("To", ascii_address(message.to)),
        _text_header("Subject", message.subject),
    ]
    if message.reply_to:
        lines.append(_address_header("Reply-To", _address_list(message.reply_to)))
    for name, value in message.headers.items():
        if not _FIELD_NAME.match(name) or name.lower() in _WRITTEN_HEADERS:
            raise ValueError(f"{name!r} cannot be added as a header")
        lines.append(_text_header(name, value))
    lines.append("MIME-Version: 1.0")
    head = _CRLF.join(lines).encode("ascii") + b"\r\n"
    if message.html is None:
        return head + _part(message.text, "plain")
    html = message.html if message.track_clicks else untracked_links(message.html)
    # 128 random bits: no body can contain the delimiter by chance, and none can be made
    # to, since nobody knows it in advance.
    boundary = f"=_{_random_bits.hex128()}"
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            head,
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii"),
            delimiter,
            _part(message.text, "plain"),
            delimiter,
            _part(html, "html"),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


class _RandomBits:
    """Fresh random bits from ``os.urandom``, read 4 KB at a time: one system call (which
    also gives up the GIL) per 256 messages instead of one per message. Each boundary
    still takes bits no earlier message showed."""

    _BLOCK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def hex128(self) -> str:
        with self._lock:
            if self._at + 16 > len(self._block):
                self._block, self._at = os.urandom(self._BLOCK), 0
            taken = self._block[self._at : self._at + 16]
            self._at += 16
        return taken.hex()

    def forget(self) -> None:
        """Drop the bits read so far (a forked child must not reuse its parent's)."""
        self._lock = threading.Lock()
        self._block, self._at = b"", 0


_random_bits = _RandomBits()
os.register_at_fork(after_in_child=_random_bits.forget)


def untracked_links(html: str) -> str:
    """Mark every link ``ses:no-track`` so SES leaves it out of click tracking."""
    return _ANCHOR.sub("<a ses:no-track", html)


def ascii_address(address: str) -> str:
    """``address`` as headers and SES carry it: an international domain in its ASCII
    (Punycode) form, as contacts store it in its Unicode form.

    ValueError for CR, LF or NUL, or a non-ASCII local part: SES does not speak SMTPUTF8.
    """
    reject_header_breaks(address)
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError(f"{address!r}: SES cannot send to a non-ASCII local part")
    import idna  # here: its tables cost a cold start that nearly no message needs

    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


def _from_header(display_name: str | None, address: str) -> str:
    """``From: Name <address>``: a name with specials quoted, a non-ASCII one encoded.

    A non-ASCII name is ONE encoded word (up to the 998 limit, as ``formataddr`` writes
    it), not several on 78-character lines: readers disagree about the space between two
    encoded words in a name (RFC 2047 drops it, Python's parser keeps it), so a name split
    in two would come out with a space in the middle of a word for some of them.
    """
    address = ascii_address(address)
    if not display_name:
        return _address_header("From", address)
    reject_header_breaks(display_name)
    if not _needs_encoding(display_name):
        return _address_header("From", formataddr((display_name, address)))
    room = _LINE_MAX - len("From: ")
    words = _encoded_words(display_name, first_room=room, room=room)
    return _folded("From", [*words, f"<{address}>"], _LINE_MAX)


def _address_list(addresses: str) -> str:
    """A comma-separated list of bare addresses (Reply-To), each in its ASCII form."""
    return ", ".join(ascii_address(address.strip()) for address in addresses.split(","))


def _address_header(name: str, value: str) -> str:
    """An address header from ASCII ``value``, folded at spaces only where a line needs it."""
    header = f"{name}: {value}"
    if len(header) > _LINE_MAX:
        header = _folded(name, value.split(" "), _LINE_MAX)
        if _longest_line(header) > _LINE_MAX:
            raise ValueError(f"{name}: an address is longer than a header line")
    return header


def _text_header(name: str, value: str) -> str:
    """An unstructured header: as it is when ASCII, else RFC 2047 encoded words."""
    reject_header_breaks(value)
    if not _needs_encoding(value):
        header = f"{name}: {value}"
        if len(header) <= _LINE_MAX:
            return header
        header = _folded(name, value.split(" "), _LINE_MAX)
        if _longest_line(header) <= _LINE_MAX:
            return header
    first_room = _ENCODED_LINE_MAX - len(name) - 2
    words = _encoded_words(value, first_room=first_room, room=_ENCODED_LINE_MAX - 1)
    return _folded(name, words, _ENCODED_LINE_MAX)


def _needs_encoding(value: str) -> bool:
    """Non-ASCII, or ASCII that a reader would decode as an encoded word (``=?...?=``)."""
    return not value.isascii() or "=?" in value


def _folded(name: str, words: list[str], limit: int) -> str:
    """``Name: w1 w2 …`` with the space before a word turned into a fold wherever the line
    would pass ``limit``. A fold never leaves a line of blanks; a word longer than a line
    stays whole (the caller checks)."""
    lines, current, has_word = [], f"{name}:", False
    for word in words:
        if has_word and len(current) + 1 + len(word) > limit:
            lines.append(current)
            current, has_word = "", False
        current = f"{current} {word}"
        has_word = has_word or bool(word)
    lines.append(current)
    return _CRLF.join(lines)


def _longest_line(header: str) -> int:
    return max(len(line) for line in header.split(_CRLF))


def _encoded_words(value: str, *, first_room: int, room: int) -> list[str]:
    """``value`` as RFC 2047 base64 words: the first at most ``first_room`` characters
    long, the others ``room``; no UTF-8 sequence is split between two words."""
    data = value.encode("utf-8")
    words, start, width = [], 0, max(first_room, _ENCODED_WORD_EXTRA + 8)
    while start < len(data):
        end = min(len(data), start + (width - _ENCODED_WORD_EXTRA) // 4 * 3)
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            end -= 1
        chunk = base64.b64encode(data[start:end]).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start, width = end, room
    return words


def _part(content: str, subtype: str) -> bytes:
    """One text part (its headers and body) in the lightest encoding that stays 7-bit.

    The body is in MIME's canonical form: every line break CRLF, whatever the template had.
    """
    lines = content.encode("utf-8").splitlines()
    canonical = b"\r\n".join(lines) + b"\r\n"
    if content.isascii() and "\x00" not in content and max(map(len, lines), default=0) <= _LINE_MAX:
        encoding, body = "7bit", canonical
    else:
        # Lines of at most 76, CRLF kept, trailing blanks and a lone dot escaped. It keeps
        # mostly-Latin text readable; mostly non-Latin text, where it triples every byte,
        # is smaller in base64 (a third more).
        encoding, body = "quoted-printable", binascii.b2a_qp(canonical, istext=True)
        if len(body) > len(canonical) * 3 // 2:
            encoding, body = "base64", base64.encodebytes(canonical).replace(b"\n", b"\r\n")
    headers = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return headers.encode("ascii") + body


class EmailChannel:
    """Email to a contact's address through SES v2."""

    name: ChannelName = "email"

    def address_of(self, contact: Contact) -> str | None:
        return contact.email

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            raw, to = build_mime(message), ascii_address(message.to)
        except (ValueError, TypeError) as error:
            raise PermanentSendError(
                f"message cannot be built: {error}", code="BadMessage"
            ) from error
        request: dict[str, Any] = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {"Raw": {"Data": raw}},
            "ConfigurationSetName": get_settings().ses_configuration_set,
            "EmailTags": [
                {"Name": tag_value(name), "Value": tag_value(value)}
                for name, value in message.tags.items()
            ],
        }
        arn = sending_identity_arn(message.sender)
        if arn is not None:
            request["FromEmailAddressIdentityArn"] = arn
        if not message.track_opens and _tracking_overrides_supported():
            request["ConfigurationOverrides"] = {"Tracking": {"OpenTrackingEnabled": "DISABLED"}}
        try:
            response = client("sesv2").send_email(**request)
        except ClientError as error:
            raise _classified(error) from error
        except BotoCoreError as error:  # connection reset, read timeout: the call may retry
            raise TransientSendError(f"SES unreachable: {error}", code="Connection") from error
        return SendResult(provider_message_id=str(response["MessageId"]))


def sending_identity_arn(address: str) -> str | None:
    """The ARN of the identity ``address`` sends through: the one the pipeline found usable
    (and owned by the tenant) for this sender, from the same per-process status cache."""
    try:
        status = identities.identity_status(address, max_age=identities.STATUS_CACHE_SECONDS)
    except identities.IdentityLookupFailed:
        return None  # SES's management API is throttled; SES still checks the From itself
    return identities.identity_arn(status.identity) if status.verified else None


@functools.cache
def _tracking_overrides_supported() -> bool:
    """Whether this botocore knows ``SendEmail``'s ``ConfigurationOverrides``.

    The layer does not ship botocore: Lambda's runtime provides it, possibly older than the
    one we test with. Sending a parameter it does not know would fail every untracked
    message; without it such a message is sent, and its opens tracked, as before.
    """
    model = client("sesv2").meta.service_model.operation_model("SendEmail")
    if "ConfigurationOverrides" in model.input_shape.members:
        return True
    logger.warning("this botocore cannot turn open tracking off per message; opens are tracked")
    return False


def _classified(error: ClientError) -> TransientSendError | PermanentSendError:
    code = error.response.get("Error", {}).get("Code", "")
    text = error.response.get("Error", {}).get("Message", "") or str(error)
    if code in _TRANSIENT_CODES:
        return TransientSendError(text, code=code)
    return PermanentSendError(text, code=code)


EMAIL = EmailChannel()


def send_raw(sender: str, to: str, raw: bytes) -> SendResult:
    """A message Herald built whole (a forwarded reply) from ``sender``, a verified
    identity, to one address; sent without the configuration set: it is not a campaign
    message and has no events to count."""
    request: dict[str, Any] = {
        "FromEmailAddress": sender,
        "Destination": {"ToAddresses": [ascii_address(to)]},
        "Content": {"Raw": {"Data": raw}},
    }
    arn = sending_identity_arn(sender)
    if arn is not None:
        request["FromEmailAddressIdentityArn"] = arn
    try:
        response = client("sesv2").send_email(**request)
    except ClientError as error:
        raise _classified(error) from error
    except BotoCoreError as error:
        raise TransientSendError(f"SES unreachable: {error}", code="Connection") from error
    return SendResult(provider_message_id=str(response["MessageId"]))
