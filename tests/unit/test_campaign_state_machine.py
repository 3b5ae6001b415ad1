"""The campaign state machine and the campaign's input rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import TypeAdapter, ValidationError

from chalicelib.domain.campaigns import (
    ACTION_TARGETS,
    ACTION_TARGETS_BY_FAMILY,
    ACTIONS,
    FINAL_STATUSES,
    FLOW_TRANSITIONS,
    START_LEEWAY,
    STATUSES,
    TRANSITIONS,
    Audience,
    Campaign,
    CampaignFields,
    CampaignFilter,
    CampaignLocked,
    NewCampaign,
    NotDue,
    ScheduledTime,
    advance,
    edit,
    ensure_deletable,
    is_campaign_id,
    new_campaign,
    new_campaign_id,
    resolve_scheduled_at,
    sort_key,
    transition,
)
from chalicelib.domain.errors import InvalidTransition, ValidationFailed

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# The table, written out once more by hand: the test fails if the code's table drifts.
EXPECTED = {
    ("draft", "schedule"): "scheduled",
    ("draft", "send_now"): "scheduled",
    ("draft", "cancel"): "cancelled",
    ("scheduled", "reschedule"): "scheduled",
    ("scheduled", "unschedule"): "draft",
    ("scheduled", "send_now"): "scheduled",
    ("scheduled", "start"): "calculating",
    ("scheduled", "cancel"): "cancelled",
    ("calculating", "planned"): "sending",
    ("calculating", "fail"): "failed",
    ("calculating", "cancel"): "cancelled",
    ("sending", "iterate"): "calculating",  # automations only (below)
    ("sending", "pause"): "paused",
    ("sending", "complete"): "sent",
    ("sending", "fail"): "failed",
    ("sending", "cancel"): "cancelled",
    ("paused", "resume"): "sending",
    ("paused", "complete"): "sent",
    ("paused", "fail"): "failed",
    ("paused", "cancel"): "cancelled",
}
# The flow family (workflows, sequences, event-triggered sends): docs/flows.md.
EXPECTED_FLOW = {
    ("draft", "activate"): "active",
    ("draft", "cancel"): "cancelled",
    ("active", "pause"): "paused",
    ("active", "complete"): "completed",
    ("active", "cancel"): "cancelled",
    ("paused", "resume"): "active",
    ("paused", "complete"): "completed",
    ("paused", "cancel"): "cancelled",
}


def ready_draft(**changes) -> Campaign:
    fields = NewCampaign(
        name="Autumn sale",
        channel="email",
        audience=Audience(all_contacts=True),
        template_ids=["t1"],
        sender_ids=["s1"],
    )
    campaign = new_campaign(new_campaign_id(NOW), 1, fields, NOW)
    return campaign.model_copy(update=changes)


def in_status(status: str) -> Campaign:
    scheduled_at = None if status == "draft" else NOW - timedelta(minutes=1)
    return ready_draft(status=status, scheduled_at=scheduled_at)


def fields_for(action: str) -> dict:
    if action in ("schedule", "reschedule"):
        return {"scheduled_at": NOW + timedelta(hours=1)}
    return {}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_state_and_action_follows_the_table(status, action):
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition) as raised:
            transition(status, action)
        assert raised.value.current == status
        assert raised.value.requested == ACTION_TARGETS.get(
            action, ACTION_TARGETS_BY_FAMILY["flow"].get(action)
        )
        assert f"'{status}'" in raised.value.message
        with pytest.raises(InvalidTransition):
            advance(in_status(status), action, NOW, **fields_for(action))
    else:
        assert transition(status, action) == expected
        campaign = in_status(status)
        if action == "iterate":
            campaign = campaign.model_copy(update={"type": "automation"})
        assert advance(campaign, action, NOW, **fields_for(action)).status == expected


def test_only_an_automation_iterates():
    with pytest.raises(InvalidTransition):
        advance(in_status("sending"), "iterate", NOW)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_flow_state_and_action_follows_the_flow_table(status, action):
    expected = EXPECTED_FLOW.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition) as raised:
            transition(status, action, "flow")
        assert raised.value.current == status
    else:
        assert transition(status, action, "flow") == expected
        flow = in_status(status).model_copy(update={"type": "workflow"})
        assert advance(flow, action, NOW).status == expected


def test_the_flow_table_is_exactly_the_documented_one():
    allowed = {(s, a): t for s, moves in FLOW_TRANSITIONS.items() for a, t in moves.items()}
    assert allowed == EXPECTED_FLOW


def test_the_table_is_exactly_the_documented_one():
    allowed = {(s, a): t for s, moves in TRANSITIONS.items() for a, t in moves.items()}
    assert allowed == EXPECTED
    assert all(not TRANSITIONS[s] for s in FINAL_STATUSES if s in TRANSITIONS)
    # Every action leads to the same status wherever it is allowed.
    for (_, action), target in EXPECTED.items():
        assert ACTION_TARGETS[action] == target


def test_cancel_is_allowed_from_every_state_that_is_not_final():
    for status in TRANSITIONS:
        if status in FINAL_STATUSES:
            with pytest.raises(InvalidTransition):
                transition(status, "cancel")
        else:
            assert transition(status, "cancel") == "cancelled"


def test_actions_stamp_their_times():
    started = advance(in_status("scheduled"), "start", NOW)
    assert started.started_at == NOW and started.updated_at == NOW
    assert advance(in_status("sending"), "complete", NOW).completed_at == NOW
    assert advance(in_status("calculating"), "fail", NOW, error_message="x").completed_at == NOW
    assert advance(in_status("paused"), "cancel", NOW).cancelled_at == NOW
    assert advance(in_status("scheduled"), "unschedule", NOW).scheduled_at is None
    sent_now = advance(ready_draft(), "send_now", NOW.replace(microsecond=123))
    assert sent_now.status == "scheduled" and sent_now.scheduled_at == NOW


def test_a_start_well_before_the_scheduled_time_is_refused_as_not_due():
    campaign = ready_draft(status="scheduled", scheduled_at=NOW + timedelta(hours=1))
    with pytest.raises(NotDue) as raised:
        advance(campaign, "start", NOW)
    assert isinstance(raised.value, InvalidTransition)
    assert raised.value.field == "scheduled_at"
    # Clock skew: a start a little early is accepted.
    assert advance(campaign, "start", campaign.scheduled_at - START_LEEWAY).status == "calculating"


def test_scheduling_needs_a_future_time_and_a_ready_campaign():
    with pytest.raises(ValidationFailed) as past:
        advance(ready_draft(), "schedule", NOW, scheduled_at=NOW - timedelta(seconds=1))
    assert past.value.field == "scheduled_at"
    for missing, field in (
        ({"audience": Audience()}, "audience"),
        (
            {"steps": [ready_draft().main_step.model_copy(update={"template_ids": []})]},
            "template_ids",
        ),
        ({"steps": [ready_draft().main_step.model_copy(update={"sender_ids": []})]}, "sender_ids"),
    ):
        with pytest.raises(ValidationFailed) as raised:
            advance(ready_draft(**missing), "send_now", NOW)
        assert raised.value.field == field


def test_only_progress_fields_ride_along_with_an_action():
    planned = advance(in_status("calculating"), "planned", NOW, total_recipients=10)
    assert planned.total_recipients == 10
    with pytest.raises(ValueError):
        advance(in_status("calculating"), "planned", NOW, name="renamed")


def test_edit_only_in_draft_or_scheduled_and_keeps_a_scheduled_campaign_ready():
    renamed = edit(ready_draft(), CampaignFields(name="Winter sale"), NOW + timedelta(seconds=1))
    assert renamed.name == "Winter sale" and renamed.updated_at > NOW
    for status in ("calculating", "sending", "paused", "sent", "failed", "cancelled"):
        with pytest.raises(CampaignLocked) as raised:
            edit(in_status(status), CampaignFields(name="x"), NOW)
        assert raised.value.current == status and f"'{status}'" in raised.value.message
    with pytest.raises(ValidationFailed) as emptied:
        edit(in_status("scheduled"), CampaignFields(template_ids=[]), NOW)
    assert emptied.value.field == "template_ids"
    unchanged = ready_draft()
    assert edit(unchanged, CampaignFields(name=unchanged.name), NOW) is unchanged


def test_channel_change_moves_the_step_along():
    edited = edit(ready_draft(), CampaignFields(channel="sms"), NOW)
    assert edited.channel == "sms" and edited.main_step.channel == "sms"
    assert edited.template_ids == ["t1"]


def test_delete_only_when_nothing_can_be_sent_any_more():
    for status in STATUSES:
        if status in ("draft", "sent", "completed", "failed", "cancelled"):
            ensure_deletable(in_status(status))
        else:
            with pytest.raises(CampaignLocked):
                ensure_deletable(in_status(status))


# -- input rules -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "timezone", "expected"),
    [
        ("2026-12-01T10:00:00Z", "UTC", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00+01:00", "Asia/Tokyo", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T10:00:00", "Europe/Berlin", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-07-01 10:00:00.750", "Europe/Berlin", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        (1796119200, "Asia/Tokyo", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("1796119200", "UTC", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        (1796119200.9, "UTC", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ],
)
def test_scheduled_time_is_iso_8601_or_unix_seconds_stored_utc(given, timezone, expected):
    parsed = TypeAdapter(ScheduledTime).validate_python(given)
    assert resolve_scheduled_at(parsed, timezone) == expected


@pytest.mark.parametrize("given", [True, "tomorrow", "2026-13-01T00:00:00", 10**20, None])
def test_scheduled_time_refuses_what_is_not_a_time(given):
    with pytest.raises(ValidationError):
        TypeAdapter(ScheduledTime).validate_python(given)


def test_a_wall_time_in_a_daylight_saving_gap_is_refused():
    with pytest.raises(ValidationFailed) as raised:
        resolve_scheduled_at(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")
    assert raised.value.field == "scheduled_at"
    # The repeated hour of the autumn change is its first occurrence (summer time).
    assert resolve_scheduled_at(datetime(2026, 10, 25, 2, 30), "Europe/Berlin") == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "21:00", "end": "21:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "21:00"}}, "quiet_hours.end"),
        ({"frequency_cap": {"max_messages": 0}}, "frequency_cap.max_messages"),
        ({"frequency_cap": {"max_messages": 2, "per_hours": 12}}, "frequency_cap.per_hours"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"type": "sequence"}, "type"),
        ({"channel": "fax"}, "channel"),
        ({"template_ids": ["ok", "no spaces"]}, "template_ids.1"),
        ({"template_ids": [f"t{i}" for i in range(21)]}, "template_ids"),
        ({"audience": {"all_contacts": True, "list_ids": ["l1"]}}, "audience"),
        ({"audience": {"everyone": True}}, "audience.everyone"),
        ({"from_name": "Evil\r\nBcc: x@example.com"}, "from_name"),
        ({"reply_to": "not-an-email"}, "reply_to"),
        ({"name": None}, "name"),
        ({"track_opens": None}, "track_opens"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(body, field):
    with pytest.raises(ValidationError) as raised:
        CampaignFields.model_validate(body)
    location = ".".join(str(p) for p in raised.value.errors()[0]["loc"])
    assert location == field


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "https://", "https://user:pw@example.com/", "http://a b.com/"]
)
def test_event_callback_must_be_an_http_url_with_a_host(url):
    with pytest.raises(ValidationFailed) as raised:
        CampaignFields.model_validate({"event_callback": url})
    assert raised.value.field == "event_callback"


def test_valid_fields_are_kept_and_nullable_ones_clear():
    fields = CampaignFields.model_validate(
        {
            "event_callback": "https://hooks.example.com/herald?token=abc",
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "frequency_cap": {"max_messages": 3},
            "template_ids": ["t1", "t2", "t1"],
            "from_name": None,
        }
    )
    assert fields.template_ids == ["t1", "t2"]
    assert fields.frequency_cap is not None and fields.frequency_cap.per_hours == 24
    assert fields.quiet_hours is not None and fields.quiet_hours.start_time.hour == 21
    assert "from_name" in fields.model_fields_set and fields.from_name is None


def test_ids_sort_by_creation_time():
    earlier, later = new_campaign_id(NOW), new_campaign_id(NOW + timedelta(milliseconds=1))
    assert is_campaign_id(earlier) and is_campaign_id(later)
    assert earlier < later and len(earlier) <= 64
    assert not is_campaign_id("cmp_../../etc")


def test_sort_keys_put_missing_values_last_and_status_in_life_cycle_order():
    unscheduled = ready_draft()
    scheduled = ready_draft(status="scheduled", scheduled_at=NOW)
    keys = sorted([unscheduled, scheduled], key=lambda c: sort_key(c, "scheduled_at"))
    assert keys == [scheduled, unscheduled]
    assert sort_key(scheduled, "status") > sort_key(unscheduled, "status")
    assert sort_key(ready_draft(name="b"), "name") > sort_key(ready_draft(name="A"), "-name")


def test_filter_matches_name_part_status_channel_and_edition():
    campaign = ready_draft(name="Black Friday", edition_id="ed1")
    assert CampaignFilter(search="friday").matches(campaign)
    assert not CampaignFilter(search="monday").matches(campaign)
    assert CampaignFilter(statuses=frozenset({"draft", "sent"})).matches(campaign)
    assert not CampaignFilter(channel="sms").matches(campaign)
    assert not CampaignFilter(edition_id="ed2").matches(campaign)
    assert not CampaignFilter().active


# -- the state machine as a whole ------------------------------------------------------
class CampaignLifeCycle(RuleBasedStateMachine):
    """Random sequences of actions: the campaign always ends where the table says."""

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        # an automation: the one type that takes every action of the table (iterate too)
        self.campaign = ready_draft(type="automation")
        self.expected = "draft"
        self.started = False

    @rule(action=st.sampled_from(ACTIONS), minutes=st.integers(min_value=0, max_value=120))
    def act(self, action, minutes):
        self.now += timedelta(minutes=minutes)
        schedules = action in ("schedule", "reschedule")
        fields = {"scheduled_at": self.now + timedelta(minutes=5)} if schedules else {}
        target = EXPECTED.get((self.expected, action))
        due = self.campaign.scheduled_at is not None and self.campaign.scheduled_at <= self.now
        if action == "start" and target is not None and not due:
            with pytest.raises(NotDue):
                advance(self.campaign, action, self.now, **fields)
            return
        if target is None:
            with pytest.raises(InvalidTransition) as raised:
                advance(self.campaign, action, self.now, **fields)
            assert raised.value.current == self.expected
            return
        self.campaign = advance(self.campaign, action, self.now, **fields)
        self.expected = target
        self.started = self.started or action == "start"

    @precondition(lambda self: self.expected == "scheduled")
    @rule()
    def time_passes_until_due(self):
        assert self.campaign.scheduled_at is not None
        self.now = max(self.now, self.campaign.scheduled_at)

    @invariant()
    def status_is_the_expected_one(self):
        assert self.campaign.status == self.expected
        if self.expected == "draft":
            assert self.campaign.scheduled_at is None
        if self.expected == "scheduled":
            assert self.campaign.scheduled_at is not None
        assert (self.campaign.started_at is not None) == self.started


TestCampaignLifeCycle = CampaignLifeCycle.TestCase
TestCampaignLifeCycle.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@given(st.sampled_from(STATUSES), st.sampled_from(ACTIONS))
def test_invalid_transition_always_names_the_current_state(status, action):
    if (status, action) in EXPECTED:
        return
    with pytest.raises(InvalidTransition) as raised:
        transition(status, action)
    assert raised.value.message.startswith(f"cannot move from '{status}'")
