"""The send pipeline under faults: each test reproduces one way a recipient could be lost,
a campaign left ``sending`` for ever, or a count lost, and shows it cannot happen.

Faults are injected only at the AWS boundary (botocore events on Herald's own clients:
an exception where AWS would raise one, or the queues drained at a chosen moment);
Herald's code runs unchanged. Each test ends with every recipient accounted for and
the campaign in a final state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.limits import LimitChanges
from chalicelib.local.poller import drain
from chalicelib.pipeline.send.batch import DEADLINE_MARGIN_SECONDS
from chalicelib.pipeline.send.compose import forget_cached_content
from chalicelib.settings import get_settings
from chalicelib.store import campaigns as campaign_store
from chalicelib.store.contacts import set_status
from chalicelib.store.ledger import list_messages
from chalicelib.store.lists import add_members, create_list, remove_members
from chalicelib.store.quotas import set_limits
from chalicelib.store.table import tenant_table
from tests.conftest import Tenant
from tests.send_kit import (
    START,
    Shop,
    assert_books_balance,
    drain_all,
    recipients_of,
    release_delayed_messages,
    sent_mail,
)

Hook = Callable[..., None]


pytestmark = pytest.mark.usefixtures("fast_sends")


@pytest.fixture
def boundary() -> Iterator[Callable[[str, str, Hook], None]]:
    """Install a botocore handler (``event`` such as ``provide-client-params.sqs.
    SendMessageBatch``) on one of Herald's clients for the test's duration."""
    installed: list[tuple[Any, str, Hook]] = []

    def install(service: str, event: str, handler: Hook) -> None:
        events = client(service).meta.events
        events.register(event, handler)
        installed.append((events, event, handler))

    yield install
    for events, event, handler in installed:
        events.unregister(event, handler)


def aws_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


def once(condition: Callable[..., bool], action: Callable[[], None]) -> Hook:
    """A handler that runs ``action`` the first time ``condition(**event)`` holds."""
    fired: list[bool] = []

    def handler(**event: Any) -> None:
        if not fired and condition(**event):
            fired.append(True)
            action()

    return handler


def raising(error: Exception) -> Callable[[], None]:
    def action() -> None:
        raise error

    return action


def sets_done(params: dict[str, Any], partition: str) -> bool:
    """An UpdateItem that marks a work unit of ``partition`` (PLAN#, BATCH#) done."""
    names = params.get("ExpressionAttributeNames", {}).values()
    return partition in str(params.get("Key", {})) and "outcome" in names


# -- defect 1: a throttled batch near its deadline ----------------------------------------
def test_a_batch_throttled_until_its_deadline_is_handed_back_not_dropped(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any
) -> None:
    shop.contacts(1)
    campaign_id = shop.campaign()
    deadline = 120 - DEADLINE_MARGIN_SECONDS

    def throttle_near_the_deadline(n: int) -> None:
        if n == 1:
            frozen.advance(timedelta(seconds=deadline - 0.01))
        if n <= 3:
            raise aws_error("TooManyRequestsException", "SendEmail")

    ses_hooks("before-call", throttle_near_the_deadline)
    shop.send(campaign_id)
    drain_all()

    assert recipients_of(sent_mail()) == {"person0@example.com": 1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 1)


def test_a_spent_daily_quota_pauses_the_campaign_until_the_window_rolls_over(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    get_settings.cache_clear()
    shop.contacts(30)
    campaign_id = shop.campaign()

    def quota_spent_once(n: int) -> None:
        if n == 11:
            raise aws_error("LimitExceededException", "SendEmail")

    hook = ses_hooks("before-call", quota_spent_once)
    shop.send(campaign_id)
    drain_all()

    paused = shop.detail(campaign_id)
    assert paused["status"] == "paused"
    assert "quota" in paused["error_message"]
    assert len(sent_mail()) == 10
    assert hook.calls == 11  # no spinning on a quota that only time clears
    frozen.advance(timedelta(minutes=30))
    drain_all()
    assert shop.detail(campaign_id)["status"] == "paused"  # the window has not rolled over

    frozen.advance(timedelta(minutes=31))
    drain_all()
    delivered = recipients_of(sent_mail())
    assert len(delivered) == 30 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["error_message"]) == ("sent", 30, None)


def test_the_tenants_daily_send_limit_cuts_the_batch_and_pauses_until_the_next_day(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    set_limits(shop.tenant.id, LimitChanges(sends_per_day=12))
    shop.contacts(30)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain_all()

    paused = shop.detail(campaign_id)
    assert paused["status"] == "paused"
    assert "sends_per_day limit (12)" in paused["error_message"]
    assert len(sent_mail()) == 12  # what fit in today's window went out, nothing more

    for day, total in ((1, 24), (2, 30)):
        frozen.advance(timedelta(hours=12 if day == 1 else 24))  # past midnight UTC
        drain_all()
        assert len(sent_mail()) == total
    delivered = recipients_of(sent_mail())
    assert len(delivered) == 30 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["error_message"]) == ("sent", 30, None)


# -- defect 2: quiet-hours children stored but never queued -------------------------------
def test_children_stored_but_not_queued_are_queued_by_the_retry(
    shop: Shop, frozen: clock.FrozenClock, boundary: Any
) -> None:
    shop.contacts(3, timezone="Europe/Berlin")  # 14:30: sends now
    shop.contacts(2, timezone="America/Los_Angeles")  # 05:30: waits until 15:00Z
    campaign_id = shop.campaign(quiet_hours={"start": "21:00", "end": "08:00"})

    def queues_children(params: dict[str, Any], **_: Any) -> bool:
        return any("not_before" in e["MessageBody"] for e in params.get("Entries", []))

    boundary(
        "sqs",
        "provide-client-params.sqs.SendMessageBatch",
        once(queues_children, raising(aws_error("InternalError", "SendMessageBatch"))),
    )
    shop.send(campaign_id)
    drain_all()
    frozen.advance(timedelta(minutes=3))  # the failed attempt's lease runs out
    drain_all()
    assert len(sent_mail()) == 3
    frozen.set(datetime(2026, 6, 1, 15, 0, tzinfo=UTC))
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 5 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 5)


