"""Who a campaign goes to: the union of static lists and segments, minus exclusions.

The decision is a predicate on one contact, built from the spec and the segments' trees
(compiled once). Because a contact carries its list memberships (``Contact.lists``), the
union needs no set of ids already seen: a contact is in the audience iff it is in ANY
included list or segment and in NO excluded one, which one pass over contacts decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import ConfigDict, Field, model_validator

from chalicelib.domain.contacts import Contact
from chalicelib.domain.model import Model
from chalicelib.domain.segments import Predicate, SegmentGroup, compile_tree

MAX_SOURCES = 20  # lists or segments per role in one audience


class AudienceSpec(Model):
    """The lists and segments that make up an audience, and those excluded from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_ids: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    list_ids: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    exclude_segment_ids: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    exclude_list_ids: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    within_list_ids: list[str] = Field(
        default_factory=list,
        max_length=MAX_SOURCES,
        description="Only members of one of these lists count: the lists and segments above "
        "select, these narrow (seed 003's segments within a list).",
    )

    @model_validator(mode="after")
    def _includes_something(self) -> AudienceSpec:
        if not self.segment_ids and not self.list_ids:
            raise ValueError("an audience needs at least one list or segment")
        return self

    @property
    def all_segment_ids(self) -> list[str]:
        return list(dict.fromkeys([*self.segment_ids, *self.exclude_segment_ids]))

    @property
    def all_list_ids(self) -> list[str]:
        return list(dict.fromkeys([*self.list_ids, *self.exclude_list_ids, *self.within_list_ids]))


def in_any_list(list_ids: list[str]) -> Predicate:
    wanted = frozenset(list_ids)
    return lambda contact: not wanted.isdisjoint(contact.lists)


def excluded(
    spec: AudienceSpec, trees: Mapping[str, SegmentGroup], now: datetime
) -> Predicate | None:
    """The test for contacts the spec excludes (or leaves outside ``within_list_ids``),
    or None when it excludes nothing."""
    tests = [compile_tree(trees[i], now) for i in spec.exclude_segment_ids]
    if spec.exclude_list_ids:
        tests.append(in_any_list(spec.exclude_list_ids))
    if spec.within_list_ids:
        within = in_any_list(spec.within_list_ids)
        tests.append(lambda contact: not within(contact))
    if not tests:
        return None
    return lambda contact: any(test(contact) for test in tests)


def audience_predicate(
    spec: AudienceSpec, trees: Mapping[str, SegmentGroup], now: datetime
) -> Predicate:
    """Whether a contact is in the audience; ``trees`` holds every segment the spec names."""
    tests = [compile_tree(trees[i], now) for i in spec.segment_ids]
    if spec.list_ids:
        tests.append(in_any_list(spec.list_ids))
    exclude = excluded(spec, trees, now)

    def member(contact: Contact) -> bool:
        if not any(test(contact) for test in tests):
            return False
        return exclude is None or not exclude(contact)

    return member
