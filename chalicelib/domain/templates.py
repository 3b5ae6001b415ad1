"""Message templates: what a tenant writes, and what one recipient receives.

Templates are Jinja2, run in Herald's guarded sandbox (``chalicelib.domain.sandbox``).
The HTML part is autoescaped (contact data cannot inject markup); subject, text and SMS
bodies are not (they are not HTML). A template sees four variables:

- ``contact``: the contact's fields, its ``attributes`` under ``contact.attributes`` and,
  where no field has the same name, also directly (``contact.plan``);
- ``campaign``: ``id`` and ``name`` (empty outside a campaign);
- ``unsubscribe_url``: this recipient's one-click unsubscribe link;
- ``now``: the send time, an aware UTC datetime.

Missing values: a contact field or attribute that is absent, null or the empty string is
*undefined*. By default undefined renders as the empty string, and chains
(``contact.address.city`` of a contact without ``address`` is empty too), so
``{{ contact.first_name | default("there") }}`` and ``{% if contact.plan %}`` do what they
say. With ``strict: true`` any other use of an undefined value is a render error for
that recipient, who is then skipped rather than sent "Hi ,". Unknown *top-level* names
(``{{ contcat.first_name }}``) are refused when the template is saved, in both modes: a
typo is the author's problem, not the recipient's.

A render error is per recipient (``RenderError`` names the field and a reason); the
rendered subject is flattened onto one line, because contact data must not be able to add
a header. Every way rendering can fail is a ``RenderError``: nothing else escapes
``render_email``/``render_sms``. A template that breaks the sandbox's rules or budgets
(``TEMPLATE_FAULTS``) for a sample contact is refused when saved (``check_renders``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import unescape as unescape_html
from html.parser import HTMLParser
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from chalicelib.domain import clock
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact, first_error
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.headers import HeaderText, single_line
from chalicelib.domain.model import Model

Channel = ChannelName
RenderReason = Literal["syntax", "undefined", "forbidden", "too_large", "too_complex", "error"]
# Failures that are the template's own, whatever the contact: refused at save, a 422 in a
# preview. The others (a strict template's missing value, 1 / contact.count) depend on
# each contact's data and stay that recipient's failure.
TEMPLATE_FAULTS: frozenset[RenderReason] = frozenset({"forbidden", "too_large", "too_complex"})

# ``event``: the event that enrolled the contact in a flow (empty for a broadcast).
VARIABLES = frozenset({"contact", "campaign", "unsubscribe_url", "now", "event"})

# Source limits: a stored template must fit one DynamoDB item (400 KB) with room to spare.
SUBJECT_SOURCE_MAX = 2_000
BODY_SOURCE_MAX = 350_000
SMS_SOURCE_MAX = 5_000
STORED_BYTES_MAX = 360_000
# Rendered limits, per recipient.
SUBJECT_MAX = 998  # RFC 5322's line limit
HTML_MAX = 1_000_000
TEXT_MAX = 1_000_000
SMS_MAX = 1_600  # SNS splits longer SMS and refuses beyond this
TITLE_MAX = 200  # a push or on-site title, one line
PUSH_BODY_MAX = 2_000  # APNs refuses payloads over 4 KB; title, body and data share it
PUSH_DATA_KEYS = 20
PUSH_DATA_VALUE_MAX = 500
TELEGRAM_TEXT_MAX = 4_096  # the Bot API's sendMessage limit
ONSITE_BODY_MAX = 20_000
URL_MAX = 2_000

# Jinja node classes by name (``jinja2.nodes`` loads with the sandbox, on first use).
_UNSUPPORTED_TAGS = (
    ("Extends", "extends"),
    ("Include", "include"),
    ("Import", "import"),
    ("FromImport", "from ... import"),
)


# -- content ----------------------------------------------------------------------------
class EmailTemplate(Model):
    """An email's subject, HTML and (optional) text part, as Jinja sources."""

    model_config = ConfigDict(frozen=True)

    channel: Literal["email"] = "email"
    subject: HeaderText = Field(min_length=1, max_length=SUBJECT_SOURCE_MAX)
    html: str = Field(min_length=1, max_length=BODY_SOURCE_MAX)
    text: str | None = Field(
        default=None,
        max_length=BODY_SOURCE_MAX,
        description="Plain-text part; generated from the rendered HTML when absent.",
    )
    strict: bool = Field(
        default=False,
        description="Undefined values are render errors (the recipient is skipped), not ''.",
    )

    @field_validator("text")
    @classmethod
    def _blank_text_is_absent(cls, value: str | None) -> str | None:
        """An empty text part means "make one from the HTML", never an empty part."""
        return value if value is not None and value.strip() else None


