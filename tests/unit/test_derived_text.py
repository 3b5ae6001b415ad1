"""The text part of an email without one: derived once per template, exact per recipient.

``derived_text`` must always equal ``text_from_html`` of the rendered HTML. These tests
render real templates for hostile contact data and compare the two, and check which
templates get a plan (the fast way) and which always parse the rendered HTML.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.templates import (
    EmailTemplate,
    RenderContext,
    _text_plan,
    derived_text,
    preview,
    render_email,
    text_from_html,
)

PARAGRAPH = "Our spring sale is on: everything 20% off until Sunday. "
NEWSLETTER = (
    "<html><head><title>{{ campaign.name }}</title>"
    "<style>p { color: red }</style></head><body>\n"
    "<h1>Hi {{ contact.first_name | default('there') }}</h1>\n"
    + "".join(
        f"<p>{PARAGRAPH}<a href='https://shop.example/p/{i}'>item {i}</a></p>" for i in range(12)
    )
    + "<ul><li>Plan: {{ contact.plan }}</li><li>Since {{ contact.since }}<br>thanks</li></ul>"
    '<p class="{{ contact.plan }}"><img src="logo.png" alt="Shop logo"></p>'
    '<p><a href="https://shop.example/?who={{ contact.id }}&amp;src=mail">your account</a> '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    '<script>var plan = "{{ contact.plan }}";</script></body></html>\n'
)

WITH_PLAN = {
    "newsletter": NEWSLETTER,
    "bench": (
        "<h1>Hi {{ contact.first_name | default('there') }}</h1>"
        "<p>Your plan: {{ contact.plan }}. Read more on "
        '<a href="https://news.bench.example.com/latest">our site</a>.</p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    ),
    "no values": "<p>Hello   everyone</p>\n<p>Bye &amp; thanks</p>",
    "starts and ends with a value": "{{ contact.first_name }}<br>{{ contact.plan }}",
    "whitespace control": (
        "<p>\n  {{- contact.first_name -}}  \n</p>\r\n<p> {{ contact.plan }} </p>"
    ),
    "a value as a whole link": (
        '<a href="{{ unsubscribe_url }}"></a> <a href="{{ contact.plan }}">x</a>'
    ),
    "a link whose label is its target": '<a href="{{ unsubscribe_url }}">https://u.example/u/1</a>',
    "a value marked safe": "<p>{{ contact.first_name | safe }}</p><p>{{ contact.plan }}</p>",
    "an unclosed link": '<p>{{ contact.plan }}</p><p><a href="{{ unsubscribe_url }}">stop',
}
WITHOUT_PLAN = {
    "a statement": "<p>Hi</p>{% if contact.plan %}<p>{{ contact.plan }}</p>{% endif %}",
    "a loop": "{% for x in [1, 2] %}<li>{{ x }}</li>{% endfor %}",
    "a value in a link's label": '<a href="https://shop.example/">{{ contact.first_name }}</a>',
    "a value in alt text": '<p><img alt="{{ contact.first_name }}"></p>',
    "an unquoted attribute": "<p><a href={{ unsubscribe_url }}>stop</a></p>",
    "a value naming a tag": "<h{{ contact.plan }}>Hi</h{{ contact.plan }}>",
    "a value after a bare <": "<p>1 <{{ contact.plan }}</p>",
    "a value in a comment": "<p>a</p><!-- {{ contact.first_name }} --><p>b</p>",
    "two values side by side": "<p>{{ contact.first_name }}{{ contact.plan }}</p>",
    "a value after an open entity": "<p>AT&{{ contact.plan }}</p>",
    "a value between letters only": "<p>{{ contact.first_name }} and {{ contact.plan }}</p>",
    "a placeholder character in the source": "<p>\ue000{{ contact.plan }}</p><p>x</p>",
}

HOSTILE = [
    {"first_name": "Ann", "plan": "pro", "id": "c_1"},
    {"first_name": "  Ann \n\t Smith  ", "plan": "\n\n", "id": " c 2 "},
    {"first_name": "<b>Ann</b> & \"Co\" 'x'", "plan": "</p><p>", "id": "&amp;"},
    {"first_name": "&amp; &#39; &copy &notit;", "plan": "a&b", "id": "&"},
    {"first_name": "\u00a0Ann\u00a0", "plan": "🎉 春", "id": "\u2028"},
    {"first_name": "\ue0000\ue001", "plan": "\ue0020\ue003", "id": "x"},
    {"first_name": "", "plan": "https://u.example/u/1", "id": ""},
]
URLS = ["https://u.example/u/1", "", "#top", "javascript:alert(1)", "  https://u.example/u/2 "]


def context(values: dict[str, Any], url: str) -> RenderContext:
    contact = {k: v for k, v in values.items() if v != ""}
    return RenderContext(
        contact=contact,
        now=datetime(2026, 6, 1, tzinfo=UTC),
        campaign={"id": "c", "name": "Spring <sale>"},
        unsubscribe_url=url,
    )


def assert_exact(source: str, values: dict[str, Any], url: str) -> None:
    template = EmailTemplate(subject="Hi", html=source)
    rendered = render_email(template, context(values, url))
    assert rendered.text == text_from_html(rendered.html)
    assert derived_text(source, rendered.html) == text_from_html(rendered.html)


@pytest.mark.parametrize("name", sorted(WITH_PLAN))
def test_templates_with_a_plan_give_the_same_text_as_parsing(name: str) -> None:
    source = WITH_PLAN[name]
    assert _text_plan(source) is not None
    for values in HOSTILE:
        for url in URLS:
            assert_exact(source, values, url)


@pytest.mark.parametrize("name", sorted(WITHOUT_PLAN))
def test_templates_whose_text_depends_on_values_otherwise_have_no_plan(name: str) -> None:
    source = WITHOUT_PLAN[name]
    assert _text_plan(source) is None
    for values in HOSTILE:
        assert_exact(source, values, URLS[0])


def test_a_typical_newsletter_reads_as_expected() -> None:
    template = EmailTemplate(subject="Hi", html=WITH_PLAN["bench"])
    text = render_email(template, context(HOSTILE[0], URLS[0])).text
    assert text == (
        "Hi Ann\n\nYour plan: pro. Read more on our site "
        "(https://news.bench.example.com/latest).\n\nUnsubscribe (https://u.example/u/1)"
    )


def test_preview_shows_the_same_derived_text() -> None:
    template = EmailTemplate(subject="Hi", html=NEWSLETTER)
    shown = preview(template, context(HOSTILE[2], URLS[0]))
    assert shown.html is not None
    assert shown.text == text_from_html(shown.html)


TRICKY_TEXT = st.text(
    alphabet=st.sampled_from(list("aZ09 <>&;#\"'/:.-=\n\t\r\u00a0\u2028\ue000\ue0011é🎉")),
    max_size=24,
) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    first_name=TRICKY_TEXT,
    plan=TRICKY_TEXT,
    contact_id=TRICKY_TEXT,
    url=TRICKY_TEXT,
    name=st.sampled_from(sorted(WITH_PLAN)),
)
def test_any_contact_data_gives_the_same_text_as_parsing(
    first_name: str, plan: str, contact_id: str, url: str, name: str
) -> None:
    assert_exact(WITH_PLAN[name], {"first_name": first_name, "plan": plan, "id": contact_id}, url)
