"""Issue 17's "Done means" in process against moto: a seed-001 client makes a three-step
sequence over HTTP, enrols four contacts and activates it; the real flow worker sends
the steps (the frozen clock moved past each step's minute) from each
contact's one sender of the pool, later steps answer the earlier SES Message-ID, a reply
through SES inbound stops its contact and an out-of-office answer does not; a closed
window defers the steps to its opening."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest

import app as herald
from chalicelib.aws import client
from chalicelib.domain import clock, ids
from chalicelib.domain.replies import reply_address, reply_token_for
from chalicelib.local.poller import drain
from chalicelib.store import enrolments, ledger
from chalicelib.store.ledger import MessageRecord
from tests.aws_events import inbound_reply
from tests.conftest import Tenant, body_of
from tests.integration.test_replies import REPLY_DOMAIN, receive
from tests.integration.test_seed001_api import PATH, add_step, create, sender
from tests.send_kit import drain_all, sent_mail

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin: the window is open
SUBJECT = "Quick question"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


@pytest.fixture(autouse=True)
def settings(herald_env, fast_sends) -> None:
    # Real minutes (the default unit): the frozen clock moves them, and a wake's SQS delay
    # (real time in moto) then outlasts any drain round even on a loaded machine. With
    # 1-second minutes a drain round slower than a second received each early wake again,
    # which waited again, and drain() never found the queues empty.
    herald_env(reply_domain=REPLY_DOMAIN)


def mail_to(address: str) -> list[Message]:
    """The mail moto's SES accepted for ``address``, in order sent."""
    parsed = [email.message_from_string(m.raw_data) for m in sent_mail()]
    return [m for m in parsed if m["To"] == address]


def records_of(tenant: Tenant, campaign_id: str, step_id: str) -> dict[str, MessageRecord]:
    found, _ = ledger.list_messages(tenant.id, campaign_id, [step_id], limit=50)
    return {r.address: r for r in found}


def test_a_sequence_threads_its_steps_and_stops_on_a_reply(
    tenant: Tenant, frozen: clock.FrozenClock
):
    client("ses").verify_domain_identity(Domain="example.com")
    pool = [sender(tenant, "ana@example.com"), sender(tenant, "ben@example.com")]
    created = create(tenant, sender_identity_ids=pool)
    seed_id, campaign_id = created["id"], ids.native(created["id"], "cmp_")
    steps = [
        add_step(tenant, seed_id, subject=SUBJECT, delay_minutes=0),
        add_step(tenant, seed_id, subject="", body_text="Any thoughts?", delay_minutes=1),
        add_step(tenant, seed_id, subject="", body_text="Last try", delay_minutes=1),
    ]
    addresses = [f"lead{n}@example.org" for n in range(4)]
    contacts = [body_of(tenant.call("POST", "/v1/contacts", {"email": a}))["id"] for a in addresses]
    enrolled = tenant.call("POST", f"{PATH}{seed_id}/enroll/", {"contact_ids": contacts})
    assert [r["outcome"] for r in body_of(enrolled)["results"]] == ["enrolled"] * 4
    activated = tenant.call("PATCH", f"{PATH}{seed_id}/", {"status": "active"})
    assert body_of(activated)["status"] == "active", activated.body
    drain_all()

    # Step 1 went to all four; each carries its own reply+token address.
    first = records_of(tenant, campaign_id, steps[0]["id"])
    assert sorted(first) == addresses
    for address in addresses:
        [mail] = mail_to(address)
        assert mail["Subject"] == SUBJECT and mail["In-Reply-To"] is None
        token = reply_token_for(tenant.id, campaign_id, first[address].message_id)
        assert mail["Reply-To"] == reply_address(token, REPLY_DOMAIN)

    # lead0 replies to step 1; lead1's mailbox answers it automatically.
    def answer(address: str, n: int, **headers: str) -> None:
        quoted = f"<{first[address].provider_message_id}@email.amazonses.com>"
        receive(
            inbound_reply(
                sender=address,
                recipient="ana@example.com",
                subject=f"Re: {SUBJECT}",
                in_reply_to=quoted,
                references=quoted,
                extra_headers=headers,
                ses_message_id=f"inbound-{n}",
            )
        )

    answer(addresses[0], 0)
    answer(addresses[1], 1, **{"Auto-Submitted": "auto-replied"})
    replied = enrolments.read(tenant.id, campaign_id, contacts[0])
    assert replied is not None and replied.exit_reason == "replied"

    for _ in range(2):  # each later step one (scaled) minute after the one before
        frozen.advance(timedelta(minutes=1))
        drain_all()
    frozen.advance(timedelta(minutes=1))
    drain_all()
    drain()

    assert len(mail_to(addresses[0])) == 1  # the reply stopped lead0 after step 1
    second = records_of(tenant, campaign_id, steps[1]["id"])
    third = records_of(tenant, campaign_id, steps[2]["id"])
    assert sorted(second) == sorted(third) == addresses[1:]  # out of office: not a reply
    for address in addresses[1:]:
        one, two, three = mail_to(address)
        assert one["Subject"] == SUBJECT and one["In-Reply-To"] is None
        ses = [r[address].provider_message_id for r in (first, second, third)]
        quoted = [f"<{i}@email.amazonses.com>" for i in ses]
        assert one["From"] == two["From"] == three["From"]  # one sender per contact
        assert two["Subject"] == three["Subject"] == f"Re: {SUBJECT}"
        assert two["In-Reply-To"] == quoted[0] and two["References"] == quoted[0]
        assert three["In-Reply-To"] == quoted[1]
        assert three["References"] == f"{quoted[0]} {quoted[1]}"
        ended = enrolments.read(tenant.id, campaign_id, contacts[addresses.index(address)])
        assert ended is not None and ended.exit_reason == "completed"

    shown = body_of(tenant.call("GET", f"{PATH}{seed_id}/"))
    assert shown["replies"] == "1" and shown["sent_count"] == "10"
    assert [s["sent_count"] for s in shown["steps"]] == ["4", "3", "3"]
    assert [s["replies"] for s in shown["steps"]] == ["1", "0", "0"]


