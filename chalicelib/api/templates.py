"""Templates: create, read, update (partial), delete, list, and preview against a contact.

Saving checks that every part compiles, uses only known variables and renders within
the sandbox's budgets for a sample contact (422 naming the field: ``subject``, ``html``,
``text`` or ``body``; the store runs ``check_template`` on every write). A preview answers
200 even when a part fails to render for this contact's data: the request was fine, and
``errors`` says which part and why (the same error a campaign records for that
recipient). A part over the budget or forbidden is the template's fault: 422, as at save.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.contacts import Contact, ContactFields
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.templates import (
    Channel,
    Preview,
    RenderContext,
    Template,
    contact_variables,
    preview,
    template_content,
)
from chalicelib.domain.unsubscribe import unsubscribe_url
from chalicelib.services import limits
from chalicelib.settings import get_settings
from chalicelib.store import contacts as contacts_store
from chalicelib.store import templates as store

blueprint = Blueprint(__name__)

_CONTENT_FIELDS = (
    "subject",
    "html",
    "text",
    "body",
    "title",
    "data",
    "url",
    "parse_mode",
    "strict",
)
PREVIEW_LINK = "PREVIEW"  # not a token: the unsubscribe link in a preview leads nowhere


class TemplateFields(Input):
    """Email templates have ``subject``, ``html`` and optional ``text``; SMS ``body``;
    push ``title``, ``body``, ``data``; Telegram ``text``, ``parse_mode``; on-site
    ``title``, ``body``, ``url`` (docs/channels.md)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str | None = Field(default=None, description="Email: one line, Jinja.")
    html: str | None = Field(default=None, description="Email: HTML, Jinja, autoescaped.")
    text: str | None = Field(
        default=None, description="Email: plain text, Jinja; generated from html when absent."
    )
    body: str | None = Field(default=None, description="SMS, push, on-site: the message, Jinja.")
    title: str | None = Field(default=None, description="Push, on-site: one line, Jinja.")
    data: dict[str, str] | None = Field(
        default=None, description="Push: custom key/value pairs for the app, values Jinja."
    )
    url: str | None = Field(default=None, description="On-site: an http(s) link, Jinja.")
    parse_mode: Literal["HTML"] | None = Field(
        default=None, description="Telegram: HTML (contact values escaped) or null (plain)."
    )
    strict: bool | None = Field(
        default=None,
        description="Undefined values are render errors (recipient skipped), not ''.",
    )

    def content_fields(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in _CONTENT_FIELDS if n in self.model_fields_set}


class CreateTemplate(TemplateFields):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel


class TemplateView(ApiModel):
    id: str
    name: str
    channel: Channel
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: str | None = None
    title: str | None = None
    data: dict[str, str] | None = None
    url: str | None = None
    parse_mode: str | None = None
    strict: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, template: Template) -> TemplateView:
        return cls(
            **template.content.model_dump(),
            id=template.id,
            name=template.name,
            created_at=template.created_at,
            updated_at=template.updated_at,
        )


class TemplateSummary(ApiModel):
    """A listing entry: no bodies (a page of 300 KB templates would not fit a response)."""

    id: str
    name: str
    channel: Channel
    subject: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, template: Template) -> TemplateSummary:
        return cls(
            id=template.id,
            name=template.name,
            channel=template.channel,
            subject=getattr(template.content, "subject", None),
            created_at=template.created_at,
            updated_at=template.updated_at,
        )


class PreviewRequest(Input):
    """Render against a sample ``contact`` (fields as on POST /v1/contacts) or a stored one."""

    contact: ContactFields | None = None
    contact_id: str | None = Field(default=None, max_length=64)


@endpoint(
    blueprint,
    "/v1/templates",
    "POST",
    auth="tenant",
    tag="templates",
    status=201,
    summary="Create a template (422 naming the part that does not compile or render)",
    body=CreateTemplate,
    response=TemplateView,
)
def create_template(call: Call) -> TemplateView:
    content = template_content(call.body.channel, call.body.content_fields())
    limits.check_room_for(call.tenant_id, "templates")
    return TemplateView.of(store.create_template(call.tenant_id, call.body.name, content))


@endpoint(
    blueprint,
    "/v1/templates",
    "GET",
    auth="tenant",
    tag="templates",
    summary="List templates (without their bodies)",
    query=ListQuery,
    response=ListPage[TemplateSummary],
)
def list_templates(call: Call) -> ListPage[TemplateSummary]:
    templates, cursor = store.list_templates(
        call.tenant_id, cursor=call.query.cursor, limit=call.query.limit
    )
    return ListPage[TemplateSummary](
        items=[TemplateSummary.of(t) for t in templates], next_cursor=cursor
    )


@endpoint(
    blueprint,
    "/v1/templates/{template_id}",
    "GET",
    auth="tenant",
    tag="templates",
    summary="Get a template",
    response=TemplateView,
)
def get_template(call: Call) -> TemplateView:
    return TemplateView.of(store.get_template(call.tenant_id, call.params["template_id"]))


@endpoint(
    blueprint,
    "/v1/templates/{template_id}",
    "PATCH",
    auth="tenant",
    tag="templates",
    summary="Change a template's name or parts (text: null goes back to text from HTML)",
    body=TemplateFields,
    response=TemplateView,
)
def update_template(call: Call) -> TemplateView:
    template_id = call.params["template_id"]
    changes = call.body.content_fields()
    content = None
    if changes:
        current = store.get_template(call.tenant_id, template_id)
        merged = {**current.content.model_dump(exclude={"channel"}), **changes}
        content = template_content(current.channel, merged)
    updated = store.update_template(
        call.tenant_id, template_id, name=call.body.name, content=content
    )
    return TemplateView.of(updated)


@endpoint(
    blueprint,
    "/v1/templates/{template_id}",
    "DELETE",
    auth="tenant",
    tag="templates",
    summary="Delete a template",
)
def delete_template(call: Call) -> None:
    store.delete_template(call.tenant_id, call.params["template_id"])


@endpoint(
    blueprint,
    "/v1/templates/{template_id}/preview",
    "POST",
    auth="tenant",
    tag="templates",
    summary="Render a template for a sample or stored contact (200 with errors[]; 422 over budget)",
    body=PreviewRequest,
    response=Preview,
)
def preview_template(call: Call) -> Preview:
    template = store.get_template(call.tenant_id, call.params["template_id"])
    now = clock.now()
    context = RenderContext(
        contact=contact_variables(_sample_contact(call.tenant_id, call.body, now)),
        now=now,
        campaign={"id": "", "name": ""},
        unsubscribe_url=unsubscribe_url(PREVIEW_LINK, get_settings()),
    )
    return preview(template.content, context)


def _sample_contact(tenant_id: str, request: PreviewRequest, now: datetime) -> Contact:
    if request.contact is not None and request.contact_id is not None:
        raise ValidationFailed("give either contact or contact_id, not both", field="contact_id")
    if request.contact_id is not None:
        return contacts_store.get_contact(tenant_id, request.contact_id)
    fields = request.contact.model_dump(exclude_none=True) if request.contact else {}
    return Contact(id="c_" + "0" * 32, created_at=now, updated_at=now, **fields)
