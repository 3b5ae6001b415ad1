"""Replies: an inbound mail read from SES's receipt notification, and what it answers.

SES inbound publishes each received mail to SNS (``notificationType: "Received"``): with
an SNS action the raw message is in ``content`` (up to 150 KB); above that a receipt
rule stores it in S3 and the notification names ``receipt.action.bucketName`` and
``objectKey`` instead (docs/api-seed-001.md, "Stop on reply"). ``parse_notification``
reads either into an ``InboundMail``; the S3 object, when there is one, is read by the
caller and given as ``raw``.

A reply is matched to the message it answers by the SES message ids it quotes
(``In-Reply-To``, then ``References`` newest first: ``mail_threads.ses_ids_in``), else
by the token of a ``reply+<token>@<reply domain>`` recipient. An automatic answer
(``Auto-Submitted`` other than ``no`` (RFC 3834), ``X-Autoreply``, ``X-Autorespond``,
``Precedence: auto_reply``, or an out-of-office subject) is recorded but is not a reply:
it neither counts nor stops a sequence.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from chalicelib.domain.mail_threads import ses_ids_in

REPLY_LOCAL_PART = "reply"
# Message-IDs stay whole on their line: folding at 78 would encode them (RFC 2047) and a
# client could no longer read the id it answers.
_LONG_LINES = email.policy.default.clone(max_line_length=998)
_TOKEN = re.compile(r"^[0-9a-f]{24}$")
_OUT_OF_OFFICE = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"absence|r[ée]ponse automatique|autosvar|on vacation|away from)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class S3Location:
    """Where a receipt rule stored a mail too large for SNS (over 150 KB)."""

    bucket: str
    key: str


@dataclass(frozen=True)
class InboundMail:
    """One received mail, as much of it as a reply needs."""

    ses_message_id: str  # SES inbound's own id of the received mail (idempotency key)
    sender: str
    recipients: tuple[str, ...]
    subject: str
    quoted_ses_ids: tuple[str, ...]  # newest first: In-Reply-To, then References reversed
    automatic: bool
    raw: bytes | None  # the whole mail, to forward; None until read from S3
    stored_at: S3Location | None = None


def reply_token_for(tenant_id: str, campaign_id: str, message_id: str) -> str:
    """The token of one message's ``reply+<token>@`` address: derived (so the sender needs
    no write before sending), 96 bits of a hash over ids an outsider does not know."""
    seed = "\x1f".join((tenant_id, campaign_id, message_id)).encode()
    return hashlib.sha256(seed).hexdigest()[:24]


def reply_address(token: str, domain: str) -> str:
    return f"{REPLY_LOCAL_PART}+{token}@{domain}"


def reply_token(recipients: tuple[str, ...], domain: str | None) -> str | None:
    """The token of the first ``reply+<token>@<domain>`` among ``recipients``."""
    if not domain:
        return None
    for address in recipients:
        local, _, host = address.lower().rpartition("@")
        prefix, plus, token = local.partition("+")
        if host == domain.lower() and prefix == REPLY_LOCAL_PART and plus and _TOKEN.match(token):
            return token
    return None


def parse_notification(notification: dict[str, Any], raw: bytes | None = None) -> InboundMail:
    """An SES ``Received`` notification (and the S3 object's bytes, if stored there) as an
    InboundMail; ValueError for anything else."""
    if notification.get("notificationType") != "Received":
        raise ValueError("not an SES inbound notification")
    mail, receipt = notification["mail"], notification["receipt"]
    action = receipt.get("action", {})
    content = notification.get("content")
    if raw is None and isinstance(content, str):
        raw = content.encode("utf-8", errors="surrogateescape")
    stored = (
        S3Location(action["bucketName"], action["objectKey"])
        if action.get("type") == "S3"
        else None
    )
    headers = _headers(mail, raw)
    return InboundMail(
        ses_message_id=str(mail["messageId"]),
        sender=_first_address(headers.get("from", "")) or str(mail.get("source", "")),
        recipients=tuple(str(r).lower() for r in receipt.get("recipients", [])),
        subject=headers.get("subject", ""),
        quoted_ses_ids=_quoted(headers),
        automatic=is_automatic(headers),
        raw=raw,
        stored_at=stored,
    )


def _headers(mail: dict[str, Any], raw: bytes | None) -> dict[str, str]:
    """Header name (lower case) → value: from the raw mail when there is one (complete),
    else from the notification's ``headers`` list (which SES may truncate)."""
    if raw is not None:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        return {name.lower(): str(value) for name, value in message.items()}
    return {str(h["name"]).lower(): str(h["value"]) for h in mail.get("headers", [])}


def _quoted(headers: dict[str, str]) -> tuple[str, ...]:
    in_reply_to = ses_ids_in(headers.get("in-reply-to", ""))
    references = list(reversed(ses_ids_in(headers.get("references", ""))))
    return tuple(dict.fromkeys([*in_reply_to, *references]))


def _first_address(value: str) -> str | None:
    found = [address for _, address in getaddresses([value]) if address]
    return found[0].lower() if found else None


def is_automatic(headers: dict[str, str]) -> bool:
    """Whether a mail is an automatic answer (RFC 3834 and the common vendor headers)."""
    submitted = headers.get("auto-submitted", "no").strip().lower()
    if submitted and submitted != "no":
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    if headers.get("precedence", "").strip().lower() in ("auto_reply", "bulk", "junk"):
        return True
    return bool(_OUT_OF_OFFICE.match(headers.get("subject", "")))


def forward(mail: InboundMail, *, sender: str, to: str) -> bytes:
    """The reply forwarded to a person: a new mail from ``sender`` (a verified identity)
    to ``to`` with the original attached whole (``message/rfc822``) and the replier as
    Reply-To, so answering it answers the contact."""
    assert mail.raw is not None
    message = EmailMessage(policy=_LONG_LINES)
    message["From"] = sender
    message["To"] = to
    message["Reply-To"] = mail.sender
    message["Subject"] = f"Fwd: {mail.subject}" if mail.subject else "Fwd: a reply"
    message.set_content(f"{mail.sender} replied; their message is attached.\n")
    original = email.message_from_bytes(mail.raw, policy=email.policy.default)
    message.add_attachment(original)
    return message.as_bytes()


# -- making one (the embedded stack's simulator and the CLI's inject-reply) --------------
def reply_mail(
    *, sender: str, to: str, subject: str, quoted: list[str], text: str, automatic: bool
) -> bytes:
    """A reply as a mail client writes it: quoting the Message-IDs it answers (``quoted``,
    oldest first, with their angle brackets); an automatic one says so (RFC 3834)."""
    message = EmailMessage(policy=_LONG_LINES)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if quoted:
        message["In-Reply-To"] = quoted[-1]
        message["References"] = " ".join(quoted)
    if automatic:
        message["Auto-Submitted"] = "auto-replied"
    message.set_content(text)
    return message.as_bytes()


def received_notification(
    raw: bytes, recipient: str, ses_message_id: str, at: str, topic_arn: str
) -> dict[str, Any]:
    """SES inbound's ``Received`` notification of an SNS action for ``raw``, in the shape
    of AWS's published example (``at``: ISO 8601 with ``Z``)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = [{"name": name, "value": str(value)} for name, value in message.items()]
    sender = _first_address(str(message.get("From", ""))) or ""
    verdict = {"status": "PASS"}
    return {
        "notificationType": "Received",
        "receipt": {
            "timestamp": at,
            "processingTimeMillis": 1,
            "recipients": [recipient],
            "spamVerdict": verdict,
            "virusVerdict": verdict,
            "spfVerdict": verdict,
            "dkimVerdict": verdict,
            "action": {"type": "SNS", "topicArn": topic_arn, "encoding": "UTF8"},
        },
        "mail": {
            "timestamp": at,
            "source": sender,
            "messageId": ses_message_id,
            "destination": [recipient],
            "headersTruncated": False,
            "headers": headers,
            "commonHeaders": {
                "from": [str(message.get("From", ""))],
                "to": [recipient],
                "subject": str(message.get("Subject", "")),
            },
        },
        "content": raw.decode("utf-8", errors="replace"),
    }
