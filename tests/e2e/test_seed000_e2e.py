"""Issue 18's "Done means" on the embedded stack, over HTTP, as a seed-000 client runs it
(``/public/v1/email/campaigns``), with real time: the pollers, the Scheduler emulator and
the SES feedback simulator do the work, moto's own record shows what was sent.

* Event-triggered campaigns for ``lead.created``: two events for one contact within
  the cooldown send one email; a contact past the cooldown but over the daily cap is
  skipped, the reason counted in the flow's stats and shown in its trace.
* An automation over 1,000 contacts, 20 % of them ``bounce@`` simulator addresses,
  pauses after its first iteration with the delivery gate's reason; one over clean
  addresses runs its iterations with growing sizes, each through the Scheduler.
* The deliverability breaker pauses a broadcast whose ``complaint@`` share crosses the
  complaint threshold.

The stack runs with test knobs (``FAST``): one minute of ``send_interval`` is a second,
the gate looks at its counters every second, and the breaker's minimum volume is 50 (its
hard-bounce limits are raised out of the way so that the 20 %-bouncing automation is
stopped by its own gate, as it would be with the default volume of 300 for a first
iteration of 200).
"""

from __future__ import annotations

import email
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.local.runner import EmbeddedStack
from tests.e2e.kit import Api, eventually, moto_state, stack_with

pytestmark = pytest.mark.e2e

SIM = "simulator.amazonses.com"
FROM = "growth@seed000.example.com"
PATH = "/public/v1/email/campaigns"
GATED = 1000  # contacts of the gated automation, one in five of them bounce@
CLEAN = 80  # clean contacts of the growing automation
COMPLAINING = 80  # complaint@ contacts, with the 800 success@ ones the breaker's audience
FAST = {
    "HERALD_SES_MAX_SEND_RATE": "1000",
    "HERALD_SEND_WORKERS": "1",
    "HERALD_SEND_BATCH_SIZE": "50",
    "HERALD_SIMULATOR_DELAY_SECONDS": "0.2",
    "HERALD_GATE_POLL_SECONDS": "1",
    "HERALD_AUTOMATION_INTERVAL_UNIT_SECONDS": "1",
    "HERALD_BREAKER_MIN_VOLUME": "50",
    "HERALD_BREAKER_HARD_BOUNCE_RATE_1H": "0.5",
    "HERALD_BREAKER_HARD_BOUNCE_RATE_24H": "0.5",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with stack_with(FAST) as running:
        yield running


def dashed(herald_id: str) -> str:
    return str(uuid.UUID(herald_id.rpartition("_")[2]))


def native_id(shown: str) -> str:
    return "cmp_" + uuid.UUID(shown).hex


def kind_of(n: int) -> str:
    return "bounce" if n % 5 == 0 else "success"


@pytest.fixture(scope="module")
def shop(stack: EmbeddedStack) -> dict[str, Any]:
    """A verified sender (its seed UUID), and every contact, imported in
    one CSV: ``attributes.kind`` says which campaign's audience each is in."""
    api = Api(stack, timeout=120)  # a GET can wait behind a send batch (one process)
    api.verify_and_own(stack, FROM)
    sender = api.ok("POST", "/v1/senders", {"channel": "email", "from_email": FROM})
    assert sender["usable"], sender
    rows = ["email,attributes.kind"]
    rows += [f"{kind_of(n)}+{n}@{SIM},{kind_of(n)}" for n in range(GATED)]
    rows += [f"success+clean{n}@{SIM},clean" for n in range(CLEAN)]
    rows += [f"complaint+{n}@{SIM},complaint" for n in range(COMPLAINING)]
    rows += ["ann@leads.example.com,lead", "cy@leads.example.com,capped"]
    job = api.ok("POST", "/v1/imports", {"format": "csv", "data": "\n".join(rows)})
    imported = eventually(
        lambda: (j := api.ok("GET", f"/v1/imports/{job['id']}"))["status"] == "completed" and j,
        timeout=120,
    )
    assert imported and imported["created"] == len(rows) - 1, imported
    found = api.ok("GET", "/v1/contacts?email=cy@leads.example.com")
    return {"api": api, "sender": dashed(sender["id"]), "cy": found["items"][0]["id"]}


def create(shop: dict[str, Any], send_data: dict[str, Any], name: str) -> dict[str, Any]:
    """A seed-000 campaign with a template of its own, whose subject is ``name``."""
    api: Api = shop["api"]
    html = '<p>Hi. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    template = api.ok(
        "POST", "/v1/templates", {"name": name, "channel": "email", "subject": name, "html": html}
    )
    body = {
        "name": name,
        "template_ids": [dashed(template["id"])],
        "mail_account_ids": [shop["sender"]],
        "events": ["lead.created"],
        "send_data": send_data,
    }
    created = api("POST", PATH, 201, json=body)
    assert created["ok"] is True
    campaign: dict[str, Any] = created["campaign"]
    return campaign


