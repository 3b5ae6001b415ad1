"""The node kinds of a workflow and the typed config each one carries.

A node is ``{id, kind, config, position?}``; ``kind`` picks the config model below, so a
``send`` node cannot carry a ``delay``'s fields and every error names the node's own
config field (``nodes.3.config.channel``). Kinds come in four families: triggers (how a
contact enters), actions (what is done to or for the contact), conditions (which edge
is followed) and timing (when the contact moves on), plus ``exit``.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import TAG_MAX_LENGTH
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.events import EventName
from chalicelib.domain.flows.timing import Duration, Weekday, parse_cron
from chalicelib.domain.model import Model
from chalicelib.domain.net import parse_target_url
from chalicelib.domain.segments import SegmentGroup

NodeKind = Literal[
    "trigger.event",
    "trigger.segment_entry",
    "trigger.segment_exit",
    "trigger.scheduled",
    "trigger.manual",
    "send",
    "set_field",
    "add_tag",
    "remove_tag",
    "update_score",
    "webhook",
    "notify_inbox",
    "attribute_check",
    "event_check",
    "ab_split",
    "delay",
    "wait_until",
    "wait_for_event",
    "exit",
]
NODE_KINDS: tuple[NodeKind, ...] = get_args(NodeKind)
TRIGGER_KINDS = frozenset(k for k in NODE_KINDS if k.startswith("trigger."))
CONDITION_KINDS = frozenset({"attribute_check", "event_check", "ab_split"})
WAIT_KINDS = frozenset({"delay", "wait_until", "wait_for_event"})

SendChannel = ChannelName
MAX_VARIANTS = 10
MAX_POOL = 20  # templates or senders rotated by one send node
SCORE_DELTA_LIMIT = 10**6
NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = Annotated[str, Field(min_length=1, max_length=100)]
_CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"
_SETTABLE_FIELDS = frozenset({"first_name", "last_name", "timezone", "locale", "lead_score"})


class _Config(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- triggers -------------------------------------------------------------------------
class EventTrigger(_Config):
    """Enters a contact when an event named ``event_type`` arrives for it.

    ``where`` is a segment rule tree whose fields are ``properties.<name>``; it is checked
    with the segment evaluator against the event's properties. ``dedupe_key`` names a
    property (e.g. ``order_id``) whose value enrols a contact at most once.
    """

    event_type: EventName
    where: dict[str, Any] | None = None
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("where")
    @classmethod
    def _where_is_a_rule_tree(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            where_tree(value)
        return value


def where_tree(where: dict[str, Any]) -> SegmentGroup:
    """``where`` as a segment tree over a contact whose attributes are the event's properties.

    The segment language reads ``attributes.<path>``; ``where`` speaks of
    ``properties.<path>``, so fields are renamed, and any other field is refused.
    """
    return SegmentGroup.model_validate(_renamed(where))


def _renamed(node: Any) -> Any:
    if isinstance(node, dict) and isinstance(node.get("rules"), list):
        return {**node, "rules": [_renamed(rule) for rule in node["rules"]]}
    if isinstance(node, dict) and isinstance(node.get("field"), str):
        field = node["field"]
        if not field.startswith("properties.") or field == "properties.":
            raise ValueError(f"a where rule reads properties.<name>, not '{field}'")
        return {**node, "field": "attributes." + field.removeprefix("properties.")}
    return node


class SegmentTrigger(_Config):
    """``trigger.segment_entry`` / ``trigger.segment_exit``: on a membership transition."""

    segment_id: _ID


class ScheduledTrigger(_Config):
    """Enters the campaign's audience once ``at`` an instant, or on every ``cron`` firing."""

    at: AwareDatetime | None = None
    cron: str | None = Field(default=None, max_length=100, examples=["0 9 * * 1"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA timezone") from None
        return value

    @model_validator(mode="after")
    def _at_or_cron(self) -> ScheduledTrigger:
        if (self.at is None) == (self.cron is None):
            raise ValueError("give exactly one of at and cron")
        if self.cron is not None:
            cron = parse_cron(self.cron)
            if cron.next_fire(datetime(2000, 1, 1, tzinfo=UTC), self.zone) is None:
                raise ValueError(f"cron '{self.cron}' never fires")
        return self

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class ManualTrigger(_Config):
    """Entered only through the enrolment API."""


# -- actions --------------------------------------------------------------------------
class SendAction(_Config):
    """Sends one message through the send pipeline; templates and senders rotate per contact."""

    channel: SendChannel
    template_ids: list[_ID] = Field(min_length=1, max_length=MAX_POOL)
    sender_ids: list[_ID] | None = Field(default=None, min_length=1, max_length=MAX_POOL)


class SetFieldAction(_Config):
    """Sets a profile field or ``attributes.<name>`` on the contact."""

    field: str = Field(min_length=1, max_length=200, examples=["attributes.plan"])
    value: str | int | float | bool | None

    @field_validator("field")
    @classmethod
    def _settable(cls, value: str) -> str:
        name = value.removeprefix("attributes.")
        if value.startswith("attributes.") and name and "." not in name:
            return value
        if value in _SETTABLE_FIELDS:
            return value
        allowed = ", ".join(sorted(_SETTABLE_FIELDS))
        raise ValueError(f"'{value}' cannot be set by a flow; use {allowed} or attributes.<name>")


class TagAction(_Config):
    """``add_tag`` / ``remove_tag``."""

    tag: str = Field(min_length=1, max_length=TAG_MAX_LENGTH)


class ScoreAction(_Config):
    """Adds ``delta`` (negative subtracts) to the contact's lead score."""

    delta: int = Field(ge=-SCORE_DELTA_LIMIT, le=SCORE_DELTA_LIMIT)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a delta of 0 changes nothing")
        return value


class WebhookAction(_Config):
    """POSTs to ``url`` through the SSRF-safe, Standard-Webhooks-signed client."""

    url: str = Field(min_length=1, max_length=2048)
    body: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _safe_url(cls, value: str) -> str:
        try:
            parse_target_url(value, field="url")
        except ValidationFailed as error:
            raise ValueError(error.message) from None
        return value


class NotifyInboxAction(_Config):
    """Opens an operator inbox thread about the contact, for manual follow-up."""

    title: str = Field(min_length=1, max_length=200)


# -- conditions -----------------------------------------------------------------------
class AttributeCheck(_Config):
    """Branches ``yes``/``no`` on the segment rule language, over the contact."""

    rules: SegmentGroup


class EventCheck(_Config):
    """``yes`` when the contact had ``event_type`` at least ``min_count`` times ``within``."""

    event_type: EventName
    within: Duration
    min_count: int = Field(default=1, ge=1, le=10_000)


class Variant(_Config):
    name: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")
    weight: int = Field(ge=1, le=10_000)


class AbSplit(_Config):
    """Sends each contact down one variant's edge, by weight, the same on every retry."""

    variants: list[Variant] = Field(min_length=2, max_length=MAX_VARIANTS)

    @field_validator("variants")
    @classmethod
    def _distinct_names(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must differ: {', '.join(repeated)}")
        if {"yes", "no", "event", "timeout"} & set(names):
            raise ValueError("yes, no, event and timeout are branch labels, not variant names")
        return variants


# -- timing ---------------------------------------------------------------------------
class Delay(Duration):
    """Waits ``{amount, unit}`` from the moment the contact arrives."""


class WaitUntil(_Config):
    """Waits until the next ``local_time`` (on one of ``days``), in the contact's timezone,
    else the campaign's."""

    local_time: str = Field(pattern=_CLOCK, examples=["09:00"])
    days: list[Weekday] | None = Field(default=None, min_length=1, max_length=7)


class WaitForEvent(_Config):
    """Waits for ``event_type`` (branch ``event``) for at most ``timeout`` (branch ``timeout``)."""

    event_type: EventName
    timeout: Duration


class ExitConfig(_Config):
    """Ends the enrolment (reason ``exit_node``)."""


NodeConfig = (
    EventTrigger
    | SegmentTrigger
    | ScheduledTrigger
    | ManualTrigger
    | SendAction
    | SetFieldAction
    | TagAction
    | ScoreAction
    | WebhookAction
    | NotifyInboxAction
    | AttributeCheck
    | EventCheck
    | AbSplit
    | Delay
    | WaitUntil
    | WaitForEvent
    | ExitConfig
)

CONFIG_BY_KIND: dict[NodeKind, type[NodeConfig]] = {
    "trigger.event": EventTrigger,
    "trigger.segment_entry": SegmentTrigger,
    "trigger.segment_exit": SegmentTrigger,
    "trigger.scheduled": ScheduledTrigger,
    "trigger.manual": ManualTrigger,
    "send": SendAction,
    "set_field": SetFieldAction,
    "add_tag": TagAction,
    "remove_tag": TagAction,
    "update_score": ScoreAction,
    "webhook": WebhookAction,
    "notify_inbox": NotifyInboxAction,
    "attribute_check": AttributeCheck,
    "event_check": EventCheck,
    "ab_split": AbSplit,
    "delay": Delay,
    "wait_until": WaitUntil,
    "wait_for_event": WaitForEvent,
    "exit": ExitConfig,
}


def branch_labels(kind: NodeKind, config: NodeConfig) -> tuple[str, ...]:
    """The labelled branches a node has; empty for a node with one way out."""
    if kind in ("attribute_check", "event_check"):
        return ("yes", "no")
    if isinstance(config, AbSplit):
        return tuple(v.name for v in config.variants)
    if kind == "wait_for_event":
        return ("event", "timeout")
    return ()
