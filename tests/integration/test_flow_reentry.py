"""Re-entry through events: each entry's steps are new steps (the visit goes on counting
from the exited enrolment), so its send is a new message; the flow's own cap still holds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain import clock
from chalicelib.store import enrolments
from tests.flow_kit import outcomes, put_flow
from tests.send_kit import Shop, drain_all, recipients_of, sent_mail

pytestmark = pytest.mark.usefixtures("fast_sends")


def order_flow(shop: Shop, **fields: object) -> str:
    return put_flow(
        shop.tenant.id,
        {
            "nodes": [
                {"id": "order", "kind": "trigger.event", "config": {"event_type": "order.placed"}},
                {
                    "id": "thanks",
                    "kind": "send",
                    "config": {
                        "channel": "email",
                        "template_ids": [shop.template_id],
                        "sender_ids": [shop.sender_id],
                    },
                },
            ],
            "edges": [{"source": "order", "target": "thanks"}],
        },
        reentry={"mode": "every", "interval": {"amount": 1, "unit": "minutes"}},
        **fields,
    ).id


def place_order(shop: Shop, address: str, frozen: clock.FrozenClock) -> None:
    shop.ok(
        "POST", "/v1/events", {"events": [{"name": "order.placed", "contact": {"email": address}}]}
    )
    drain_all()
    frozen.advance(timedelta(minutes=2))


def test_each_entry_sends_its_own_message_and_the_flows_cap_skips_the_third(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    flow_id = order_flow(shop, campaign_frequency_cap={"max_messages": 2, "per_hours": 24})
    [contact_id] = shop.contacts(1)
    address = "person0@example.com"

    for _ in range(3):
        place_order(shop, address, frozen)

    assert recipients_of(sent_mail()) == {address: 2}
    enrolment = enrolments.read(shop.tenant.id, flow_id, contact_id)
    assert enrolment is not None and enrolment.visit >= 4  # three entries, counted on
    steps = outcomes(shop.tenant.id, flow_id, contact_id)
    assert steps.count(("thanks", "performed")) == 2
    assert steps.count(("thanks", "skipped")) == 1
    stats = shop.ok("GET", f"/v1/campaigns/{flow_id}/stats")
    assert stats["enrollments"] == 3 and stats["sent"] == 2
    assert stats["nodes"]["thanks"]["skipped"] == {"campaign_frequency_cap": 1}


def test_without_a_cap_every_entry_after_the_interval_sends(
    shop: Shop, frozen: clock.FrozenClock
) -> None:
    order_flow(shop)
    shop.contacts(1)
    for _ in range(3):
        place_order(shop, "person0@example.com", frozen)
    assert recipients_of(sent_mail()) == {"person0@example.com": 3}
