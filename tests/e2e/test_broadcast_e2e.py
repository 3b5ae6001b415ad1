"""A 200-contact broadcast on the embedded stack, over HTTP, as a user would run it.

Contacts arrive through a CSV import, two overlapping lists make the audience, a few
contacts are unsubscribed or suppressed, and the campaign is scheduled a few seconds
ahead: the Scheduler emulator fires it, the pollers run the planner and the sender, and
moto's own record of sent mail (``/moto-api/data.json``) shows who got what.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.local.runner import EmbeddedStack
from tests.e2e.kit import Api, emails_from, eventually, moto_state

pytestmark = pytest.mark.e2e

FROM = "broadcast@acme.example.com"
CONTACTS = 200
UNSUBSCRIBED = range(0, 10)  # contact numbers whose row says status=unsubscribed
SUPPRESSED = range(10, 17)  # contact numbers put on the suppression list


def address(n: int) -> str:
    return f"reader{n}@example.com"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with pytest.MonkeyPatch.context() as env:
        # One local send worker; pacing to the default 14/s would make this test take
        # minutes (the pacing itself is covered by the integration tests).
        env.setenv("HERALD_SES_MAX_SEND_RATE", "1000")
        env.setenv("HERALD_SEND_WORKERS", "1")
        running = EmbeddedStack(port=0).start()
        try:
            yield running
        finally:
            running.stop()


def test_scheduled_broadcast_reaches_each_eligible_contact_once(stack: EmbeddedStack) -> None:
    # A status GET can wait behind the send (the local stack serves both in one process).
    api = Api(stack, timeout=120)
    api.verify_and_own(stack, FROM)

    rows = ["email,first_name,status"]
    rows += [
        f"{address(n)},Reader {n},{'unsubscribed' if n in UNSUBSCRIBED else 'subscribed'}"
        for n in range(CONTACTS)
    ]
    job = api.ok("POST", "/v1/imports", {"format": "csv", "data": "\n".join(rows)})
    imported = eventually(
        lambda: (j := api.ok("GET", f"/v1/imports/{job['id']}"))["status"] == "completed" and j,
        timeout=120,
    )
    assert imported and imported["created"] == CONTACTS, imported
    for n in SUPPRESSED:
        api.ok("POST", "/v1/suppressions", {"address": address(n), "reason": "complained"})
    first = api.ok("POST", "/v1/lists", {"name": "Customers"})["id"]
    second = api.ok("POST", "/v1/lists", {"name": "Newsletter"})["id"]
    api.ok("POST", f"/v1/lists/{first}/members", {"emails": [address(n) for n in range(120)]})
    api.ok(
        "POST",
        f"/v1/lists/{second}/members",
        {"emails": [address(n) for n in range(80, CONTACTS)]},  # 40 in both
    )
    sender = api.ok("POST", "/v1/senders", {"channel": "email", "from_email": FROM})
    assert sender["usable"], sender
    template = api.ok(
        "POST",
        "/v1/templates",
        {
            "name": "Launch",
            "channel": "email",
            "subject": "Hello {{ contact.first_name }}",
            "html": '<p>News. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        },
    )
    campaign = api.ok(
        "POST",
        "/v1/campaigns",
        {
            "name": "Launch",
            "channel": "email",
            "audience": {"list_ids": [first, second]},
            "template_ids": [template["id"]],
            "sender_ids": [sender["id"]],
        },
    )
    at = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    api.ok("POST", f"/v1/campaigns/{campaign['id']}/schedule", {"scheduled_at": at.isoformat()})

    detail = eventually(
        lambda: (d := api.ok("GET", f"/v1/campaigns/{campaign['id']}"))["status"] == "sent" and d,
        timeout=300,
    )

    assert detail, api.ok("GET", f"/v1/campaigns/{campaign['id']}")
    excluded = {address(n) for n in (*UNSUBSCRIBED, *SUPPRESSED)}
    eligible = {address(n) for n in range(CONTACTS)} - excluded
    delivered = emails_from(moto_state(stack), FROM)
    assert set(delivered) == eligible
    assert set(delivered.values()) == {1}
    assert detail["total_recipients"] == CONTACTS
    assert detail["sent"] == len(eligible) == 183
    assert detail["skipped"] == {"unsubscribed": 10, "suppressed": 7}
    assert datetime.fromisoformat(detail["started_at"]) >= at
