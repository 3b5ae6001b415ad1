"""Stop on reply: SES inbound's notification (AWS's sample format) through the inbound
topic, the replies queue and the real reply worker. A reply exits the contact's
enrolment, counts once for the campaign and its step, reaches a webhook and a person;
an out-of-office answer is recorded and does nothing else."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib import cli
from chalicelib.aws import client
from chalicelib.domain import clock, ids
from chalicelib.domain.delivery import message_id
from chalicelib.domain.flows.step import Enrolment
from chalicelib.domain.replies import parse_notification, reply_address, reply_mail, reply_token_for
from chalicelib.local.poller import drain
from chalicelib.local.ses_simulator import SIMULATOR_DOMAIN as SIM
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.pipeline.replies import handle_reply, remember_for_replies
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings
from chalicelib.store import enrolments, ledger
from chalicelib.store.ledger import MessageRecord
from tests.aws_events import inbound_reply
from tests.conftest import Tenant, body_of
from tests.integration.test_seed001_api import PATH, add_step, create, sender

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
REPLY_DOMAIN = "replies.example.com"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as frozen_clock:
        yield frozen_clock


@pytest.fixture(autouse=True)
def reply_domain(herald_env) -> None:
    herald_env(reply_domain=REPLY_DOMAIN)


class Sequence:
    """A live sequence with two steps, and contacts who got step 1 and wait for step 2."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        created = create(tenant, sender_identity_ids=[sender(tenant, "ana@example.com")])
        self.seed_id = created["id"]
        self.campaign_id = ids.native(created["id"], "cmp_")
        self.first = add_step(tenant, created["id"])
        self.second = add_step(tenant, created["id"], subject="", delay_minutes=60)
        self.sender_id = ids.native(created["sender_identity_ids"][0], "snd_")
        tenant.call("PATCH", f"{PATH}{created['id']}/", {"status": "active"})

    def got_first_step(self, contact_id: str, ses_id: str) -> MessageRecord:
        """What the flow worker leaves after sending step 1: the ledger record, the reply
        pointers, and the enrolment waiting in the delay before step 2."""
        record = MessageRecord(
            campaign_id=self.campaign_id,
            step=self.first["id"],
            contact_id=contact_id,
            channel="email",
            message_id=message_id(self.first["id"], contact_id, "email"),
            status="sent",
            address=f"{contact_id}@example.org",
            batch_id="flow",
            sent_at=NOW,
            provider_message_id=ses_id,
            sender_id=self.sender_id,
        )
        ledger.record_message(self.tenant.id, record)
        remember_for_replies(self.tenant.id, [record], NOW)
        waiting = Enrolment(
            campaign_id=self.campaign_id,
            contact_id=contact_id,
            node_id=f"wait-{self.second['id']}",
            visit=2,
            entered_at=NOW,
            arrived_at=NOW,
            wake_at=NOW + timedelta(hours=1),
        )
        assert enrolments.start(self.tenant.id, waiting, None)
        return record

    def shown(self) -> dict[str, Any]:
        return body_of(self.tenant.call("GET", f"{PATH}{self.seed_id}/"))


def receive(notification: dict[str, Any]) -> None:
    """SES inbound publishes the notification to the inbound topic; the worker runs."""
    sns = client("sns")
    topic = sns.create_topic(Name=herald_resources(get_settings()).inbound.topic_name)
    sns.publish(TopicArn=topic["TopicArn"], Message=json.dumps(notification))
    drain()


def forwarded() -> list[email.message.Message]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [email.message_from_string(m.raw_data) for m in sent if "Fwd:" in m.raw_data]


def test_a_reply_exits_the_contact_counts_once_and_reaches_a_person(tenant: Tenant, herald_env):
    sequence = Sequence(tenant)
    client("ses").verify_domain_identity(Domain="example.com")  # SES lets it send
    tenant.call("PATCH", f"/v1/senders/{sequence.sender_id}", {"reply_to": ["sales@example.com"]})
    ses_id = "0100018c1d2e3f40-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000"
    record = sequence.got_first_step("c_" + "1" * 32, ses_id)
    reply = inbound_reply(
        sender="Lead <lead@example.org>",
        recipient="ana@example.com",
        subject="Re: Quick question",
        in_reply_to=f"<{ses_id}@email.amazonses.com>",
        references=f"<{ses_id}@email.amazonses.com>",
    )
    receive(reply)
    receive(reply)  # SNS delivers at least once: counted once
    shown = sequence.shown()
    assert shown["replies"] == "1"
    assert [s["replies"] for s in shown["steps"]] == ["1", "0"]
    after = enrolments.read(tenant.id, sequence.campaign_id, record.contact_id)
    assert after is not None and after.exit_reason == "replied"
    [mail] = forwarded()
    assert mail["To"] == "sales@example.com" and mail["Reply-To"] == "lead@example.org"
    stored = ledger.get_message(tenant.id, sequence.campaign_id, record.message_id)
    assert stored.model_extra and "replied_at" in stored.model_extra
    [thread] = body_of(tenant.call("GET", "/v1/inbox-threads"))["items"]
    assert (thread["contact_id"], thread["campaign_id"]) == (record.contact_id, record.campaign_id)
    assert thread["title"] == "Reply from lead@example.org: Re: Quick question"


