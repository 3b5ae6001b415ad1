"""Automation iterations on the real pipeline (planner, sender, SES simulator feedback,
the delivery gate, EventBridge Scheduler one-shots through the emulator): growing
iterations that never send a contact twice, and the gate pausing an automation whose
first iteration bounces too much."""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import clock
from chalicelib.domain.contacts import ContactFields, new_contact
from chalicelib.domain.deliverability import PAUSE_DELIVERY_RATE
from chalicelib.domain.imports import ChunkPlan
from chalicelib.local.poller import drain
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.store.campaigns import get_campaign
from chalicelib.store.contacts import write_import_plan
from tests.conftest import Tenant
from tests.feedback_kit import Shop
from tests.send_kit import release_delayed_messages, sent_mail

SIM = "simulator.amazonses.com"
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000", simulator_delay_seconds="0")


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(START) as frozen_clock:
        yield frozen_clock


def next_iteration(simulator: FeedbackSimulator, frozen: clock.FrozenClock) -> None:
    """Let the last iteration's feedback in, let the gate look, then let the Scheduler
    fire the next iteration once its time has come, and send it."""
    simulator.flush()
    drain()
    release_delayed_messages()  # the settle check
    drain()
    frozen.advance(timedelta(minutes=11))
    ScheduleEmulator().fire_due_schedules(clock.now())
    drain()


def contacts(tenant: Tenant, addresses: Iterable[str]) -> None:
    """Written the way a bulk import writes them (batched: fast at 1,000)."""
    plan = ChunkPlan()
    for address in addresses:
        contact = new_contact(ContactFields(email=address), START)
        plan.created[contact.id] = contact
        plan.claimed[("email", address)] = contact.id
    write_import_plan(tenant.id, plan)


def recipients() -> Counter[str]:
    return Counter(email.message_from_string(m.raw_data)["To"] for m in sent_mail())


def automation(shop: Shop, **plan: Any) -> str:
    return shop.campaign(type="automation", automation=plan)


def test_iterations_grow_and_send_each_contact_once(
    tenant: Tenant, simulator: FeedbackSimulator, frozen: clock.FrozenClock
) -> None:
    shop = Shop(tenant)
    contacts(tenant, (f"success+{n}@{SIM}" for n in range(33)))
    campaign_id = automation(
        shop, iteration_send_amount=5, max_iteration_send_amount=12, send_interval=10
    )
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/send")
    drain()
    sizes = [len(sent_mail())]
    iterations = [shop.ok("GET", f"/v1/campaigns/{campaign_id}")["iterations"]]
    for _ in range(4):
        before = len(sent_mail())
        next_iteration(simulator, frozen)
        sizes.append(len(sent_mail()) - before)
        iterations.append(shop.ok("GET", f"/v1/campaigns/{campaign_id}")["iterations"])
    assert sizes == [5, 10, 12, 6, 0]  # 5, +5, capped at 12; the rest
    campaign = get_campaign(tenant.id, campaign_id)
    assert campaign.status == "sent"
    assert campaign.iterations is not None and campaign.iterations.current_iteration == 4
    assert campaign.iterations.last and campaign.iterations.planned == 33
    assert [i["current_iteration"] for i in iterations] == [1, 2, 3, 4, 4]
    assert [i["iteration_planned"] for i in iterations] == [5, 10, 12, 6, 6]
    assert iterations[1]["delivery_rate"] == 100.0  # the first iteration's, gated
    assert set(recipients().values()) == {1} and len(recipients()) == 33
    detail = shop.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert detail["sent"] == 33 and detail["total_recipients"] == 33


def test_max_iterations_and_send_amount_stop_early(
    tenant: Tenant, simulator: FeedbackSimulator, frozen: clock.FrozenClock
) -> None:
    shop = Shop(tenant)
    contacts(tenant, (f"success+{n}@{SIM}" for n in range(20)))
    capped = automation(shop, iteration_send_amount=4, is_incremental_send=False, max_iterations=2)
    shop.ok("POST", f"/v1/campaigns/{capped}/send")
    drain()
    for _ in range(3):
        next_iteration(simulator, frozen)
    assert len(sent_mail()) == 8
    assert get_campaign(tenant.id, capped).status == "sent"

    amount = automation(shop, iteration_send_amount=4, send_amount=10)
    shop.ok("POST", f"/v1/campaigns/{amount}/send")
    drain()
    for _ in range(3):
        next_iteration(simulator, frozen)
    assert len(sent_mail()) == 8 + 10  # 4, then 6 of the 8 the second could take
    assert get_campaign(tenant.id, amount).status == "sent"


def test_the_delivery_gate_pauses_after_a_bouncing_iteration(
    tenant: Tenant, simulator: FeedbackSimulator, frozen: clock.FrozenClock
) -> None:
    shop = Shop(tenant)
    # 100 contacts, half of them bounce: the first iteration (20, in the planner's order)
    # holds 2 or more bounces but for a chance of about 3 in a million
    contacts(
        tenant, (f"bounce+{n}@{SIM}" if n % 2 == 0 else f"success+{n}@{SIM}" for n in range(100))
    )
    campaign_id = automation(shop, iteration_send_amount=20, min_delivery_rate=92)
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/send")
    drain()
    next_iteration(simulator, frozen)

    assert len(sent_mail()) == 20  # the first iteration only
    bounced = sum(1 for to in recipients() if to.startswith("bounce+"))
    campaign = get_campaign(tenant.id, campaign_id)
    assert campaign.status == "paused" and campaign.pause_reason == PAUSE_DELIVERY_RATE
    assert campaign.iterations is not None
    rate = campaign.iterations.delivery_rate
    assert rate == round((20 - bounced) * 100 / 20, 1) and rate < 92  # every outcome counted
    assert campaign.error_message == f"delivery rate {rate:g}% below minimum 92%"
    assert campaign.iterations.reason == campaign.error_message
    assert campaign.iterations.current_iteration == 1

    # A person who resumes it overrides the gate: the second iteration (40) goes out.
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/resume")
    drain()
    assert len(sent_mail()) == 60
    assert get_campaign(tenant.id, campaign_id).iterations.current_iteration == 2  # type: ignore[union-attr]