class SmsTemplate(Model):
    """An SMS body, as a Jinja source."""

    model_config = ConfigDict(frozen=True)

    channel: Literal["sms"] = "sms"
    body: str = Field(min_length=1, max_length=SMS_SOURCE_MAX)
    strict: bool = False


class PushTemplate(Model):
    """A mobile push notification: title, body and custom data (each value Jinja)."""

    model_config = ConfigDict(frozen=True)

    channel: Literal["push"] = "push"
    title: HeaderText = Field(min_length=1, max_length=SUBJECT_SOURCE_MAX)
    body: str = Field(min_length=1, max_length=SMS_SOURCE_MAX)
    data: (
        dict[
            Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
            Annotated[str, Field(max_length=SMS_SOURCE_MAX)],
        ]
        | None
    ) = Field(
        default=None,
        max_length=PUSH_DATA_KEYS,
        description="Custom key/value pairs the app receives with the notification.",
    )
    strict: bool = False


class TelegramTemplate(Model):
    """A Telegram message: ``text`` (Jinja); ``parse_mode`` HTML escapes contact data."""

    model_config = ConfigDict(frozen=True)

    channel: Literal["telegram"] = "telegram"
    text: str = Field(min_length=1, max_length=SMS_SOURCE_MAX * 2)
    parse_mode: Literal["HTML"] | None = Field(
        default=None,
        description="HTML: Telegram's HTML subset, contact values autoescaped; null: plain.",
    )
    strict: bool = False


class OnsiteTemplate(Model):
    """An on-site inbox message: title, body (plain text) and an optional link."""

    model_config = ConfigDict(frozen=True)

    channel: Literal["onsite"] = "onsite"
    title: HeaderText = Field(min_length=1, max_length=SUBJECT_SOURCE_MAX)
    body: str = Field(min_length=1, max_length=ONSITE_BODY_MAX)
    url: str | None = Field(default=None, max_length=URL_MAX, description="http(s), Jinja.")
    strict: bool = False


AnyTemplate = EmailTemplate | SmsTemplate | PushTemplate | TelegramTemplate | OnsiteTemplate
TemplateContent = Annotated[AnyTemplate, Field(discriminator="channel")]
CONTENT_MODELS: dict[ChannelName, type[AnyTemplate]] = {
    "email": EmailTemplate,
    "sms": SmsTemplate,
    "push": PushTemplate,
    "telegram": TelegramTemplate,
    "onsite": OnsiteTemplate,
}


class Template(Model):
    """A stored template: a name and the content of one channel."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    content: TemplateContent
    created_at: datetime
    updated_at: datetime

    @property
    def channel(self) -> Channel:
        return self.content.channel


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class RenderedSms:
    body: str


@dataclass(frozen=True)
class RenderedPush:
    title: str
    body: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class RenderedTelegram:
    text: str
    parse_mode: str | None


@dataclass(frozen=True)
class RenderedOnsite:
    title: str
    body: str
    url: str | None


class RenderError(ValidationFailed):
    """One field of a template could not be rendered for one recipient."""

    code = "render_error"

    def __init__(self, field: str, reason: RenderReason, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.reason = reason
        self.detail = message


class RenderProblem(Model):
    field: str
    reason: RenderReason
    message: str

    @classmethod
    def of(cls, error: RenderError) -> RenderProblem:
        return cls(field=error.field or "", reason=error.reason, message=error.detail)


class Preview(Model):
    """What a preview shows: every part that rendered, and an error for each that did not."""

    channel: Channel
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: str | None = None
    title: str | None = None
    url: str | None = None
    data: dict[str, str] | None = None
    errors: list[RenderProblem] = Field(default_factory=list)


# -- the render context -----------------------------------------------------------------
@dataclass(frozen=True)
class RenderContext:
    """Everything one recipient's message is rendered against."""

    contact: Mapping[str, Any]
    now: datetime
    campaign: Mapping[str, Any] = field(default_factory=dict)
    unsubscribe_url: str = ""
    event: Mapping[str, Any] | None = None  # a flow's enrolling event (name, properties…)

    def variables(self) -> dict[str, Any]:
        return {
            "contact": self.contact,
            "campaign": dict(self.campaign),
            "unsubscribe_url": self.unsubscribe_url,
            "now": self.now,
            "event": dict(self.event or {}),
        }


