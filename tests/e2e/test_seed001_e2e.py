"""Issue 17's "Done means" on the embedded stack (``make run``'s), over real HTTP, with
real time: a seed-001 client makes a three-step sequence (``delay_minutes`` 0, 1, 1, a
minute scaled to a few seconds) with a pool of two senders, enrols four contacts and
activates it. The flow worker sends each step from the contact's one sender of the pool,
later steps answer the earlier message's Message-ID as SES assigned it, the SES simulator
answers ``reply@`` with a reply through SES inbound (inbound topic → replies queue → reply
worker) that stops its contact, and ``ooto@``'s out-of-office does not. Then the admin
CLI's ``inject-reply``, run as a ``make run`` user runs it, counts a second reply.

The closed window deferring the steps to its opening needs a frozen clock: that stays in
tests/integration/test_seed001_flow.py."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest

from chalicelib.domain import ids
from chalicelib.domain.mail_threads import header_message_id
from chalicelib.local import PROJECT_ROOT
from chalicelib.local.runner import EmbeddedStack
from chalicelib.settings import get_settings
from tests.e2e.kit import Api, eventually, moto_state, stack_with

pytestmark = pytest.mark.e2e

SIM = "simulator.amazonses.com"
POOL = ("ana@outreach.example.com", "ben@outreach.example.com")
REPLIER, AWAY = f"reply@{SIM}", f"ooto@{SIM}"
OTHERS = ("lead@example.org", f"success@{SIM}")
SUBJECT = "Quick question"
PATH = "/email/campaigns/"
# One delay_minutes is DELAY_UNIT seconds: long enough for a reply to step 1 to travel
# simulator → SNS → replies queue → reply worker before step 2 is due, short enough to
# keep the module fast (the reply took ≈0.5 s on a loaded 2-core machine).
DELAY_UNIT = 3
FAST = {
    "HERALD_SEQUENCE_DELAY_UNIT_SECONDS": str(DELAY_UNIT),
    "HERALD_SIMULATOR_DELAY_SECONDS": "0.2",
    "HERALD_SES_MAX_SEND_RATE": "1000",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with stack_with(FAST) as running:
        yield running


def mail_to(stack: EmbeddedStack) -> dict[str, list[tuple[str, Message]]]:
    """Every address's mail as moto's SES accepted it, in order sent, each with the
    MessageId SES returned for it."""
    found: dict[str, list[tuple[str, Message]]] = {}
    for sent in moto_state(stack).get("ses", {}).get("RawMessage", []):
        mail = email.message_from_string(sent["raw_data"])
        found.setdefault(str(mail["To"]), []).append((sent["id"], mail))
    return found


def test_a_sequence_threads_its_steps_and_stops_on_a_reply(stack: EmbeddedStack) -> None:
    api = Api(stack)
    pool = []
    for address in POOL:
        api.verify_and_own(stack, address)
        made = api("POST", "/v1/senders", 201, json={"channel": "email", "from_email": address})
        pool.append(ids.dashed(made["id"]))
    campaign = api(
        "POST",
        PATH,
        201,
        json={
            "name": "Founder outreach",
            "company": ids.dashed(stack.tenant_id),
            "sender_identity_ids": pool,
            "timezone": "Europe/Berlin",
            "stop_on_reply": True,
        },
    )
    item = f"{PATH}{campaign['id']}/"
    steps = [
        api("POST", f"{item}steps/", 201, json=step)
        for step in (
            {"subject": SUBJECT, "body_text": "Hi {{ contact.first_name }}", "delay_minutes": 0},
            {"subject": "", "body_text": "Any thoughts?", "delay_minutes": 1},
            {"subject": "", "body_text": "Last try", "delay_minutes": 1},
        )
    ]
    assert [s["step_order"] for s in steps] == [1, 2, 3]
    everyone = (REPLIER, AWAY, *OTHERS)
    contacts = [api("POST", "/v1/contacts", 201, json={"email": a})["id"] for a in everyone]
    enrolled = api("POST", f"{item}enroll/", json={"contact_ids": contacts})
    assert [r["outcome"] for r in enrolled["results"]] == ["enrolled"] * 4
    assert api("PATCH", item, json={"status": "active"})["status"] == "active"

    def shown() -> dict[str, Any]:
        return dict(api("GET", item))

    def finished() -> dict[str, Any] | None:
        now = shown()
        return now if (now["sent_count"], now["replies"]) == ("10", "1") else None

    done = eventually(finished, timeout=60)
    assert done, shown()
    assert [s["sent_count"] for s in done["steps"]] == ["4", "3", "3"]
    assert [s["replies"] for s in done["steps"]] == ["1", "0", "0"]

    settings = get_settings()
    mail = mail_to(stack)
    assert {a: len(mail.get(a, [])) for a in everyone} == {
        REPLIER: 1,  # the reply to step 1 stopped it
        AWAY: 3,  # an out-of-office is not a reply
        **dict.fromkeys(OTHERS, 3),
    }
    for address in (AWAY, *OTHERS):
        (first_id, one), (second_id, two), (_, three) = mail[address]
        assert one["From"] == two["From"] == three["From"]  # one sender of the pool
        assert one["From"] in POOL
        assert one["Subject"] == SUBJECT and one["In-Reply-To"] is None
        assert two["Subject"] == three["Subject"] == f"Re: {SUBJECT}"
        quoted = [header_message_id(i, settings.region) for i in (first_id, second_id)]
        assert two["In-Reply-To"] == two["References"] == quoted[0]
        assert three["In-Reply-To"] == quoted[1]
        assert three["References"] == " ".join(quoted)

    native = ids.native(campaign["id"], "cmp_")
    exits = {
        address: api("GET", f"/v1/campaigns/{native}/enrollments/{contact}")["exit_reason"]
        for address, contact in zip(everyone, contacts, strict=True)
    }
    assert exits == {REPLIER: "replied", AWAY: "completed", **dict.fromkeys(OTHERS, "completed")}

    # What came back for each step-1 message: the ooto mailbox's answer did arrive (and
    # was recorded as automatic), the reply was counted, the others had none.
    messages = {(m["address"], m["step"]): m for m in messages_of(api, native)}
    answers = {
        address: (
            messages[address, steps[0]["id"]]["replied_at"] is not None,
            messages[address, steps[0]["id"]]["auto_replied_at"] is not None,
        )
        for address in everyone
    }
    assert answers == {
        REPLIER: (True, False),
        AWAY: (False, True),
        **dict.fromkeys(OTHERS, (False, False)),
    }

    # The CLI a `make run` user injects a reply with, from another shell (no AWS
    # credentials there): a reply to the last step of a finished contact still counts.
    last = messages[OTHERS[0], steps[2]["id"]]["message_id"]
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "AWS_"))}
    shell["HERALD_AWS_ENDPOINT_URL"] = stack.aws_endpoint
    command = ["inject-reply", stack.tenant_id, native, last]
    injected = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *command],
        env=shell,
        check=False,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert injected.returncode == 0, injected.stderr
    assert eventually(lambda: shown()["replies"] == "2"), shown()
    replied = api("GET", f"/v1/campaigns/{native}/messages/{last}")
    assert replied["replied_at"] is not None


def messages_of(api: Api, campaign_id: str) -> list[dict[str, Any]]:
    """Every message of the campaign (a page may be short: follow next_cursor to null)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = api("GET", f"/v1/campaigns/{campaign_id}/messages", params={"cursor": cursor})
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found
