"""Sequence steps thread on the Message-ID SES assigned; replies are matched on it."""

from __future__ import annotations

from chalicelib.domain.mail_threads import (
    header_message_id,
    reply_in_thread,
    ses_ids_in,
    ses_message_id_domain,
)

FIRST = "0100018c1d2e3f40-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000"
SECOND = "0100018c1d2e3f41-11111111-2222-3333-4444-555555555555-000000"


def test_the_message_id_domain_depends_on_the_region_and_may_be_overridden():
    assert ses_message_id_domain("us-east-1") == "email.amazonses.com"
    assert ses_message_id_domain("eu-west-1") == "eu-west-1.amazonses.com"
    assert ses_message_id_domain("eu-west-1", "mail.example.com") == "mail.example.com"
    assert header_message_id(FIRST, "eu-central-1") == f"<{FIRST}@eu-central-1.amazonses.com>"


def test_a_later_step_replies_to_the_previous_and_references_the_chain():
    thread = reply_in_thread([FIRST, SECOND], "", "Quick question", "eu-west-1")
    assert thread.headers == {
        "In-Reply-To": f"<{SECOND}@eu-west-1.amazonses.com>",
        "References": f"<{FIRST}@eu-west-1.amazonses.com> <{SECOND}@eu-west-1.amazonses.com>",
    }
    assert thread.subject == "Re: Quick question"
    assert reply_in_thread([FIRST], "", "RE: hello", "us-east-1").subject == "RE: hello"
    assert reply_in_thread([FIRST], "Own subject", "Hello", "us-east-1").subject == "Own subject"


def test_the_first_step_starts_the_thread():
    thread = reply_in_thread([], "Quick question", "Quick question", "us-east-1")
    assert thread.headers == {} and thread.subject == "Quick question"


def test_the_ses_ids_quoted_by_a_reply_are_found_in_any_region():
    quoted = (
        f"<CAF=abc@mail.gmail.com> <{FIRST}@email.amazonses.com>\r\n"
        f" <{SECOND}@ap-southeast-2.amazonses.com>"
    )
    assert ses_ids_in(quoted) == [FIRST, SECOND]
    assert ses_ids_in("<x@example.com>") == []
