"""Planning in parallel chains (docs/engine.md, "Planning chains"): each chain walks its own
part of the audience, the campaign is planned only when the last chain is, and nobody is
planned twice or lost, whatever is lost, delivered twice or cancelled on the way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain, invoke, poll_once, sqs_event
from chalicelib.pipeline.planner import CHAINS_DONE
from chalicelib.pipeline.queues import queue_url
from chalicelib.pipeline.watchdog import watch_running_campaigns
from chalicelib.store.contacts import (
    contact_part,
    contact_shard,
    id_range,
    scan_contacts,
    set_status,
)
from chalicelib.store.counters import read_counts
from chalicelib.store.ledger import unit_outcomes
from chalicelib.store.table import SortRange
from tests.send_kit import (
    START,
    Shop,
    assert_books_balance,
    drain_all,
    drain_delivering_twice,
    recipients_of,
    sent_mail,
)

pytestmark = pytest.mark.usefixtures("fast_sends")


@pytest.fixture
def four_chains(herald_env: Callable[..., None]) -> None:
    herald_env(plan_chains="4")


def _within(ids: SortRange | None, contact_id: str) -> bool:
    if ids is None:
        return True
    return (ids.first is None or ids.first <= contact_id) and (
        ids.end is None or contact_id < ids.end
    )


@pytest.mark.parametrize("parts", [1, 2, 4, 8, 16, 32, 48])
def test_the_parts_of_a_split_hold_every_contact_exactly_once(parts: int) -> None:
    ids = [f"c_{n * 0x9E3779B1 % 2**128:032x}" for n in range(2000)] + ["c_", "c_8000", "odd"]
    for contact_id in ids:
        holders = [
            part
            for part in range(parts)
            if contact_shard(contact_id) in contact_part(part, parts).shards
            and _within(contact_part(part, parts).ids, contact_id)
        ]
        assert len(holders) == 1, (contact_id, holders)
        in_ranges = [p for p in range(parts) if _within(id_range(p, parts), contact_id)]
        assert len(in_ranges) == 1, (contact_id, in_ranges)


def _assert_each_eligible_once(shop: Shop, campaign_id: str, eligible: set[str]) -> None:
    delivered = recipients_of(sent_mail())
    assert set(delivered) == eligible and set(delivered.values()) == {1}
    detail = assert_books_balance(shop, campaign_id)
    assert detail["status"] == "sent" and detail["sent"] == len(eligible)


def _addresses(numbers: range) -> set[str]:
    """The addresses ``Shop.contacts`` gave its contacts number ``numbers``."""
    return {f"person{n}@example.com" for n in numbers}


@pytest.mark.usefixtures("four_chains")
def test_chains_over_two_lists_plan_a_contact_in_both_once(shop: Shop) -> None:
    ids = shop.contacts(40)
    first = shop.ok("POST", "/v1/lists", {"name": "first"})["id"]
    second = shop.ok("POST", "/v1/lists", {"name": "second"})["id"]
    shop.ok("POST", f"/v1/lists/{first}/members", {"contact_ids": ids[:25]})
    shop.ok("POST", f"/v1/lists/{second}/members", {"contact_ids": ids[15:]})
    campaign_id = shop.campaign({"list_ids": [first, second]})
    shop.send(campaign_id)
    drain_all()

    _assert_each_eligible_once(shop, campaign_id, _addresses(range(40)))
    assert shop.detail(campaign_id)["total_recipients"] == 40


@pytest.mark.usefixtures("four_chains")
def test_four_chains_each_send_once_and_complete_after_the_last(shop: Shop) -> None:
    ids = shop.contacts(100)
    for contact_id in ids[:8]:
        set_status(shop.tenant.id, contact_id, "unsubscribed", START)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    poll_once("control")  # the start: four first pages queued
    sqs = client("sqs")
    firsts = sqs.receive_message(QueueUrl=queue_url("control"), MaxNumberOfMessages=10)["Messages"]
    assert len(firsts) == 4

    invoke("control", sqs_event("control", firsts[:3]))
    drain()  # three chains planned, and every batch they queued sent
    detail = shop.detail(campaign_id)
    assert detail["status"] == "calculating" and 0 < detail["sent"] < 92

    invoke("control", sqs_event("control", firsts[3:]))
    drain()
    _assert_each_eligible_once(shop, campaign_id, _addresses(range(8, 100)))
    detail = shop.detail(campaign_id)
    assert (detail["total_recipients"], detail["skipped"]) == (100, {"unsubscribed": 8})
    pages = {str(p["unit_id"]) for p in unit_outcomes(shop.tenant.id, campaign_id, "PLAN")}
    assert pages == {"000.000000", "001.000000", "002.000000", "003.000000"}
    assert read_counts(shop.tenant.id, campaign_id)[CHAINS_DONE] == 4


def test_thirty_two_parts_of_the_contacts_are_read_once_each(shop: Shop) -> None:
    ids = set(shop.contacts(200))
    seen: list[str] = []
    for part in range(32):
        cursor = None
        while True:
            page, cursor = scan_contacts(shop.tenant.id, cursor, 7, contact_part(part, 32))
            seen.extend(contact.id for contact in page)
            if cursor is None:
                break
    assert len(seen) == len(ids) and set(seen) == ids


@pytest.mark.usefixtures("four_chains")
def test_a_chain_page_delivered_twice_plans_its_part_once(shop: Shop) -> None:
    shop.contacts(40)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    drain_delivering_twice()

    _assert_each_eligible_once(shop, campaign_id, _addresses(range(40)))
    assert shop.detail(campaign_id)["total_recipients"] == 40


@pytest.mark.usefixtures("four_chains")
def test_lost_chain_pages_are_redriven_by_the_watchdog(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    shop.contacts(40)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    poll_once("control")  # the start
    sqs = client("sqs")
    first, *_ = sqs.receive_message(QueueUrl=queue_url("control"), MaxNumberOfMessages=1)[
        "Messages"
    ]
    invoke("control", sqs_event("control", [first]))
    sqs.purge_queue(QueueUrl=queue_url("control"))  # three chains' first pages lost
    drain()
    assert shop.detail(campaign_id)["status"] == "calculating"

    # The tick's watchdog job alone (the whole tick also sweeps every flow timer shard).
    watch_running_campaigns(frozen.advance(timedelta(minutes=1)))
    watch_running_campaigns(frozen.advance(timedelta(minutes=10)))
    drain_all()

    _assert_each_eligible_once(shop, campaign_id, _addresses(range(40)))


@pytest.mark.usefixtures("four_chains")
def test_a_cancel_mid_plan_stops_every_chain(shop: Shop) -> None:
    shop.contacts(40)
    campaign_id = shop.campaign()
    shop.send(campaign_id)
    poll_once("control")  # the start
    sqs = client("sqs")
    first, *_ = sqs.receive_message(QueueUrl=queue_url("control"), MaxNumberOfMessages=1)[
        "Messages"
    ]
    invoke("control", sqs_event("control", [first]))
    refused = shop.tenant.call("POST", f"/v1/campaigns/{campaign_id}/pause")
    assert refused.status_code == 409  # planning cannot pause; it can be cancelled
    shop.ok("POST", f"/v1/campaigns/{campaign_id}/cancel")
    drain_all()

    assert sent_mail() == []
    planned: list[dict[str, Any]] = [
        p for p in unit_outcomes(shop.tenant.id, campaign_id, "PLAN") if p.get("planned")
    ]
    assert len(planned) == 1  # the other three chains stopped without reading a page
    detail = shop.detail(campaign_id)
    assert detail["status"] == "cancelled"
    assert detail["skipped"]["cancelled"] == len(planned[0]["planned"]["batches"][0])