def contact_variables(contact: Contact | Mapping[str, Any]) -> dict[str, Any]:
    """A contact as templates see it (see the module docstring for the missing-value rule).

    Absent, null and empty values are left out so that ``default(...)`` applies to them;
    a template printing ``None`` for a contact without a name helps nobody.
    """
    fields = contact.model_dump() if isinstance(contact, Contact) else dict(contact)
    attributes = fields.get("attributes") or {}
    visible = {k: v for k, v in fields.items() if _present(v)}
    visible["attributes"] = {k: v for k, v in attributes.items() if _present(v)}
    for name, value in visible["attributes"].items():
        visible.setdefault(name, value)
    return visible


def _present(value: Any) -> bool:
    return value is not None and value != ""


def template_content(channel: Channel, fields: Mapping[str, Any]) -> AnyTemplate:
    """The content of a ``channel`` template from loose fields (an API body, a patch merged
    onto stored content); ValidationFailed naming the field for anything wrong."""
    model = CONTENT_MODELS[channel]
    own = set(model.model_fields) - {"channel"}
    for name, value in fields.items():
        if name not in own and value is not None:
            raise ValidationFailed(f"{name} is not a field of an {channel} template", field=name)
    try:
        return model.model_validate({k: v for k, v in fields.items() if k in own})
    except ValidationError as error:
        field, message = first_error(error)
        raise ValidationFailed(f"{field}: {message}", field=field) from None


# -- save-time checks -------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """One Jinja source of a template: its field name, escaping and rendered budget."""

    source: str
    field: str
    autoescape: bool
    max_length: int


def _parts(content: AnyTemplate) -> list[_Part]:
    """Every source of a template, in the order its errors are reported."""
    if isinstance(content, EmailTemplate):
        parts = [
            _Part(content.subject, "subject", False, SUBJECT_MAX),
            _Part(content.html, "html", True, HTML_MAX),
        ]
        if content.text is not None:
            parts.append(_Part(content.text, "text", False, TEXT_MAX))
        return parts
    if isinstance(content, SmsTemplate):
        return [_Part(content.body, "body", False, SMS_MAX)]
    if isinstance(content, PushTemplate):
        return [
            _Part(content.title, "title", False, TITLE_MAX),
            _Part(content.body, "body", False, PUSH_BODY_MAX),
            *(
                _Part(value, f"data.{key}", False, PUSH_DATA_VALUE_MAX)
                for key, value in (content.data or {}).items()
            ),
        ]
    if isinstance(content, TelegramTemplate):
        escaped = content.parse_mode == "HTML"
        return [_Part(content.text, "text", escaped, TELEGRAM_TEXT_MAX)]
    parts = [
        _Part(content.title, "title", False, TITLE_MAX),
        _Part(content.body, "body", False, ONSITE_BODY_MAX),
    ]
    if content.url is not None:
        parts.append(_Part(content.url, "url", False, URL_MAX))
    return parts


def check_template(content: AnyTemplate) -> None:
    """ValidationFailed (422, naming the field) for a template that could never render."""
    parts = _parts(content)
    for part in parts:
        _check_source(part.source, part.field, autoescape=part.autoescape)
    stored = sum(len(part.source.encode()) for part in parts)
    if stored > STORED_BYTES_MAX:
        largest = max(parts, key=lambda part: len(part.source))
        raise ValidationFailed(
            f"the template is {stored} bytes; at most {STORED_BYTES_MAX} can be stored",
            field=largest.field,
        )
    check_renders(content)