def audience(*kinds: str) -> dict[str, Any]:
    rule = {"field": "attributes.kind", "operator": "in", "value": list(kinds)}
    return {"condition": "AND", "type": "builder", "rules": [rule]}


def run_of(api: Api, campaign_id: str) -> dict[str, Any]:
    """The campaign's one send run (``campaign_sends[0]``) as the seed shows it."""
    campaign = api("GET", f"{PATH}/{campaign_id}")["campaign"]
    (run,) = campaign["campaign_sends"]
    return dict(run)


def sent_to(stack: EmbeddedStack, subject: str) -> Counter[str]:
    """Messages per address of one campaign (its template's ``subject``), from moto's record."""
    return Counter(
        str(message["To"])
        for raw in moto_state(stack).get("ses", {}).get("RawMessage", [])
        if (message := email.message_from_string(raw["raw_data"]))["Subject"] == subject
    )


def lead_created(api: Api, *addresses: str) -> None:
    events = [{"name": "lead.created", "contact": {"email": a}} for a in addresses]
    posted = api("POST", "/v1/events", 202, json={"events": events})
    assert len(posted["accepted"]) == len(addresses), posted


def test_lead_events_send_once_per_cooldown_and_the_daily_cap_skips(
    stack: EmbeddedStack, shop: dict[str, Any]
) -> None:
    """Two campaigns on ``lead.created``, one audience each (caps are per campaign): the
    seed's default cooldown of an hour for the leads, a second's cooldown and a daily cap
    of one for cy, so that cy's second event enters again and meets the cap."""
    api: Api = shop["api"]
    welcome = create(shop, {"segment_query": audience("lead")}, "Welcome leads")
    assert welcome["campaign_type"] == "event_triggered"
    assert welcome["campaign_sends"][0]["status"] == "active"
    capped_send = {"contact_cooldown_interval": 1, "contact_daily_email_cap": 1}
    capped = create(
        shop,
        {"event_triggered_send": capped_send, "segment_query": audience("capped")},
        "Capped",
    )

    def total_sent(campaign: dict[str, Any]) -> int:
        return int(run_of(api, campaign["id"])["send_progress"]["total_sent"])

    # Two lead.created for ann within the cooldown; one for cy.
    lead_created(api, "ann@leads.example.com", "ann@leads.example.com", "cy@leads.example.com")
    assert eventually(lambda: total_sent(welcome) == 1), total_sent(welcome)
    cy_enrolment = f"/v1/campaigns/{native_id(capped['id'])}/enrollments/{shop['cy']}"
    assert eventually(lambda: api("GET", cy_enrolment)["status"] == "exited")
    # cy again, past the cooldown (a second after the first run exited): entered again,
    # but over contact_daily_email_cap (1 in a rolling 24 h), so skipped with the reason.
    time.sleep(1.1)
    lead_created(api, "cy@leads.example.com")
    stats_path = f"/v1/campaigns/{native_id(capped['id'])}/stats"

    def skipped() -> Any:
        return api("GET", stats_path)["nodes"]["send"].get("skipped")

    assert eventually(lambda: skipped() == {"campaign_frequency_cap": 1}), api("GET", stats_path)
    trace = api("GET", cy_enrolment)["trace"]
    skips = [(t["node_id"], t["reason"]) for t in trace if t["outcome"] == "skipped"]
    assert skips == [("send", "campaign_frequency_cap")], trace
    assert (total_sent(welcome), total_sent(capped)) == (1, 1)
    assert sent_to(stack, "Welcome leads") == {"ann@leads.example.com": 1}
    assert sent_to(stack, "Capped") == {"cy@leads.example.com": 1}


