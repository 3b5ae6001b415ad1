"""The email channel's MIME builder, read back by the standard library's parser.

Every message is parsed with ``email.policy.default`` (what a standards-following reader
sees) and must give back exactly what Herald put in: subject, addresses, display name,
the one-click unsubscribe headers and both bodies. Lines stay within RFC 5322's limits
and header injection is refused.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest

from chalicelib.channels.base import OutboundMessage, PermanentSendError
from chalicelib.channels.email import EmailChannel, ascii_address, build_mime

UNSUBSCRIBE = "<https://api.example.com/u/" + "t0k3n-" * 30 + ">"
ONE_CLICK = "List-Unsubscribe=One-Click"


def message(**fields: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "tenant_id": "t_1",
        "message_id": "m_1",
        "to": "ann@example.com",
        "sender": "news@shop.example",
        "sender_name": "Shop News",
        "subject": "Spring sale: 20% off",
        "text": "Hello Ann,\nour spring sale is on.\n",
        "html": "<p>Hello Ann, our <a href='https://shop.example/sale'>spring sale</a>.</p>",
        "reply_to": "help@shop.example",
        "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": ONE_CLICK},
    }
    return OutboundMessage(**{**base, **fields})


def parsed(raw: bytes) -> EmailMessage:
    mime = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mime, EmailMessage)
    assert not mime.defects, mime.defects
    return mime


def body_of(mime: EmailMessage, subtype: str) -> str:
    part = mime.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    assert not part.defects, part.defects
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def as_sent(text: str) -> str:
    """A body as any mail reader shows it: line breaks unified, ending in one."""
    unified = text.replace("\r\n", "\n").replace("\r", "\n")
    return unified if unified.endswith("\n") else unified + "\n"


def lines_of(raw: bytes) -> Iterator[bytes]:
    assert raw.endswith(b"\r\n")
    yield from raw[:-2].split(b"\r\n")


def test_every_field_reads_back_as_it_was_put_in() -> None:
    sent = message()
    mime = parsed(build_mime(sent))

    assert mime["Subject"] == sent.subject
    (sender,) = mime["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Shop News", "news@shop.example")
    assert mime["To"] == "ann@example.com"
    assert mime["Reply-To"] == "help@shop.example"
    assert mime["List-Unsubscribe"] == UNSUBSCRIBE
    assert mime["List-Unsubscribe-Post"] == ONE_CLICK
    assert mime["MIME-Version"] == "1.0"
    assert mime.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mime.iter_parts()] == ["text/plain", "text/html"]
    assert body_of(mime, "plain") == as_sent(sent.text)
    assert body_of(mime, "html") == as_sent(sent.html or "")


def test_the_unsubscribe_url_is_never_folded_or_encoded() -> None:
    raw = build_mime(message())
    assert f"List-Unsubscribe: {UNSUBSCRIBE}\r\n".encode() in raw


def test_a_text_only_message_is_one_plain_part() -> None:
    mime = parsed(build_mime(message(html=None, reply_to=None, headers={})))
    assert mime.get_content_type() == "text/plain"
    assert mime["Reply-To"] is None
    assert body_of(mime, "plain") == "Hello Ann,\nour spring sale is on.\n"


def test_each_message_gets_its_own_boundary() -> None:
    first, second = (parsed(build_mime(message())) for _ in range(2))
    assert first.get_boundary() != second.get_boundary()


@pytest.mark.parametrize(
    "subject",
    [
        "Plain ASCII subject",
        "Soldes d'été : -20 % sur tout",
        "Your order 🎉🚀 has shipped 👍🏽",
        "春のセール 開催中 全品20%オフ",
        "Grüße " * 60,  # long and non-ASCII: several encoded words
        "Sale " * 199 + "now",  # ASCII past 998: folded at spaces
        "x" * 990,  # an ASCII word too long for one line: encoded words instead
        "=?utf-8?b?SGk=?= looks encoded",  # must read back literally
        "Tabs\tand  double  spaces",
    ],
)
def test_subjects_read_back_unchanged(subject: str) -> None:
    raw = build_mime(message(subject=subject))
    assert parsed(raw)["Subject"] == subject


@pytest.mark.parametrize(
    "name",
    [
        "Shop News",
        'Shop, Inc. "The Best"',
        "Back\\slash (and comment) <not an address>",
        "Boutique Été",
        "Ann 🎉 Smith",
        "春のセール",
        "Ünïcødé " * 24 + "Ünïcødé!",  # 200 characters, the longest a name can be
    ],
)
def test_display_names_read_back_unchanged(name: str) -> None:
    mime = parsed(build_mime(message(sender_name=name)))
    (sender,) = mime["From"].addresses
    assert sender.display_name == name
    assert sender.addr_spec == "news@shop.example"


def test_a_name_too_long_for_one_encoded_word_is_split_but_still_one_name() -> None:
    name = "🎉" * 200  # 800 UTF-8 bytes: no single encoded word fits a line
    raw = build_mime(message(sender_name=name))
    assert parsed(raw)["From"].addresses[0].addr_spec == "news@shop.example"
    # RFC 2047 readers join adjacent encoded words, leaving out the space between them
    # (Python's address parser keeps it, which is why shorter names are one word).
    encoded_name = email.message_from_bytes(raw)["From"].rsplit("<", 1)[0].strip()
    assert str(make_header(decode_header(encoded_name))) == name


@pytest.mark.parametrize(
    "text",
    [
        "ASCII\nlines\n",
        "Crème brûlée, s'il vous plaît.\nÀ bientôt !",
        "絵文字 🎉 and CJK 春のセール\n" * 20,
        "y" * 2500,  # one line past 998
        "From the desk of Ann\n.\n.hidden dot\n..double\nFrom here",
        "windows\r\nline\r\nbreaks\r\n",
        "old mac\rbreaks\rand\nmixed\r\n",
        "trailing blanks   \nand tabs\t\n",
        "",
        "\n\n\n",
        "nul\x00byte",
    ],
)
def test_bodies_read_back_unchanged(text: str) -> None:
    html = f"<pre>{text}</pre>"
    mime = parsed(build_mime(message(text=text, html=html)))
    assert body_of(mime, "plain") == as_sent(text)
    assert body_of(mime, "html") == as_sent(html)


def test_bodies_are_7bit_when_they_can_be_and_encoded_when_not() -> None:
    def encoding(text: str) -> str:
        part = parsed(build_mime(message(text=text, html=None)))
        return str(part["Content-Transfer-Encoding"])

    assert encoding("plain ASCII\n") == "7bit"
    assert encoding("Crème brûlée, s'il vous plaît") == "quoted-printable"
    assert encoding("x" * 1000) == "quoted-printable"
    assert encoding("春のセール" * 100) == "base64"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"subject": "春のセール" * 100, "sender_name": "Ünïcødé " * 25},
        {"text": "z" * 5000, "html": "<p>" + "é" * 3000 + "</p>"},
        {"subject": "Sale " * 199, "headers": {"X-Campaign": "Été " * 300}},
    ],
)
def test_lines_stay_within_rfc_5322_limits(fields: dict[str, Any]) -> None:
    raw = build_mime(message(**fields))
    raw.decode("ascii")  # 7-bit all the way
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in lines_of(raw):
        assert len(line) <= 998
    for line in head.split(b"\r\n"):
        if b"=?utf-8?" in line and not line.startswith(b"From:"):
            assert len(line) <= 78, line  # encoded words keep to the recommended limit
    assert body


def test_links_are_opted_out_of_click_tracking_only_when_the_campaign_says_so() -> None:
    tracked = message(html='<p><a href="https://a.example">a</a> <A HREF="b">b</A></p>')
    untracked = replace(tracked, track_clicks=False)
    assert "ses:no-track" not in body_of(parsed(build_mime(tracked)), "html")
    assert body_of(parsed(build_mime(untracked)), "html") == (
        '<p><a ses:no-track href="https://a.example">a</a> <a ses:no-track HREF="b">b</A></p>\n'
    )


def test_international_domains_go_out_in_punycode() -> None:
    mime = parsed(build_mime(message(to="ann@bücher.de", reply_to="a@münchen.de, b@x.org")))
    assert mime["To"] == "ann@xn--bcher-kva.de"
    assert [a.addr_spec for a in mime["Reply-To"].addresses] == [
        "a@xn--mnchen-3ya.de",
        "b@x.org",
    ]
    assert ascii_address("ann@example.com") == "ann@example.com"


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hi\r\nBcc: everyone@example.com"},
        {"subject": "Hi\nBcc: everyone@example.com"},
        {"subject": "Hi\rthere"},
        {"subject": "Hi\x00"},
        {"sender_name": "Ann\r\nBcc: everyone@example.com"},
        {"reply_to": "a@example.com\r\nBcc: everyone@example.com"},
        {"to": "ann@example.com\nBcc: everyone@example.com"},
        {"headers": {"List-Unsubscribe": "<https://x>\r\nBcc: everyone@example.com"}},
        {"headers": {"X-Evil\r\nBcc": "everyone@example.com"}},
        {"headers": {"X Spaced": "v"}},
        {"headers": {"Subject": "a second subject"}},
        {"headers": {"content-type": "text/html"}},
        {"to": "josé@example.com"},  # SES has no SMTPUTF8
    ],
)
def test_a_message_that_would_break_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_mime(message(**fields))


def test_the_channel_refuses_an_injection_as_a_bad_message_without_sending(aws: None) -> None:
    with pytest.raises(PermanentSendError) as refused:
        EmailChannel().send(message(subject="Hi\r\nBcc: everyone@example.com"))
    assert refused.value.code == "BadMessage"
    assert refused.value.skip is None