# The contact a template is test-rendered for when it is saved: every field a contact can
# have, typical values, no attributes (a tenant's attribute names are unknown here, and a
# missing one renders empty). Rendering it exercises the template's loops and filters.
SAMPLE_CONTACT: dict[str, Any] = {
    "id": "c_" + "0" * 32,
    "email": "ada@example.com",
    "phone": "+4915112345678",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "timezone": "Europe/Berlin",
    "locale": "en-GB",
    "attributes": {},
    "tags": ["customer"],
    "lead_score": 42,
    "status": "subscribed",
    "lists": [],
    "events": {},
}
SAMPLE_UNSUBSCRIBE_URL = "https://unsubscribe.invalid/u/" + "S" * 100  # a token's length


def check_renders(template: Template | AnyTemplate) -> None:
    """RenderError (a 422 ValidationFailed naming the part: ``subject``, ``html``, ``text``,
    ``body``, ``title``, ``url`` or ``data.<key>``) when the template breaks the sandbox's
    rules or budgets for a sample contact (``TEMPLATE_FAULTS``); returns None otherwise.

    Run when a template is saved and before a campaign is scheduled or sent, so that a
    template that can only fail never reaches the send workers. Rendered leniently (as if
    ``strict`` were off) so that a missing attribute does not hide the rest of the part.
    """
    content = template.content if isinstance(template, Template) else template
    context = RenderContext(
        contact=contact_variables(SAMPLE_CONTACT),
        now=clock.now(),
        campaign={"id": "cmp_" + "0" * 32, "name": "Sample campaign", "number": 1},
        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
    )
    variables = context.variables()
    for part in _parts(content):
        try:
            _render_part(part, variables, False)
        except RenderError as error:
            if error.reason in TEMPLATE_FAULTS:
                raise


def _check_source(source: str, field: str, *, autoescape: bool) -> None:
    # Imported here, not at the top: only functions that save or render templates load Jinja.
    from jinja2 import TemplateSyntaxError, meta, nodes

    from chalicelib.domain.sandbox import compile_template, environment

    try:
        tree = environment(autoescape=autoescape, strict=False).parse(source)
        compile_template(source, autoescape=autoescape, strict=False)
    except TemplateSyntaxError as error:
        message = f"{field}: line {error.lineno}: {error.message}"
        raise ValidationFailed(message, field=field) from None
    for node_type, tag in _UNSUPPORTED_TAGS:
        if tree.find(getattr(nodes, node_type)) is not None:
            raise ValidationFailed(
                f"{field}: {{% {tag} %}} is not supported; a template stands alone", field=field
            )
    unknown = meta.find_undeclared_variables(tree) - VARIABLES
    if unknown:
        raise ValidationFailed(
            f"{field}: unknown variable(s) {', '.join(sorted(unknown))}; a template can use "
            f"{', '.join(sorted(VARIABLES))}",
            field=field,
        )


# -- rendering --------------------------------------------------------------------------
def render_email(template: EmailTemplate, context: RenderContext) -> RenderedEmail:
    """One recipient's email; RenderError (naming the field) if any part fails."""
    variables = context.variables()
    subject = _render_subject(template, variables)
    html = _render(template.html, "html", variables, template.strict, autoescape=True)
    if template.text is None:
        text = _derived_text(template.html, html)
    else:
        text = _render(template.text, "text", variables, template.strict, autoescape=False)
    return RenderedEmail(subject=subject, html=html, text=text)


def render_sms(template: SmsTemplate, context: RenderContext) -> RenderedSms:
    """One recipient's SMS; RenderError (field ``body``) if it fails or comes out empty."""
    body = _render(template.body, "body", context.variables(), template.strict, autoescape=False)
    body = body.replace("\x00", "").strip()
    if not body:
        raise RenderError("body", "error", "the message rendered empty")
    return RenderedSms(body=body)