# -- the group commit of ledger records: partly written, then the worker dies -----------
def test_a_round_recorded_in_part_before_a_crash_resends_only_its_unrecorded_messages(
    shop: Shop, frozen: clock.FrozenClock, boundary: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB writes half of a round's BatchWriteItem and hands the rest back as
    unprocessed; the worker dies before it writes them. The retry skips the recorded half
    and sends the other half again: those are the only duplicates, at most one round."""
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "4")
    get_settings.cache_clear()
    shop.contacts(10)
    campaign_id = shop.campaign()
    held_back: list[dict[str, Any]] = []
    ledger_writes: list[int] = []

    def writes_ledger(params: dict[str, Any]) -> bool:
        (requests,) = params["RequestItems"].values()
        return "LEDGER#" in requests[0]["PutRequest"]["Item"]["pk"]["S"]

    def half_of_the_first(params: dict[str, Any], **_: Any) -> None:
        if not writes_ledger(params):
            return
        ledger_writes.append(len(ledger_writes))
        if len(ledger_writes) == 2:  # the retry of what came back unprocessed
            raise RuntimeError("worker killed")
        if len(ledger_writes) == 1:
            (requests,) = params["RequestItems"].values()
            held_back.extend(requests[2:])
            del requests[2:]

    def unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        if held_back and len(ledger_writes) == 1:
            parsed["UnprocessedItems"] = {get_settings().table_name: list(held_back)}

    boundary("dynamodb", "provide-client-params.dynamodb.BatchWriteItem", half_of_the_first)
    boundary("dynamodb", "after-call.dynamodb.BatchWriteItem", unprocessed)
    shop.send(campaign_id)
    drain_all()
    assert shop.detail(campaign_id)["status"] == "sending"
    recorded, _ = list_messages(shop.tenant.id, campaign_id, ["main"], limit=50)
    assert len(recorded) == 2  # half of the first round; the worker died before the rest
    frozen.advance(timedelta(minutes=3))  # the dead attempt's lease runs out
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 10  # nobody lost
    again = {address for address, times in delivered.items() if times > 1}
    assert len(again) == 2  # the two sent but not recorded, and no one else
    assert not again & {m.address for m in recorded}  # the recorded half was skipped
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 10)


# -- defect 3: a failure after `finish` ---------------------------------------------------
def test_a_dynamodb_error_after_a_batch_is_done_still_completes_the_campaign(
    shop: Shop, boundary: Any
) -> None:
    shop.contacts(30)
    campaign_id = shop.campaign()
    # The completion check's first read after the batch's done marker fails.
    finished: list[bool] = []

    def after_finish(params: dict[str, Any], **_: Any) -> None:
        if sets_done(params, "BATCH#"):
            finished.append(True)

    boundary("dynamodb", "provide-client-params.dynamodb.UpdateItem", after_finish)
    boundary(
        "dynamodb",
        "provide-client-params.dynamodb.GetItem",
        once(lambda **_: bool(finished), raising(aws_error("InternalServerError", "GetItem"))),
    )
    shop.send(campaign_id)
    drain_all()

    assert finished
    assert len(recipients_of(sent_mail())) == 30
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 30)


# -- defects 4 and 7: the planner's last page ---------------------------------------------
def test_a_last_page_retried_after_planned_counts_its_skips_once_and_completes(
    shop: Shop, boundary: Any
) -> None:
    contacts = shop.contacts(40)
    for contact_id in contacts[:5]:
        set_status(shop.tenant.id, contact_id, "unsubscribed", START)
    campaign_id = shop.campaign()
    boundary(
        "dynamodb",
        "provide-client-params.dynamodb.UpdateItem",
        once(
            lambda params, **_: sets_done(params, "PLAN#"),
            raising(aws_error("InternalServerError", "UpdateItem")),
        ),
    )
    shop.send(campaign_id)
    drain_all()

    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 35)
    assert detail["skipped"] == {"unsubscribed": 5}


def test_completion_racing_the_last_pages_skips_keeps_them(shop: Shop, boundary: Any) -> None:
    contacts = shop.contacts(40)
    for contact_id in contacts[:5]:
        set_status(shop.tenant.id, contact_id, "unsubscribed", START)
    campaign_id = shop.campaign()
    # The batches run to the end between the planner's last steps.
    boundary(
        "dynamodb",
        "provide-client-params.dynamodb.UpdateItem",
        once(lambda params, **_: sets_done(params, "PLAN#"), lambda: drain(["send"]) and None),
    )
    shop.send(campaign_id)
    drain_all()

    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("sent", 35)
    assert detail["skipped"] == {"unsubscribed": 5}


# -- defect 5: list membership changing while the lists are walked ------------------------
def test_list_membership_changing_during_planning_loses_nobody_and_plans_nobody_twice(
    shop: Shop, boundary: Any
) -> None:
    contacts = shop.contacts(20)
    first = create_list(shop.tenant.id, "First")
    second = create_list(shop.tenant.id, "Second")
    add_members(shop.tenant.id, first.id, contacts[:12], [])
    add_members(shop.tenant.id, second.id, contacts[8:], [])
    joins, leaves = contacts[15], contacts[9]  # joins the first list / leaves it

    def first_list_walked(params: dict[str, Any], **_: Any) -> bool:
        return any('"page":1' in e["MessageBody"] for e in params.get("Entries", []))

    def change_membership() -> None:
        add_members(shop.tenant.id, first.id, [joins], [])
        remove_members(shop.tenant.id, first.id, [leaves], [])

    boundary(
        "sqs",
        "provide-client-params.sqs.SendMessageBatch",
        once(first_list_walked, change_membership),
    )
    campaign_id = shop.campaign({"list_ids": [first.id, second.id]})
    shop.send(campaign_id)
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 20 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["total_recipients"], detail["sent"]) == ("sent", 20, 20)
    assert detail["skipped"] == {}


# -- defect 6: the pacer and the lease ----------------------------------------------------
def test_a_slow_pacer_never_starts_a_send_the_lease_cannot_cover(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", str(4 / 7))  # one send per 7 s per worker
    get_settings.cache_clear()
    shop.contacts(20)
    campaign_id = shop.campaign()
    uncovered: list[float] = []

    def lease_covers(_: int) -> None:
        now = clock.now().timestamp()
        batches = tenant_table(shop.tenant.id).query(f"BATCH#{campaign_id}").items
        until = max(int(b["lease_until"]) for b in batches)
        if now >= until - DEADLINE_MARGIN_SECONDS:
            uncovered.append(now - until)

    ses_hooks("before-call", lease_covers)
    shop.send(campaign_id)
    drain_all()

    assert uncovered == []
    delivered = recipients_of(sent_mail())
    assert len(delivered) == 20 and set(delivered.values()) == {1}
    assert assert_books_balance(shop, campaign_id)["status"] == "sent"


# -- pause, then cancel -------------------------------------------------------------------
def test_a_paused_then_cancelled_campaign_ends_cancelled_with_every_recipient_counted(
    shop: Shop, frozen: clock.FrozenClock, ses_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_CONCURRENCY", "1")
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")  # three batches, as 250 in 100s
    get_settings.cache_clear()
    shop.contacts(25)
    campaign_id = shop.campaign()

    def pause_on_the_fifth(n: int) -> None:
        if n == 5:
            campaign_store.apply_action(shop.tenant.id, campaign_id, "pause", clock.now())
            frozen.advance(timedelta(seconds=10))

    ses_hooks("after-call", pause_on_the_fifth)
    shop.send(campaign_id)
    drain_all()
    assert shop.detail(campaign_id)["status"] == "paused"
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/cancel")
    release_delayed_messages()
    drain_all()

    delivered = recipients_of(sent_mail())
    assert len(delivered) == 5 and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"]) == ("cancelled", 5)
    assert detail["skipped"] == {"cancelled": 20}


# -- renders that fail --------------------------------------------------------------------
def test_a_poisoned_campaign_does_not_hold_up_another_tenants_clean_one(
    shop: Shop, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "10")
    monkeypatch.setenv("HERALD_RENDER_FAILURE_PAUSE_COUNT", "5")
    get_settings.cache_clear()
    clean = Shop(other_tenant, from_email="news@globex.example")
    clean.contacts(5)
    clean_id = clean.campaign()
    shop.contacts(25, attributes={"n": 2000})
    # Renders for the sample contact at save; for these contacts, 4 million loop steps:
    # each render is stopped by the sandbox's budget and fails on its own.
    poison = shop.ok(
        "POST",
        "/v1/templates",
        {
            "name": "Poison",
            "channel": "email",
            "subject": "Hi",
            "html": (
                "{% for i in range(contact.n | default(1)) %}"
                "{% for j in range(contact.n | default(1)) %}x{% endfor %}{% endfor %}"
            ),
        },
    )
    poisoned_id = shop.campaign(template_ids=[poison["id"]])
    shop.send(poisoned_id)
    clean.send(clean_id)
    drain_all()

    detail = assert_books_balance(clean, clean_id)
    assert (detail["status"], detail["sent"]) == ("sent", 5)
    poisoned = shop.detail(poisoned_id)
    assert poisoned["status"] == "paused"
    assert "could not be rendered" in poisoned["error_message"]
    # The first batch failed recipient by recipient; the campaign paused before the rest.
    failed, _ = list_messages(shop.tenant.id, poisoned_id, ["main"], status="failed", limit=50)
    assert len(failed) == 10
    assert {m.error for m in failed} == {
        "render_error: html: the template does more than 100000 steps of work per message"
    }
    assert sorted(recipients_of(sent_mail())) == [f"person{n}@example.com" for n in range(5)]


def test_a_template_that_can_only_fail_is_refused_when_the_campaign_is_sent(
    shop: Shop,
) -> None:
    shop.contacts(3)
    campaign_id = shop.campaign()
    # Saved by an older Herald, before the render budget: the store holds it as it was.
    item = tenant_table(shop.tenant.id).get("TEMPLATE", shop.template_id)
    assert item is not None
    item["content"]["html"] = "{{ ['x' * 1000] * 100000 }}"
    tenant_table(shop.tenant.id).put("TEMPLATE", shop.template_id, item)

    response = shop.tenant.call("POST", f"/v1/campaigns/{campaign_id}/send")

    assert response.status_code == 422
    error = response.json_body["error"]
    assert (error["code"], error["field"]) == ("render_error", "template_ids.0.html")
    assert shop.detail(campaign_id)["status"] == "draft"
    drain_all()
    assert sent_mail() == []


def test_render_failures_are_per_recipient_and_a_campaign_that_keeps_failing_pauses(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 25 (three of them): the first fails past the default pause count (20).
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "25")
    get_settings.cache_clear()
    shop.contacts(60, attributes={"divisor": 0})
    template = shop.ok(
        "POST",
        "/v1/templates",
        {
            "name": "Broken for these contacts",
            "channel": "email",
            "subject": "Hello",
            # Renders for a contact without the attribute, raises for every one here.
            "html": "<p>{{ 100 // contact.divisor if contact.divisor is defined else 1 }}</p>",
        },
    )
    campaign_id = shop.campaign(template_ids=[template["id"]])
    shop.send(campaign_id)
    drain_all()

    detail = shop.detail(campaign_id)
    assert detail["status"] == "paused"
    assert "could not be rendered" in detail["error_message"]
    failed, _ = list_messages(shop.tenant.id, campaign_id, ["main"], status="failed", limit=500)
    assert len(failed) == 25  # the first batch, each recipient on its own, then the pause
    assert all(str(m.error).startswith("render_error") for m in failed)
    assert detail["failed"] == 25
    assert sent_mail() == []
    # Fixed and resumed, it goes on with the recipients not yet tried.
    shop.ok("PATCH", f"/v1/templates/{template['id']}", {"html": "<p>Hi</p>"})
    forget_cached_content()
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/resume")
    release_delayed_messages()
    drain_all()
    detail = assert_books_balance(shop, campaign_id)
    assert (detail["status"], detail["sent"], detail["failed"]) == ("sent", 35, 25)
    assert detail["error_message"] is None
    assert len(recipients_of(sent_mail())) == 35
