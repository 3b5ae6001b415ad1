"""Saved segments in DynamoDB.

Layout (tenant scope prefix added by ScopedTable): ``SEGMENTS / <segment id>`` holds the
name, the small integer ``number`` and the rule tree as a JSON string: the tree is only
ever read whole, and a string keeps any nesting and any number (a float threshold, a
boolean) exactly as the caller wrote it, without DynamoDB's nesting limit or Decimals.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.errors import NotFound
from chalicelib.domain.segments import Segment, SegmentGroup
from chalicelib.store.numbering import allocate_number, release_number, resolve_number
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_SEGMENTS = "SEGMENTS"
NUMBER_KIND = "segment"


def new_segment_id() -> str:
    return "s_" + uuid.uuid4().hex


def _tree_json(tree: SegmentGroup) -> str:
    return tree.model_dump_json(exclude_none=False)


def _segment(item: dict[str, Any]) -> Segment:
    tree = json.loads(item["tree"])
    return Segment.model_validate(
        {
            **{k: v for k, v in item.items() if k != "tree"},
            "condition": tree["condition"],
            "rules": tree["rules"],
        }
    )


def _not_found(segment_id: str) -> NotFound:
    return NotFound(f"segment '{segment_id}' not found", field="segment_id")


def create_segment(
    tenant_id: str, name: str, description: str, tree: SegmentGroup, now: datetime | None = None
) -> Segment:
    at = (now or clock.now()).isoformat()
    segment_id = new_segment_id()
    number = allocate_number(tenant_id, NUMBER_KIND, segment_id)
    item = {
        "id": segment_id,
        "number": number,
        "name": name,
        "description": description,
        "tree": _tree_json(tree),
        "created_at": at,
        "updated_at": at,
    }
    tenant_table(tenant_id).put(_SEGMENTS, segment_id, item, condition=Condition.absent())
    return _segment(item)


def get_segment(tenant_id: str, segment_id: str) -> Segment:
    item = tenant_table(tenant_id).get(_SEGMENTS, segment_id)
    if item is None:
        raise _not_found(segment_id)
    return _segment(item)


def get_segment_by_number(tenant_id: str, number: int) -> Segment:
    """The segment with this numeric id (seed 003 names segments by number)."""
    segment_id = resolve_number(tenant_id, NUMBER_KIND, number)
    if segment_id is None:
        raise NotFound(f"segment {number} not found", field="number")
    return get_segment(tenant_id, segment_id)


def get_segments(tenant_id: str, segment_ids: Iterable[str]) -> dict[str, Segment]:
    """The segments among ``segment_ids`` that exist, by id (BatchGetItem)."""
    found = tenant_table(tenant_id).batch_get((_SEGMENTS, i) for i in segment_ids)
    return {sort: _segment(item) for (_, sort), item in found.items()}


def list_segments(
    tenant_id: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[Segment], str | None]:
    page = tenant_table(tenant_id).query(_SEGMENTS, limit=limit, cursor=cursor)
    return [_segment(i) for i in page.items], page.cursor


def update_segment(
    tenant_id: str,
    segment_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    tree: SegmentGroup | None = None,
    now: datetime | None = None,
) -> Segment:
    """Change what is given; NotFound when the segment does not exist."""
    changes: dict[str, Any] = {
        "name": name,
        "description": description,
        "tree": _tree_json(tree) if tree is not None else None,
        "updated_at": (now or clock.now()).isoformat(),
    }
    try:
        item = tenant_table(tenant_id).update(
            _SEGMENTS, segment_id, set_values=changes, condition=Condition.present()
        )
    except ConditionFailed:
        raise _not_found(segment_id) from None
    return _segment(item)


def delete_segment(tenant_id: str, segment_id: str) -> Segment:
    """Delete a segment and release its number; NotFound when there is none."""
    try:
        item = tenant_table(tenant_id).delete(_SEGMENTS, segment_id, condition=Condition.present())
    except ConditionFailed:
        raise _not_found(segment_id) from None
    assert item is not None  # the condition guarantees it existed
    segment = _segment(item)
    release_number(tenant_id, NUMBER_KIND, segment.number)
    return segment