def _render_part(part: _Part, variables: dict[str, Any], strict: bool) -> str:
    return _render(
        part.source,
        part.field,
        variables,
        strict,
        autoescape=part.autoescape,
        max_length=part.max_length,
    )


def _rendered_parts(content: AnyTemplate, context: RenderContext) -> dict[str, str]:
    """Every part of a push, Telegram or on-site template rendered, by field name;
    RenderError for the first that fails. Text parts are stripped of NUL and whitespace
    around them; titles are flattened onto one line."""
    variables = context.variables()
    rendered: dict[str, str] = {}
    for part in _parts(content):
        value = _render_part(part, variables, content.strict).replace("\x00", "").strip()
        if part.field == "title":
            value = single_line(value)
        if not value and part.field in ("title", "body", "text"):
            raise RenderError(part.field, "error", f"the {part.field} rendered empty")
        rendered[part.field] = value
    return rendered


def render_push(template: PushTemplate, context: RenderContext) -> RenderedPush:
    """One recipient's push notification; RenderError naming the part that fails."""
    parts = _rendered_parts(template, context)
    data = {key: parts[f"data.{key}"] for key in template.data or {}}
    return RenderedPush(title=parts["title"], body=parts["body"], data=data)


def render_telegram(template: TelegramTemplate, context: RenderContext) -> RenderedTelegram:
    """One recipient's Telegram message; RenderError (field ``text``) if it fails."""
    return RenderedTelegram(_rendered_parts(template, context)["text"], template.parse_mode)


def render_onsite(template: OnsiteTemplate, context: RenderContext) -> RenderedOnsite:
    """One recipient's on-site message; a ``url`` that renders to anything but an http(s)
    URL is the recipient's RenderError (field ``url``), never a ``javascript:`` link."""
    parts = _rendered_parts(template, context)
    url = parts.get("url") or None
    if url is not None and not _HTTP_URL.match(url):
        raise RenderError("url", "error", "the url must render to an http(s) URL")
    return RenderedOnsite(title=parts["title"], body=parts["body"], url=url)


_HTTP_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
Rendered = RenderedEmail | RenderedSms | RenderedPush | RenderedTelegram | RenderedOnsite


def render(content: AnyTemplate, context: RenderContext) -> Rendered:
    """One recipient's message of any channel; RenderError naming the part that fails."""
    if isinstance(content, EmailTemplate):
        return render_email(content, context)
    if isinstance(content, SmsTemplate):
        return render_sms(content, context)
    if isinstance(content, PushTemplate):
        return render_push(content, context)
    if isinstance(content, TelegramTemplate):
        return render_telegram(content, context)
    return render_onsite(content, context)


def preview(template: AnyTemplate, context: RenderContext) -> Preview:
    """Render every part independently, collecting errors instead of stopping at the first.

    A part that fails for a reason of the template's own (``TEMPLATE_FAULTS``: over a
    budget, forbidden) raises its RenderError instead: the template, not the contact, is
    what needs fixing, and a preview is bounded exactly like a send.
    """
    if not isinstance(template, EmailTemplate):
        try:
            shown = render(template, context)
        except RenderError as error:
            if error.reason in TEMPLATE_FAULTS:
                raise
            return Preview(channel=template.channel, errors=[RenderProblem.of(error)])
        return Preview(channel=template.channel, **_preview_fields(shown))
    variables = context.variables()
    errors: list[RenderProblem] = []

    def attempt(render: Callable[[], str]) -> str | None:
        try:
            return render()
        except RenderError as error:
            if error.reason in TEMPLATE_FAULTS:
                raise
            errors.append(RenderProblem.of(error))
            return None

    def part(source: str, field: str, autoescape: bool) -> Callable[[], str]:
        return lambda: _render(source, field, variables, template.strict, autoescape=autoescape)

    subject = attempt(lambda: _render_subject(template, variables))
    html = attempt(part(template.html, "html", True))
    if template.text is not None:
        text = attempt(part(template.text, "text", False))
    else:
        text = attempt(lambda: _derived_text(template.html, html)) if html is not None else None
    return Preview(channel="email", subject=subject, html=html, text=text, errors=errors)