def test_a_worker_dying_before_the_reply_is_marked_leaves_all_of_it_to_the_retry(
    tenant: Tenant,
):
    """The reply's effects come before its mark: a worker killed at the mark (the last
    write) has exited the contact and counted; the retry counts nothing twice and marks."""
    sequence = Sequence(tenant)
    ses_id = "0100018c1d2e3f40-aaaaaaaa-bbbb-cccc-dddd-ffffffffffff-000000"
    record = sequence.got_first_step("c_" + "2" * 32, ses_id)
    mail = parse_notification(
        inbound_reply(
            sender="lead@example.org",
            recipient="ana@example.com",
            subject="Re: Quick question",
            in_reply_to=f"<{ses_id}@email.amazonses.com>",
            references=f"<{ses_id}@email.amazonses.com>",
        )
    )

    def die_at_the_mark(params: dict[str, Any], **_: Any) -> None:
        if "replied_at" in json.dumps(params, default=str):
            raise RuntimeError("the worker died here")

    events = client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", die_at_the_mark)
    try:
        with pytest.raises(RuntimeError):
            handle_reply(mail, NOW)
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", die_at_the_mark)
    after = enrolments.read(tenant.id, sequence.campaign_id, record.contact_id)
    assert after is not None and after.exit_reason == "replied"  # already out
    assert sequence.shown()["replies"] == "1"

    retried = handle_reply(mail, NOW)
    assert (retried.counted, retried.exited) == (False, False)  # both done the first time
    assert sequence.shown()["replies"] == "1"
    stored = ledger.get_message(tenant.id, sequence.campaign_id, record.message_id)
    assert stored.model_extra and "replied_at" in stored.model_extra
    assert handle_reply(mail, NOW).counted is False  # and marked: nothing more happens


def test_an_out_of_office_answer_does_not_stop_the_sequence(tenant: Tenant):
    sequence = Sequence(tenant)
    ses_id = "0100018c1d2e3f41-11111111-2222-3333-4444-555555555555-000000"
    record = sequence.got_first_step("c_" + "2" * 32, ses_id)
    receive(
        inbound_reply(
            sender="lead@example.org",
            recipient="ana@example.com",
            subject="Out of Office: Quick question",
            in_reply_to=f"<{ses_id}@email.amazonses.com>",
            extra_headers={"Auto-Submitted": "auto-replied"},
        )
    )
    assert sequence.shown()["replies"] == "0"
    waiting = enrolments.read(tenant.id, sequence.campaign_id, record.contact_id)
    assert waiting is not None and waiting.exit_reason is None
    stored = ledger.get_message(tenant.id, sequence.campaign_id, record.message_id)
    assert stored.model_extra and "auto_replied_at" in stored.model_extra
    assert forwarded() == []


def test_a_reply_without_threading_headers_is_matched_by_its_reply_token(tenant: Tenant):
    sequence = Sequence(tenant)
    record = sequence.got_first_step("c_" + "3" * 32, "0100018c-token-test")
    token = reply_token_for(tenant.id, sequence.campaign_id, record.message_id)
    receive(
        inbound_reply(
            sender="lead@example.org",
            recipient=reply_address(token, REPLY_DOMAIN),
            subject="Re: Quick question",
        )
    )
    assert sequence.shown()["replies"] == "1"


def test_a_mail_that_answers_nothing_of_herald_changes_nothing(tenant: Tenant):
    sequence = Sequence(tenant)
    record = sequence.got_first_step("c_" + "4" * 32, "0100018c-unrelated")
    receive(
        inbound_reply(
            sender="someone@example.org",
            recipient="ana@example.com",
            subject="Hello",
            in_reply_to="<abc@mail.gmail.com>",
        )
    )
    assert sequence.shown()["replies"] == "0"
    waiting = enrolments.read(tenant.id, sequence.campaign_id, record.contact_id)
    assert waiting is not None and waiting.exit_reason is None


@pytest.mark.parametrize(
    ("recipient", "replies", "exited"),
    [(f"reply@{SIM}", "1", True), (f"lead+reply@{SIM}", "1", True), (f"ooto@{SIM}", "0", False)],
)
def test_the_simulator_answers_reply_and_ooto_mailboxes_through_ses_inbound(
    tenant: Tenant, simulator: FeedbackSimulator, herald_env, recipient, replies, exited
):
    herald_env(simulator_delay_seconds="0")
    client("ses").verify_domain_identity(Domain="example.com")
    sequence = Sequence(tenant)
    raw = reply_mail(
        sender="ana@example.com",
        to=recipient,
        subject="Quick question",
        quoted=[],
        text="Hi",
        automatic=False,
    )
    sent = client("sesv2").send_email(
        FromEmailAddress="ana@example.com",
        Destination={"ToAddresses": [recipient]},
        Content={"Raw": {"Data": raw}},
    )
    record = sequence.got_first_step("c_" + "5" * 32, sent["MessageId"])
    simulator.flush()
    drain()
    assert sequence.shown()["replies"] == replies
    after = enrolments.read(tenant.id, sequence.campaign_id, record.contact_id)
    assert after is not None and (after.exit_reason == "replied") is exited


def test_the_cli_injects_a_reply_to_a_given_message(tenant: Tenant, capsys):
    sequence = Sequence(tenant)
    record = sequence.got_first_step("c_" + "6" * 32, "0100018c-cli-test")
    campaign = ids.dashed(sequence.campaign_id)
    assert cli.main(["inject-reply", tenant.id, campaign, record.message_id, "--auto"]) == 0
    drain()
    assert sequence.shown()["replies"] == "0"  # an out-of-office answer
    assert cli.main(["inject-reply", tenant.id, campaign, record.message_id]) == 0
    assert "0100018c-cli-test@email.amazonses.com" in capsys.readouterr().out
    drain()
    assert sequence.shown()["replies"] == "1"
