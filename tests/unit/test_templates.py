"""Template rendering: variables, missing values, text from HTML, and hostile templates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.sandbox import MAX_STEPS
from chalicelib.domain.templates import (
    EmailTemplate,
    RenderContext,
    RenderError,
    SmsTemplate,
    check_template,
    contact_variables,
    preview,
    render_email,
    render_sms,
    template_content,
    text_from_html,
)

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def context(contact: dict | None = None, **extra) -> RenderContext:
    return RenderContext(
        contact=contact_variables(contact or {}),
        now=NOW,
        campaign=extra.get("campaign", {"id": "cmp_1", "name": "Winter sale"}),
        unsubscribe_url=extra.get("unsubscribe_url", "https://h.example/u/TOKEN"),
    )


def email(subject="Hi", html="<p>Hi</p>", text=None, strict=False) -> EmailTemplate:
    return EmailTemplate(subject=subject, html=html, text=text, strict=strict)


def html_of(source: str, contact: dict | None = None, strict: bool = False) -> str:
    return render_email(email(html=source, strict=strict), context(contact)).html


def render_error(source: str, contact: dict | None = None, field: str = "html") -> RenderError:
    template = email(**{field: source})
    with pytest.raises(RenderError) as caught:
        render_email(template, context(contact))
    assert caught.value.field == field
    return caught.value


# -- variables and the missing-value policy ----------------------------------------------
def test_renders_contact_campaign_unsubscribe_and_now():
    template = email(
        subject="{{ campaign.name }} for {{ contact.first_name }}",
        html="<a href='{{ unsubscribe_url }}'>stop</a> {{ now.year }} {{ contact.plan }}"
        " {{ contact.attributes.plan }}",
    )
    rendered = render_email(
        template, context({"first_name": "Ann", "attributes": {"plan": "gold"}})
    )
    assert rendered.subject == "Winter sale for Ann"
    assert rendered.html == "<a href='https://h.example/u/TOKEN'>stop</a> 2026 gold gold"


def test_default_filter_applies_to_missing_null_and_empty_values():
    source = "Hi {{ contact.first_name | default('there') }}!"
    for contact in ({}, {"first_name": None}, {"first_name": ""}):
        assert html_of(source, contact) == "Hi there!"
    assert html_of(source, {"first_name": "Ann"}) == "Hi Ann!"


def test_missing_values_render_empty_and_chain_by_default():
    source = "[{{ contact.last_name }}][{{ contact.address.city }}][{{ contact.attributes.x.y }}]"
    assert html_of(source, {}) == "[][][]"
    assert html_of("{% if contact.plan %}vip{% else %}std{% endif %}", {}) == "std"


def test_strict_templates_make_missing_values_a_render_error():
    template = email(html="Hi {{ contact.first_name }}", strict=True)
    with pytest.raises(RenderError) as caught:
        render_email(template, context({}))
    assert caught.value.reason == "undefined" and caught.value.field == "html"
    # default() still works in strict mode.
    defaulted = email(html="Hi {{ contact.first_name | default('there') }}", strict=True)
    assert render_email(defaulted, context({})).html == "Hi there"


def test_field_wins_over_attribute_of_the_same_name():
    rendered = html_of(
        "{{ contact.status }}/{{ contact.attributes.status }}",
        {"status": "subscribed", "attributes": {"status": "vip"}},
    )
    assert rendered == "subscribed/vip"


def test_contact_model_is_usable_as_context():
    contact = Contact(
        id="c_" + "1" * 32, email="ann@x.com", first_name="Ann", created_at=NOW, updated_at=NOW
    )
    variables = contact_variables(contact)
    assert variables["email"] == "ann@x.com" and "last_name" not in variables


def test_html_is_autoescaped_but_subject_and_text_are_not():
    contact = {"first_name": "<b>Tom & Jerry</b>"}
    template = email(
        subject="{{ contact.first_name }}",
        html="<p>{{ contact.first_name }}</p>",
        text="{{ contact.first_name }}",
    )
    rendered = render_email(template, context(contact))
    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.subject == "<b>Tom & Jerry</b>"
    assert rendered.text == "<b>Tom & Jerry</b>"


def test_sms_renders_body_without_escaping():
    sms = SmsTemplate(
        body="Hi {{ contact.first_name | default('there') }} & co: {{ unsubscribe_url }}"
    )
    assert render_sms(sms, context({})).body == "Hi there & co: https://h.example/u/TOKEN"


def test_sms_that_renders_empty_is_an_error():
    with pytest.raises(RenderError) as caught:
        render_sms(SmsTemplate(body="{{ contact.first_name }}"), context({}))
    assert caught.value.field == "body"


# -- header injection through contact data ----------------------------------------------
def test_line_breaks_from_contact_data_cannot_add_headers_to_the_subject():
    hostile = {"first_name": "Ann\r\nBcc: victim@example.com\r\n\r\nbody\x00"}
    rendered = render_email(email(subject="Hello {{ contact.first_name }}"), context(hostile))
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "\x00" not in rendered.subject
    assert rendered.subject == "Hello Ann Bcc: victim@example.com body"


def test_subject_source_with_line_breaks_is_refused():
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        email(subject="Hi\r\nBcc: x@y.z")


def test_subject_that_renders_empty_is_an_error():
    error = render_error("{{ contact.first_name }}", field="subject")
    assert "empty" in error.message


# -- save-time checks -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"subject": "Hi {{ contact.first_name", "html": "x"}, "subject", "line 1"),
        ({"subject": "Hi", "html": "{% for x in y %}"}, "html", "line 1"),
        ({"subject": "Hi", "html": "x", "text": "{{ x | nosuchfilter }}"}, "text", "filter"),
        ({"subject": "Hi", "html": "{{ contcat.first_name }}"}, "html", "contcat"),
        ({"subject": "Hi", "html": "{% include 'other' %}"}, "html", "include"),
        ({"subject": "Hi", "html": "{% extends 'base' %}"}, "html", "extends"),
        ({"subject": "Hi", "html": "{{ lipsum() }}"}, "html", "lipsum"),
    ],
)
def test_templates_that_cannot_render_are_refused_at_save(fields, field, fragment):
    with pytest.raises(ValidationFailed) as caught:
        check_template(email(**fields))
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_template_content_names_the_bad_field():
    with pytest.raises(ValidationFailed) as missing:
        template_content("email", {"html": "<p>x</p>"})
    assert missing.value.field == "subject"
    with pytest.raises(ValidationFailed) as foreign:
        template_content("sms", {"body": "x", "subject": "y"})
    assert foreign.value.field == "subject"
    with pytest.raises(ValidationFailed) as injected:
        template_content("email", {"subject": "a\nb", "html": "x"})
    assert injected.value.field == "subject"


def test_loops_sets_and_macros_are_allowed():
    source = (
        "{% macro item(x) %}<li>{{ x }}</li>{% endmacro %}"
        "{% set n = contact.attributes.products | length %}{{ n }}:"
        "{% for p in contact.attributes.products %}{{ item(p) }}{% endfor %}"
    )
    check_template(email(html=source))
    assert html_of(source, {"attributes": {"products": ["a", "b"]}}) == "2:<li>a</li><li>b</li>"


# -- hostile templates fail safely ------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ self.__init__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ contact.__class__ }}",
        "{{ '{0.__class__}'.format(contact) }}",
        "{{ contact.attributes.update({'a': 1}) }}",
        "{{ [1].append(2) }}",
        "{{ range.__globals__ }}",
    ],
)
def test_private_attributes_and_mutation_are_forbidden(source):
    error = render_error(source, {"attributes": {}})
    assert error.reason == "forbidden"


@pytest.mark.parametrize(
    "source",
    [
        "{{ range(10**9) | list }}",
        "{{ 'x' * 10**10 }}",
        "{{ 10 ** 100000000 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>9999999999}'.format(1) }}",
        "{{ '{:{}}'.format(1, 999999999) }}",
        "{{ 'x' | center(999999999) }}",
        "{{ 'x'.ljust(999999999) }}",
        "{{ now.strftime('%999999999Y') }}",
        "{{ [1] | batch(999999999, 'x') | list }}",
        "{{ [1] | slice(999999999) | list }}",
        "{{ [[1] * 1000] * 1000 | sum(start=[]) }}",
        "{{ [1, 2] | tojson(indent=999999999) }}",
        "{% set s = 'aaaaaaaaaa' %}{{ s|replace('a', s)|replace('a', s)|replace('a', s)"
        "|replace('a', s)|replace('a', s)|replace('a', s) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
        "{% set s = 'x' * 999999 %}{{ ([s] * 10000) | join }}",
        "{{ ('x\n' * 100000) | indent(9000) }}",
    ],
)
def test_memory_explosions_stop_with_too_large(source):
    assert render_error(source).reason == "too_large"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "{{ range(10000) | map('center', 9000) | join | length }}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_runaway_work_stops_with_too_complex(source):
    assert render_error(source).reason == "too_complex"


def test_output_is_capped_per_part():
    error = render_error("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}")
    assert error.reason == "too_large" and "longer than" in error.message
    subject = render_error("{{ 'x' * 999 }}", field="subject")
    assert subject.reason == "too_large"


def test_budget_allows_ordinary_loops():
    source = "{% for i in range(5000) %}{{ i % 10 }}{% endfor %}"
    assert len(html_of(source)) == 5000
    assert MAX_STEPS >= 10 * 5000


def test_runtime_errors_are_reported_not_raised():
    error = render_error("{{ 1 / 0 }}")
    assert error.reason == "error" and "ZeroDivisionError" in error.message


def test_dict_method_names_shadow_keys_use_subscript():
    source = "{{ contact.attributes['items'] | join(',') }}"
    assert html_of(source, {"attributes": {"items": ["a", "b"]}}) == "a,b"


# -- previews collect every part's error ------------------------------------------------
def test_preview_reports_each_failing_part_and_renders_the_rest():
    template = email(subject="{{ 1 / 0 }}", html="<p>Hi {{ contact.first_name }}</p>")
    result = preview(template, context({"first_name": "Ann"}))
    assert result.subject is None
    assert result.html == "<p>Hi Ann</p>" and result.text == "Hi Ann"
    assert [(e.field, e.reason) for e in result.errors] == [("subject", "error")]


# -- text from HTML ---------------------------------------------------------------------
def test_text_part_is_generated_from_html_when_absent():
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Hello&nbsp;Ann</h1><p>Read   the\n<a href='https://x.example/a'>news</a> &amp; "
        "<a href='https://x.example/b'>https://x.example/b</a>.</p>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script>"
        "<p>Line<br>break <a href='#top'>top</a> <img alt='logo' src='l.png'></p></body></html>"
    )
    assert text_from_html(html) == (
        "Hello\xa0Ann\n\n"
        "Read the news (https://x.example/a) & https://x.example/b.\n\n"
        "- one\n- two\n\n"
        "Line\nbreak top logo"
    )


def test_explicit_text_part_is_rendered_instead():
    template = email(html="<p>html</p>", text="Plain {{ contact.first_name }}")
    assert render_email(template, context({"first_name": "Ann"})).text == "Plain Ann"


def test_compiled_templates_are_reused():
    from chalicelib.domain.sandbox import compile_template

    compile_template.cache_clear()
    template = email(html="<p>{{ contact.first_name }}</p>")
    for name in ("a", "b", "c"):
        render_email(template, context({"first_name": name}))
    info = compile_template.cache_info()
    assert info.misses == 2 and info.hits == 4  # subject and html compiled once each


def test_blank_text_part_means_generate_from_html():
    template = email(html="<p>Hi {{ contact.first_name }}</p>", text="  ")
    assert template.text is None
    assert render_email(template, context({"first_name": "Ann"})).text == "Hi Ann"
