"""Audiences: lists or segments, minus exclusions, streamed page by page, each contact once."""

from __future__ import annotations

import pytest

from chalicelib.domain.audience import AudienceSpec
from chalicelib.domain.contacts import ContactFields
from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.segments import SegmentGroup
from chalicelib.store import contacts as contact_store
from chalicelib.store import lists as list_store
from chalicelib.store import segments as segment_store
from chalicelib.store.audience import audience_page, iter_audience
from chalicelib.store.tenants import create_tenant

VIP = SegmentGroup.model_validate(
    {"rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}
)


@pytest.fixture
def world(aws):
    """Ten contacts of one tenant: c0..c9; lists A = c0..c4, B = c3..c6; VIP tags c5, c8."""
    tenant, _, _ = create_tenant("Acme")
    ids = [
        contact_store.create_contact(
            tenant.id, ContactFields(email=f"c{i}@x.com", tags=["vip"] if i in (5, 8) else [])
        ).id
        for i in range(10)
    ]
    a = list_store.create_list(tenant.id, "A")
    b = list_store.create_list(tenant.id, "B")
    list_store.add_members(tenant.id, a.id, ids[0:5], [])
    list_store.add_members(tenant.id, b.id, ids[3:7], [])
    vip = segment_store.create_segment(tenant.id, "VIP", "", VIP)
    return {"tenant": tenant.id, "ids": ids, "A": a.id, "B": b.id, "vip": vip.id}


def members(world, *, segments=(), lists=(), exclude_segments=(), exclude_lists=(), page_size=500):
    pages = list(
        iter_audience(
            world["tenant"],
            [world[s] for s in segments],
            [world[name] for name in lists],
            exclude_segment_ids=[world[s] for s in exclude_segments],
            exclude_list_ids=[world[name] for name in exclude_lists],
            page_size=page_size,
        )
    )
    flat = [c.id for page in pages for c in page]
    assert len(flat) == len(set(flat)), "a contact appeared twice"
    return {world["ids"].index(i) for i in flat}


def test_lists_only_union_has_each_contact_once(world):
    assert members(world, lists=("A", "B")) == {0, 1, 2, 3, 4, 5, 6}
    assert members(world, lists=("B", "A"), page_size=2) == {0, 1, 2, 3, 4, 5, 6}


def test_lists_and_segments_union_in_one_pass(world):
    assert members(world, segments=("vip",), lists=("A",)) == {0, 1, 2, 3, 4, 5, 8}
    assert members(world, segments=("vip",)) == {5, 8}


def test_exclusions_apply_in_both_walks(world):
    assert members(world, lists=("A", "B"), exclude_lists=("A",)) == {5, 6}
    assert members(world, lists=("A", "B"), exclude_segments=("vip",)) == {0, 1, 2, 3, 4, 6}
    assert members(world, segments=("vip",), exclude_lists=("B",)) == {8}


def test_audience_page_resumes_from_its_cursor_and_examines_at_most_limit(world):
    for spec, expected in (
        (AudienceSpec(list_ids=[world["A"], world["B"]]), {0, 1, 2, 3, 4, 5, 6}),
        (AudienceSpec(segment_ids=[world["vip"]], list_ids=[world["B"]]), {3, 4, 5, 6, 8}),
    ):
        seen: list[str] = []
        cursor = None
        calls = 0
        while True:
            # The caller says what it took already: a contact in both lists comes once.
            page, cursor = audience_page(
                world["tenant"], spec, cursor, limit=3, taken=set(seen).intersection
            )
            calls += 1
            assert len(page) <= 3
            seen.extend(c.id for c in page)
            if cursor is None:
                break
        assert calls > 2 and len(seen) == len(set(seen))
        assert {world["ids"].index(i) for i in seen} == expected


def test_unknown_sources_and_foreign_cursors_are_refused(world):
    with pytest.raises(NotFound) as missing:
        audience_page(world["tenant"], AudienceSpec(segment_ids=["s_missing"]))
    assert missing.value.field == "segment_ids"
    with pytest.raises(NotFound):
        audience_page(
            world["tenant"], AudienceSpec(list_ids=[world["A"]], exclude_list_ids=["l_x"])
        )
    _, scan_cursor = audience_page(
        world["tenant"], AudienceSpec(segment_ids=[world["vip"]]), limit=1
    )
    assert scan_cursor is not None
    with pytest.raises(ValidationFailed):
        audience_page(world["tenant"], AudienceSpec(list_ids=[world["A"]]), scan_cursor)
    with pytest.raises(ValidationFailed):
        audience_page(world["tenant"], AudienceSpec(list_ids=[world["A"]]), "garbage")
    with pytest.raises(ValueError, match="at least one"):
        AudienceSpec(exclude_list_ids=[world["A"]])