def test_a_closed_window_defers_the_steps_to_its_opening(tenant: Tenant, frozen: clock.FrozenClock):
    client("ses").verify_domain_identity(Domain="example.com")
    noon = [{"days": ["mon"], "start": "12:00", "end": "13:00"}]  # Berlin: 11:00 UTC
    created = create(
        tenant, sender_identity_ids=[sender(tenant, "ana@example.com")], allowed_windows=noon
    )
    seed_id, campaign_id = created["id"], ids.native(created["id"], "cmp_")
    first_step = add_step(tenant, seed_id, subject=SUBJECT)
    add_step(tenant, seed_id, subject="", body_text="Any thoughts?", delay_minutes=1)
    address = "late@example.org"
    contact = body_of(tenant.call("POST", "/v1/contacts", {"email": address}))["id"]
    tenant.call("POST", f"{PATH}{seed_id}/enroll/", {"contact_ids": [contact]})
    tenant.call("PATCH", f"{PATH}{seed_id}/", {"status": "active"})
    drain_all()

    opening = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    deferred = enrolments.read(tenant.id, campaign_id, contact)
    assert deferred is not None and deferred.wake_at == opening
    assert mail_to(address) == []
    frozen.advance(opening - NOW - timedelta(minutes=1))
    herald.TICK_JOBS["flows.sweep"](clock.now())  # the minute before the opening
    drain_all()
    assert mail_to(address) == []

    frozen.advance(timedelta(minutes=1))
    herald.TICK_JOBS["flows.sweep"](clock.now())
    drain_all()
    frozen.advance(timedelta(minutes=1))
    drain_all()
    one, two = mail_to(address)
    assert (one["Subject"], two["Subject"]) == (SUBJECT, f"Re: {SUBJECT}")
    [first] = records_of(tenant, campaign_id, first_step["id"]).values()
    assert first.sent_at == opening
    assert two["In-Reply-To"] == f"<{first.provider_message_id}@email.amazonses.com>"