def test_an_automation_over_bouncing_addresses_pauses_after_its_first_iteration(
    stack: EmbeddedStack, shop: dict[str, Any]
) -> None:
    api: Api = shop["api"]
    plan = {"iteration_send_amount": 200, "min_delivery_rate": 92, "send_interval": 1}
    campaign = create(
        shop,
        {
            "campaign_type": "automation",
            "automation_send": plan,
            "segment_query": audience("bounce", "success"),
        },
        "Gated",
    )
    path = f"{PATH}/{campaign['id']}"
    api("POST", f"{path}/send")

    run = eventually(lambda: (r := run_of(api, campaign["id"]))["status"] == "paused" and r)
    assert run, run_of(api, campaign["id"])
    sent = sent_to(stack, "Gated")
    assert sum(sent.values()) == 200 and set(sent.values()) == {1}  # the first iteration
    bounced = sum(1 for address in sent if address.startswith("bounce+"))
    rate = round((200 - bounced) * 100 / 200, 1)
    progress = run["send_progress"]
    # The gate judges once 95 % of the iteration's messages are resolved (issue 18), so
    # its rate may lack the last few outcomes: within 5 points of the final one.
    judged = re.fullmatch(r"delivery rate ([0-9.]+)% below minimum 92%", progress["reason"])
    assert judged, progress
    assert abs(float(judged.group(1)) - rate) <= 5
    assert rate < 92  # 20 % of the audience bounces: ~40 of the 200
    assert progress["current_iteration"] == 1

    def settled() -> Any:
        now = run_of(api, campaign["id"])["send_progress"]
        return now if (now["total_bounced"], now["delivery_rate"]) == (bounced, rate) else None

    final = eventually(settled)  # every outcome in: the live figures are the final ones
    assert final and final["total_sent"] == 200, run_of(api, campaign["id"])
    assert run["next_send_at"] is None
    detail = api("GET", f"/v1/campaigns/{native_id(campaign['id'])}")
    assert detail["pause_reason"] == "delivery_rate", detail


def test_a_clean_automation_runs_every_iteration_growing(
    stack: EmbeddedStack, shop: dict[str, Any]
) -> None:
    api: Api = shop["api"]
    plan = {
        "iteration_send_amount": 10,
        "max_iteration_send_amount": 25,
        "max_iterations": 3,
        "send_interval": 2,  # seconds here (FAST)
    }
    campaign = create(
        shop,
        {
            "campaign_type": "automation",
            "automation_send": plan,
            "segment_query": audience("clean"),
        },
        "Growing",
    )
    api("POST", f"{PATH}/{campaign['id']}/send")

    # Between iterations the run is "waiting" (settling, then counting down to the
    # Scheduler's one-shot): what it has sent by then is each iteration's running total.
    waiting: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    run = run_of(api, campaign["id"])
    while run["status"] != "sent" and time.monotonic() < deadline:
        if run["status"] == "waiting":
            waiting[run["send_progress"]["current_iteration"]] = run
        time.sleep(0.2)
        run = run_of(api, campaign["id"])

    assert run["status"] == "sent", run
    assert sorted(waiting) == [1, 2], waiting
    totals = [waiting[1], waiting[2], run]
    sent = [r["send_progress"]["total_sent"] for r in totals]
    assert [sent[0], sent[1] - sent[0], sent[2] - sent[1]] == [10, 20, 25]
    assert [r["send_progress"]["current_iteration"] for r in totals] == [1, 2, 3]
    assert run["send_progress"]["reason"] is None
    assert run["send_progress"]["delivery_rate"] == 100
    clean = sent_to(stack, "Growing")
    assert len(clean) == 55 and set(clean.values()) == {1}  # 25 of the 80 never sent


def test_the_breaker_pauses_a_broadcast_whose_complaints_cross_the_threshold(
    stack: EmbeddedStack, shop: dict[str, Any]
) -> None:
    api: Api = shop["api"]
    campaign = create(
        shop,
        {"campaign_type": "broadcast", "segment_query": audience("success", "complaint")},
        "Complained about",
    )
    api("POST", f"{PATH}/{campaign['id']}/send")

    run = eventually(lambda: (r := run_of(api, campaign["id"]))["status"] == "paused" and r)
    assert run, run_of(api, campaign["id"])
    detail = api("GET", f"/v1/campaigns/{native_id(campaign['id'])}")
    assert detail["pause_reason"] == "complaint_rate", detail
    reason = run["send_progress"]["reason"]
    assert reason.startswith("complaint rate ") and "above the limit of 1%" in reason, reason
    audience_size = 800 + COMPLAINING
    total = run["send_progress"]["total_sent"]
    assert 50 <= total < audience_size  # paused once the window held 50 outcomes
    time.sleep(1)  # a batch under way when it paused ends; nothing more starts
    assert run_of(api, campaign["id"])["status"] == "paused"
