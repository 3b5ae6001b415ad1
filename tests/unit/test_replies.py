"""Replies read from SES inbound's real notification format: matched by the SES ids they
quote or by a reply+token address; automatic answers told apart."""

from __future__ import annotations

import email

import pytest

from chalicelib.domain.replies import (
    forward,
    parse_notification,
    reply_address,
    reply_token,
    reply_token_for,
)
from tests.aws_events import inbound_reply, load

FIRST = "0100018c1d2e3f40-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000"
SECOND = "0100018c1d2e3f41-11111111-2222-3333-4444-555555555555-000000"


def test_aws_sample_notification_is_read():
    mail = parse_notification(load("ses_inbound_sns_action.json"))
    assert mail.ses_message_id == "d6iitobk75ur44p8kdnnp7g2n800"
    assert mail.sender == "sender@example.com"
    assert mail.recipients == ("recipient@example.com",)
    assert mail.subject == "Example subject"
    assert mail.quoted_ses_ids == () and not mail.automatic
    assert mail.raw is not None and mail.raw.endswith(b"Example content\r\n")


def test_a_reply_quotes_the_ses_ids_newest_first():
    record = inbound_reply(
        sender="Lead <lead@example.org>",
        recipient="ana@example.com",
        subject="Re: Quick question",
        in_reply_to=f"<{SECOND}@eu-west-1.amazonses.com>",
        references=f"<{FIRST}@eu-west-1.amazonses.com> <{SECOND}@eu-west-1.amazonses.com>",
    )
    mail = parse_notification(record)
    assert mail.quoted_ses_ids == (SECOND, FIRST)
    assert mail.sender == "lead@example.org"


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: Quick question"),
        ({"X-Autoreply": "yes"}, "Re: Quick question"),
        ({"Precedence": "auto_reply"}, "Re: Quick question"),
        ({}, "Out of Office: Re: Quick question"),
        ({}, "Automatic reply: Quick question"),
    ],
)
def test_automatic_answers_are_recognised(headers, subject):
    record = inbound_reply(
        sender="lead@example.org",
        recipient="ana@example.com",
        subject=subject,
        extra_headers=headers,
    )
    assert parse_notification(record).automatic


def test_auto_submitted_no_is_a_person():
    record = inbound_reply(
        sender="lead@example.org",
        recipient="ana@example.com",
        subject="Re: hi",
        extra_headers={"Auto-Submitted": "no"},
    )
    assert not parse_notification(record).automatic


def test_a_reply_token_address_is_found_only_at_the_reply_domain():
    token = reply_token_for("t", "cmp_1", "m_1")
    assert token != reply_token_for("t", "cmp_1", "m_2")
    address = reply_address(token, "replies.example.com")
    assert reply_token(("x@example.com", address.upper()), "replies.example.com") == token
    assert reply_token((address,), "other.example.com") is None
    assert reply_token(("reply+nothex@replies.example.com",), "replies.example.com") is None
    assert reply_token((address,), None) is None


def test_a_mail_stored_in_s3_names_its_object():
    record = load("ses_inbound_sns_action.json")
    record.pop("content")
    record["receipt"]["action"] = {
        "type": "S3",
        "topicArn": "arn:aws:sns:us-east-1:012345678912:example-topic",
        "bucketName": "herald-inbound",
        "objectKey": "replies/d6iitobk75ur44p8kdnnp7g2n800",
    }
    mail = parse_notification(record)
    assert mail.stored_at is not None and mail.stored_at.key.endswith("n800")
    assert mail.raw is None and mail.subject == "Example subject"  # from the headers list


def test_the_forward_attaches_the_reply_whole():
    mail = parse_notification(
        inbound_reply(sender="lead@example.org", recipient="ana@example.com", subject="Re: hi")
    )
    forwarded = email.message_from_bytes(
        forward(mail, sender="ana@example.com", to="ana@corp.example")
    )
    assert forwarded["Reply-To"] == "lead@example.org" and forwarded["Subject"] == "Fwd: Re: hi"
    attached = [part for part in forwarded.walk() if part.get_content_type() == "message/rfc822"]
    assert len(attached) == 1


def test_anything_else_is_refused():
    with pytest.raises(ValueError):
        parse_notification({"notificationType": "Bounce"})
