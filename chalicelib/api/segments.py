"""Segments: saved rule trees over contacts, and previews of who they match.

The body of a segment is the rule tree itself plus a name: ``{name, description?,
condition, rules}``, so a bad rule is reported at its path in the body
(``rules.1.operator``). The rule language is in docs/segments.md.
"""

from __future__ import annotations

from chalice import Blueprint
from pydantic import Field, ValidationError

from chalicelib.api.errors import field_path
from chalicelib.api.models import ApiModel, Input, ListPage, ListQuery
from chalicelib.api.routing import Call, endpoint
from chalicelib.domain import clock
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.segments import Condition, Rule, Rules, Segment, SegmentGroup
from chalicelib.services import segment_triggers
from chalicelib.store import segments as store
from chalicelib.store.audience import preview_segment

blueprint = Blueprint(__name__)

SAMPLE_MAX = 100


class SegmentRulesInput(SegmentGroup, Input):
    """A rule tree: ``{condition: AND|OR, rules: [rule | group, ...]}``."""


class CreateSegment(SegmentRulesInput):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class UpdateSegment(Input):
    """Change any of these (left out or null: unchanged); ``rules`` replaces the stored ones."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    condition: Condition | None = None
    rules: Rules | None = None


class PreviewOptions(Input):
    sample_size: int = Field(default=10, ge=0, le=SAMPLE_MAX, description="Contacts to return.")


class PreviewRules(SegmentRulesInput, PreviewOptions):
    """A rule tree to preview without saving it, and the sample size."""


class SegmentPreview(ApiModel):
    count: int = Field(description="How many of the tenant's contacts the segment matches now.")
    sample: list[Contact]


@endpoint(
    blueprint,
    "/v1/segments",
    "POST",
    auth="tenant",
    tag="segments",
    status=201,
    summary="Create a segment (422 naming the rule at fault, e.g. rules.1.operator)",
    body=CreateSegment,
    response=Segment,
)
def create_segment(call: Call) -> Segment:
    body: CreateSegment = call.body
    tree = SegmentGroup(condition=body.condition, rules=body.rules)
    return store.create_segment(call.tenant_id, body.name, body.description, tree)


@endpoint(
    blueprint,
    "/v1/segments",
    "GET",
    auth="tenant",
    tag="segments",
    summary="List segments",
    query=ListQuery,
    response=ListPage[Segment],
)
def list_segments(call: Call) -> ListPage[Segment]:
    segments, cursor = store.list_segments(call.tenant_id, call.query.limit, call.query.cursor)
    return ListPage[Segment](items=segments, next_cursor=cursor)


@endpoint(
    blueprint,
    "/v1/segments/{segment_id}",
    "GET",
    auth="tenant",
    tag="segments",
    summary="Get a segment",
    response=Segment,
)
def get_segment(call: Call) -> Segment:
    return store.get_segment(call.tenant_id, call.params["segment_id"])


@endpoint(
    blueprint,
    "/v1/segments/{segment_id}",
    "PATCH",
    auth="tenant",
    tag="segments",
    summary="Rename a segment or replace its rules",
    body=UpdateSegment,
    response=Segment,
)
def update_segment(call: Call) -> Segment:
    body: UpdateSegment = call.body
    segment_id = call.params["segment_id"]
    tree = None
    if body.condition is not None or body.rules is not None:
        current = store.get_segment(call.tenant_id, segment_id)
        tree = _tree(body.condition or current.condition, body.rules or current.rules)
    updated = store.update_segment(
        call.tenant_id, segment_id, name=body.name, description=body.description, tree=tree
    )
    if tree is not None:  # watched under new rules: a new baseline, nobody "entered"
        segment_triggers.on_watch_changed(call.tenant_id, clock.now())
    return updated


def _tree(condition: Condition, rules: list[Rule | SegmentGroup]) -> SegmentGroup:
    """The tree a patch makes; its limits (depth, size) are checked as a whole here."""
    try:
        return SegmentGroup(condition=condition, rules=rules)
    except ValidationError as error:
        problem = error.errors()[0]
        field = field_path(tuple(problem["loc"]))
        raise ValidationFailed(f"{field}: {problem['msg']}", field=field) from None


@endpoint(
    blueprint,
    "/v1/segments/{segment_id}",
    "DELETE",
    auth="tenant",
    tag="segments",
    status=204,
    summary="Delete a segment",
)
def delete_segment(call: Call) -> None:
    store.delete_segment(call.tenant_id, call.params["segment_id"])


@endpoint(
    blueprint,
    "/v1/segments/{segment_id}/preview",
    "POST",
    auth="tenant",
    tag="segments",
    summary="Count the contacts a saved segment matches now, with a sample",
    body=PreviewOptions,
    response=SegmentPreview,
)
def preview_saved_segment(call: Call) -> SegmentPreview:
    segment = store.get_segment(call.tenant_id, call.params["segment_id"])
    count, sample = preview_segment(call.tenant_id, segment.tree, call.body.sample_size)
    return SegmentPreview(count=count, sample=sample)


@endpoint(
    blueprint,
    "/v1/segments:preview",
    "POST",
    auth="tenant",
    tag="segments",
    summary="Count the contacts an unsaved rule tree matches, with a sample",
    body=PreviewRules,
    response=SegmentPreview,
)
def preview_rules(call: Call) -> SegmentPreview:
    body: PreviewRules = call.body
    tree = SegmentGroup(condition=body.condition, rules=body.rules)
    count, sample = preview_segment(call.tenant_id, tree, body.sample_size)
    return SegmentPreview(count=count, sample=sample)