def _preview_fields(shown: Rendered) -> dict[str, Any]:
    """A rendered message of any channel but email as Preview's fields."""
    if isinstance(shown, RenderedSms):
        return {"body": shown.body}
    if isinstance(shown, RenderedPush):
        return {"title": shown.title, "body": shown.body, "data": dict(shown.data)}
    if isinstance(shown, RenderedTelegram):
        return {"text": shown.text}
    assert isinstance(shown, RenderedOnsite)
    return {"title": shown.title, "body": shown.body, "url": shown.url}


def _derived_text(source: str, html: str) -> str:
    """``derived_text`` for a render: any failure of it is the text part's RenderError."""
    try:
        return derived_text(source, html)
    except Exception as error:  # HTMLParser on hostile markup: that recipient's error
        raise RenderError("text", "error", f"{type(error).__name__}: {error}") from None


def _render_subject(template: EmailTemplate, variables: dict[str, Any]) -> str:
    rendered = _render(template.subject, "subject", variables, template.strict, autoescape=False)
    subject = single_line(rendered)
    if not subject:
        raise RenderError("subject", "error", "the subject rendered empty")
    return subject


_MAX_LENGTH = {"subject": SUBJECT_MAX, "html": HTML_MAX, "text": TEXT_MAX, "body": SMS_MAX}


def _render(
    source: str,
    field: str,
    variables: dict[str, Any],
    strict: bool,
    *,
    autoescape: bool,
    max_length: int | None = None,
) -> str:
    """Render one part; every way a template can fail becomes a RenderError for ``field``."""
    # Imported here, not at the top: only functions that save or render templates load Jinja.
    from chalicelib.domain.sandbox import compile_template, run

    try:
        template = compile_template(source, autoescape=autoescape, strict=strict)
        return run(template, variables, max_length=max_length or _MAX_LENGTH[field])
    except Exception as error:
        raise _render_error(field, error) from None


def _render_error(field: str, error: Exception) -> RenderError:
    """The RenderError for a part that failed with ``error``. Jinja's exception types are
    imported here, when a render fails, not on every render (importing names from a
    package runs Python code each time, a tenth of rendering a subject line)."""
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    from chalicelib.domain.sandbox import LimitExceeded

    if isinstance(error, LimitExceeded):
        return RenderError(field, error.reason, error.message)
    if isinstance(error, SecurityError):
        return RenderError(field, "forbidden", str(error))
    if isinstance(error, UndefinedError):
        return RenderError(field, "undefined", str(error))
    if isinstance(error, TemplateSyntaxError):
        return RenderError(field, "syntax", f"line {error.lineno}: {error.message}")
    if isinstance(error, RecursionError):
        return RenderError(field, "too_complex", "the template recurses too deeply")
    if isinstance(error, MemoryError):
        return RenderError(field, "too_large", "the template needs too much memory")
    # any runtime error in tenant code is that recipient's error
    return RenderError(field, "error", f"{type(error).__name__}: {error}")


