"""Mail threads: a sequence's later steps answer its earlier ones, and replies find them.

SES replaces every Message-ID it sends with its own: ``<ses-message-id@domain>``, where
``ses-message-id`` is the ``MessageId`` SendEmail returned and the domain depends on
the region (``email.amazonses.com`` in us-east-1, ``<region>.amazonses.com`` elsewhere,
e.g. ``eu-west-1.amazonses.com``). AWS does not document the domain as a contract, so
it is derived from the region here, once, and a deployment may override it
(``Settings.ses_message_id_domain``). The header a recipient's client quotes in
``In-Reply-To`` is that rewritten id, so it is what Herald threads on and matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_US_EAST_1_DOMAIN = "email.amazonses.com"
_ANGLE_ID = re.compile(r"<([^<>@\s]+)@([^<>\s]+)>")
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)


def ses_message_id_domain(region: str, override: str | None = None) -> str:
    """The domain SES puts after its message id in the Message-ID header it writes."""
    if override:
        return override
    return _US_EAST_1_DOMAIN if region == "us-east-1" else f"{region}.amazonses.com"


def header_message_id(ses_message_id: str, region: str, override: str | None = None) -> str:
    """The Message-ID header (with its angle brackets) of a message SES sent as
    ``ses_message_id``."""
    return f"<{ses_message_id}@{ses_message_id_domain(region, override)}>"


def ses_ids_in(header_value: str) -> list[str]:
    """The SES message ids quoted in an ``In-Reply-To`` or ``References`` value, in order:
    the local part of every ``<id@…amazonses.com>`` (any region, any override domain that
    ends in ``amazonses.com``). Other ids are not SES's and are left out."""
    return [
        local
        for local, domain in _ANGLE_ID.findall(header_value)
        if domain.lower().endswith("amazonses.com")
    ]


@dataclass(frozen=True)
class ThreadHeaders:
    """What a later step of a sequence carries to join its thread."""

    headers: dict[str, str]
    subject: str


def reply_in_thread(
    earlier_ses_ids: Sequence[str],
    step_subject: str,
    first_subject: str,
    region: str,
    domain_override: str | None = None,
) -> ThreadHeaders:
    """The headers and subject of a sequence step sent after ``earlier_ses_ids`` (the SES
    message ids of the contact's earlier steps of this sequence, oldest first).

    ``In-Reply-To`` is the previous message, ``References`` the whole chain (RFC 5322
    §3.6.4: the parent's References plus the parent, which in a linear sequence is every
    earlier message). A step without its own subject is sent as ``Re: <first subject>``
    (not ``Re: Re:``). The first step (nothing earlier) gets no headers.
    """
    if not earlier_ses_ids:
        return ThreadHeaders(headers={}, subject=step_subject or first_subject)
    ids = [header_message_id(i, region, domain_override) for i in earlier_ses_ids]
    return ThreadHeaders(
        headers={"In-Reply-To": ids[-1], "References": " ".join(ids)},
        subject=reply_subject(step_subject, first_subject),
    )


def reply_subject(own: str, first: str) -> str:
    """A later message's subject: its own, else ``Re: <first>`` (never ``Re: Re:``)."""
    if own.strip():
        return own
    return first if _REPLY_PREFIX.match(first) else f"Re: {first}"
