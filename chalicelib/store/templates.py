"""Message templates in DynamoDB.

Layout (scope prefix added by ScopedTable): ``T#<tenant>#TEMPLATE / <template id>``, one
item holding the name and the content of one channel. Every write goes through
``check_template`` first, so a stored template always compiles: a syntax error is a 422
at save time, never a campaign full of failed renders.
"""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.templates import AnyTemplate, Template, check_template
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_TEMPLATE = "TEMPLATE"


def new_template_id() -> str:
    return "tpl_" + uuid.uuid4().hex


def _item(template: Template) -> dict[str, Any]:
    return template.model_dump(mode="json")


def _not_found(template_id: str) -> NotFound:
    return NotFound(f"template '{template_id}' not found", field="template_id")


def create_template(tenant_id: str, name: str, content: AnyTemplate) -> Template:
    check_template(content)
    now = clock.now()
    template = Template(
        id=new_template_id(), name=name, content=content, created_at=now, updated_at=now
    )
    tenant_table(tenant_id).put(
        _TEMPLATE, template.id, _item(template), condition=Condition.absent()
    )
    return template


def get_template(tenant_id: str, template_id: str) -> Template:
    """The template, or NotFound (field ``template_id``), also for another tenant's id."""
    item = tenant_table(tenant_id).get(_TEMPLATE, template_id)
    if item is None:
        raise _not_found(template_id)
    return Template.model_validate(item)


def list_templates(
    tenant_id: str, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[Template], str | None]:
    page = tenant_table(tenant_id).query(_TEMPLATE, limit=limit, cursor=cursor)
    return [Template.model_validate(i) for i in page.items], page.cursor


def update_template(
    tenant_id: str,
    template_id: str,
    *,
    name: str | None = None,
    content: AnyTemplate | None = None,
) -> Template:
    """Replace the name and/or content (the channel stays); checked like a create."""
    current = get_template(tenant_id, template_id)
    if content is not None:
        check_template(content)
    updated = current.model_copy(
        update={
            "name": name if name is not None else current.name,
            "content": content if content is not None else current.content,
            "updated_at": clock.now(),
        }
    )
    try:
        tenant_table(tenant_id).put(
            _TEMPLATE,
            template_id,
            _item(updated),
            condition=Condition.equals("updated_at", _item(current)["updated_at"]),
        )
    except ConditionFailed:
        raise Conflict(
            f"template '{template_id}' changed concurrently; retry", field="template_id"
        ) from None
    return updated


def delete_template(tenant_id: str, template_id: str) -> Template:
    removed = tenant_table(tenant_id).delete(_TEMPLATE, template_id)
    if removed is None:
        raise _not_found(template_id)
    return Template.model_validate(removed)


def count_templates(tenant_id: str, *, at_most: int) -> int:
    """How many templates the tenant has, counted up to ``at_most`` (for its limit)."""
    return tenant_table(tenant_id).count(_TEMPLATE, at_most=at_most)