# -- text from HTML ---------------------------------------------------------------------
_SKIPPED = frozenset({"head", "script", "style", "template", "title", "noscript"})
_PARAGRAPHS = frozenset(
    {"p", "div", "table", "ul", "ol", "blockquote", "pre", "section", "article", "header"}
    | {"footer", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "form"}
)
_LINES = frozenset({"br", "tr", "li", "dt", "dd"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_RUNS_OF_SPACES = re.compile(r" {2,}")


class _TextExtractor(HTMLParser):
    """Visible text with block structure as line breaks and links as ``label (url)``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._links: list[tuple[str, int]] = []  # (href, index of the first part of its label)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
            return
        self._break(tag)
        attributes = dict(attrs)
        if tag == "li":
            self.parts.append("- ")
        elif tag == "a":
            self._links.append(((attributes.get("href") or "").strip(), len(self.parts)))
        elif tag == "img" and attributes.get("alt"):
            self.parts.append(f" {attributes['alt']} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(self._skipping - 1, 0)
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = _SPACES.sub(" ", "".join(self.parts[start:])).strip()
            self.parts.append(_link_target(href, label))
        if tag in _PARAGRAPHS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(_SPACES.sub(" ", data))

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPHS:
            self.parts.append("\n\n")
        elif tag in _LINES:
            self.parts.append("\n")


def _link_target(href: str, label: str) -> str:
    """What the text shows of a link's target after its label: `` (url)``, or the url
    alone for a link without a label; nothing for an anchor, a script or a label that
    already says it."""
    if not href or href.startswith(("#", "javascript:")) or href in label:
        return ""
    return f" ({href})" if label else href


def text_from_html(html: str) -> str:
    """A readable plain-text part for ``html``: no tags, link targets kept, tidy whitespace."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return _tidy("".join(extractor.parts))


def _tidy(text: str) -> str:
    """The extracted text with single spaces, trimmed lines and at most one blank line."""
    text = _RUNS_OF_SPACES.sub(" ", text)
    lines = (line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# -- the text part without parsing each recipient's HTML --------------------------------
# Parsing the rendered HTML again for every recipient is most of the cost of rendering an
# email without a text part (≈ 250 µs for 2 KB of HTML, growing with its size). Where the
# HTML template allows it, it is parsed once instead: its fixed text with a placeholder
# for each ``{{ expression }}``. Per recipient, the values are cut out of the rendered HTML
# between the fixed pieces and put into the plan's text, so the result is exactly what
# ``text_from_html`` makes of the rendered HTML (tests compare the two on hostile values).
#
# That holds because every value is HTML-escaped: it holds no ``<``, ``>`` or quote, so it
# cannot open or close markup or an attribute, and no ``&`` that is not a whole entity.
# A value that breaks this (``|safe``) makes that recipient's text the slow way. Templates
# whose text depends on values in other ways have no plan and always take the slow way:
# statements (``{% if %}``, ``{% for %}``), values in a link's label, an image's alt text,
# an unquoted attribute, a tag name or a comment, or two values with no markup between.
_VALUE = ("\ue000", "\ue001")  # a value's placeholder in the plan: \ue000<index>\ue001
_LINK = ("\ue002", "\ue003")  # a link whose target holds a value: \ue002<index>\ue003
_MARKERS = re.compile("\ue000(\\d+)\ue001|\ue002(\\d+)\ue003")
_VALUE_MARKER = re.compile("\ue000(\\d+)\ue001")
_MARKUP_CHARS = re.compile("[<>\"']")
_WHOLE_ENTITIES = re.compile(r"(?:[^&]|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);)*")
_OPEN_ENTITY = re.compile(r"&[^\t\n\f <&;]*\Z")  # an entity a value could complete
_OPEN_MARKUP = re.compile(r"<[/!?]?\Z")  # a tag a value could name
_QUOTED_VALUES = re.compile(r"""=\s*(?:"[^"]*"|'[^']*')""")


@dataclass(frozen=True)
class _TextPlan:
    """How the text part follows from the rendered HTML of one template."""

    fixed: tuple[str, ...]  # the template's fixed HTML around its values (one more than them)
    text: str  # the extracted text, with value and link markers
    links: tuple[tuple[str, str], ...]  # (target with value markers, label) of marked links


class _NoPlan(Exception):
    """The template's text depends on its values in a way only parsing can follow."""


def derived_text(source: str, html: str) -> str:
    """The text part of an email whose template ``source`` rendered to ``html``: exactly
    ``text_from_html(html)``, made without parsing ``html`` where the template allows."""
    plan = _text_plan(source)
    values = _values_in(html, plan.fixed) if plan is not None else None
    if plan is None or values is None:
        return text_from_html(html)
    raw = [unescape_html(value) if "&" in value else value for value in values]

    def fill(marker: re.Match[str]) -> str:
        if marker[1] is not None:
            return _SPACES.sub(" ", raw[int(marker[1])])
        target, label = plan.links[int(marker[2])]
        href = _VALUE_MARKER.sub(lambda value: raw[int(value[1])], target).strip()
        return _link_target(href, label)

    return _tidy(_MARKERS.sub(fill, plan.text))


def _values_in(html: str, fixed: tuple[str, ...]) -> list[str] | None:
    """The escaped values between the fixed pieces of ``html``, or None when one of them
    is not plainly escaped text (then the cut is not certain, or the value is markup).

    The cut is unique: each piece between two values holds a character no value holds.
    """
    first, last = fixed[0], fixed[-1]
    if not html.startswith(first) or not html.endswith(last):
        return None
    values, position, end = [], len(first), len(html) - len(last)
    for piece in fixed[1:-1]:
        found = html.find(piece, position)
        if found < 0:
            return None
        values.append(html[position:found])
        position = found + len(piece)
    if end < position or (len(fixed) == 1 and position != len(html)):
        return None
    if len(fixed) > 1:
        values.append(html[position:end])
    for value in values:
        if _MARKUP_CHARS.search(value) or ("&" in value and not _WHOLE_ENTITIES.fullmatch(value)):
            return None
    return values


@functools.lru_cache(maxsize=512)
def _text_plan(source: str) -> _TextPlan | None:
    """The plan for an HTML template, None when it cannot have one (see above)."""
    from jinja2 import TemplateSyntaxError, nodes

    from chalicelib.domain.sandbox import environment

    try:
        tree = environment(autoescape=True, strict=False).parse(source)
    except TemplateSyntaxError:
        return None
    fixed, current = [], []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                current.append(node.data)
            else:
                fixed.append("".join(current))
                current = []
    fixed.append("".join(current))
    if not _cuts_cleanly(fixed):
        return None
    marked = "".join(f"{piece}{_VALUE[0]}{i}{_VALUE[1]}" for i, piece in enumerate(fixed[:-1]))
    extractor = _PlanExtractor(values=len(fixed) - 1)
    try:
        extractor.feed(marked + fixed[-1])
        extractor.close()
    except _NoPlan:
        return None
    if extractor.unseen:
        return None  # a value inside a comment, a declaration or an end tag
    return _TextPlan(tuple(fixed), "".join(extractor.parts), tuple(extractor.links))


def _cuts_cleanly(fixed: list[str]) -> bool:
    """The fixed pieces let each value be cut out of the HTML, and no value can change how
    the fixed HTML around it is read."""
    if any(mark in piece for piece in fixed for mark in (*_VALUE, *_LINK)):
        return False
    if not all(_MARKUP_CHARS.search(piece) for piece in fixed[1:-1]):
        return False
    return not any(_OPEN_ENTITY.search(p) or _OPEN_MARKUP.search(p) for p in fixed[:-1])


class _PlanExtractor(_TextExtractor):
    """``_TextExtractor`` over HTML with value placeholders: it keeps each placeholder in
    the text where the value's text goes, marks links whose target holds a value, and
    refuses (``_NoPlan``) wherever the text would depend on a value some other way."""

    def __init__(self, *, values: int) -> None:
        super().__init__()
        self.unseen = set(range(values))
        self.links: list[tuple[str, str]] = []

    def _see(self, text: str) -> bool:
        found = {int(match[1]) for match in _VALUE_MARKER.finditer(text)}
        self.unseen -= found
        return bool(found)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        if self._see(raw):
            if _VALUE[0] in _QUOTED_VALUES.sub("", raw):
                raise _NoPlan("a value outside a quoted attribute")
            if tag == "img" and _VALUE[0] in (dict(attrs).get("alt") or ""):
                raise _NoPlan("a value in an image's alt text")
        super().handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links[-1]
            label = _SPACES.sub(" ", "".join(self.parts[start:])).strip()
            if _LINK[0] in label:
                raise _NoPlan("a link inside the label of another")
            if _VALUE[0] in href:
                self._links.pop()
                self.parts.append(f"{_LINK[0]}{len(self.links)}{_LINK[1]}")
                self.links.append((href, label))
                return
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._see(data) and self._links and not self._skipping:
            raise _NoPlan("a value in a link's label")
        super().handle_data(data)
