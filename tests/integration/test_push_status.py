"""Push delivery status, the way an AWS deployment runs it: a push sender's platform
application logs its status to log groups Herald makes and subscribes the status
forwarder to; the forwarder queues each record, the feedback worker finds the message by
the SNS message id the sender stored and counts it delivered, or failed with the push
service's reason, once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.local.poller import drain
from chalicelib.local.provision import status_forwarder
from chalicelib.resources import PushStatusLogsSpec
from chalicelib.settings import get_settings
from chalicelib.store.ledger import MessageRecord, list_messages
from tests.aws_events import push_status
from tests.channel_kit import contact, ok, send_campaign, stats
from tests.conftest import Tenant
from tests.feedback_kit import dead_letters, log_statuses
from tests.flow_kit import enrol_contact, put_flow

TEMPLATE = {"title": "Sale", "body": "Today only"}


@pytest.fixture
def forwarder(aws: None, herald_env: Any) -> str:
    """Push delivery status on, as the stack sets it, and the forwarder it subscribes."""
    herald_env(push_delivery_status="true")
    return status_forwarder()


def push_sender(tenant: Tenant) -> dict[str, Any]:
    body = {"channel": "push", "name": "App", "platform": "GCM", "credential": "fcm-key"}
    return dict(ok(tenant, "POST", "/v1/senders", body))


def device(tenant: Tenant, email: str, token: str) -> str:
    contact_id = contact(tenant, email)
    ok(tenant, "POST", f"/v1/contacts/{contact_id}/devices", {"platform": "GCM", "token": token})
    return contact_id


def status_groups(sender: dict[str, Any]) -> tuple[str, str]:
    """The success and failure log groups SNS writes the sender's application's status to."""
    _, platform, name = str(sender["platform_application_arn"]).split(":")[5].split("/")
    settings = get_settings()
    return PushStatusLogsSpec.log_groups(settings.region, settings.account_id, platform, name)


def log_push_statuses(
    sender: dict[str, Any], records: list[MessageRecord], *, success: bool
) -> list[str]:
    """Log each message's status as SNS would (to the success or the failure group) and
    deliver it as the group's subscription does; the log lines."""
    lines = [
        json.dumps(
            push_status(
                success=success,
                sns_message_id=str(r.provider_message_id),
                endpoint_arn=r.address,
                at=clock.now(),
            )
        )
        for r in records
    ]
    success_group, failure_group = status_groups(sender)
    assert log_statuses(success_group if success else failure_group, lines) == {
        "forwarded": len(lines)
    }
    return lines


def test_a_push_senders_application_logs_its_status_where_the_forwarder_listens(
    tenant: Tenant, forwarder: str
) -> None:
    sender = push_sender(tenant)
    app = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].applications[
        sender["platform_application_arn"]
    ]
    role = get_settings().push_status_role_arn
    assert app.attributes["SuccessFeedbackRoleArn"] == role
    assert app.attributes["FailureFeedbackRoleArn"] == role
    assert app.attributes["SuccessFeedbackSampleRate"] == "100"  # every delivery counts
    logs = client("logs")
    for group in status_groups(sender):
        [subscription] = logs.describe_subscription_filters(logGroupName=group)[
            "subscriptionFilters"
        ]
        assert (subscription["destinationArn"], subscription["filterPattern"]) == (forwarder, "")
    ok(tenant, "DELETE", f"/v1/senders/{sender['id']}")
    left = logs.describe_log_groups(logGroupNamePrefix="sns/")["logGroups"]
    assert left == []


def test_a_broadcast_counts_each_push_delivered_or_failed_once(
    tenant: Tenant, forwarder: str
) -> None:
    sender = push_sender(tenant)
    device(tenant, "ann@example.com", "tok-ann")
    device(tenant, "bob@example.com", "tok-bob")
    device(tenant, "cy@example.com", "tok-cy")
    campaign_id = send_campaign(tenant, "push", TEMPLATE, sender["id"])
    records, _ = list_messages(tenant.id, campaign_id, ["main"], limit=50)
    by_endpoint = {r.address: r for r in records}
    assert len(by_endpoint) == 3 and all(r.provider_message_id for r in records)
    delivered, refused = records[:2], records[2:]
    good = log_push_statuses(sender, delivered, success=True)
    bad = log_push_statuses(sender, refused, success=False)
    assert drain() == 3
    counted = stats(tenant, campaign_id)
    assert (counted["sent"], counted["delivered"], counted["rejected"]) == (3, 2, 1)
    assert counted["delivery_rate"] == round(2 / 3, 4)
    after, _ = list_messages(tenant.id, campaign_id, ["main"], limit=50)
    statuses = {r.address: (r.status, (r.model_extra or {}).get("status_detail")) for r in after}
    assert statuses == {
        **{r.address: ("delivered", None) for r in delivered},
        refused[0].address: (
            "failed",
            "8: NotificationErrorResponse(command=8, status=InvalidToken, id=1, cause=null)",
        ),
    }
    # Lambda retried the forwarder: the same lines again change nothing.
    success_group, failure_group = status_groups(sender)
    log_statuses(success_group, good)
    log_statuses(failure_group, bad)
    drain()
    assert stats(tenant, campaign_id) == counted
    # A line that is no status record on an application's group waits in the feedback DLQ.
    log_statuses(success_group, ["not a status record"])
    drain()
    assert dead_letters("feedback") == [{"kind": "push.status", "status": "not a status record"}]


def test_a_flows_push_counts_delivered_on_the_flow(tenant: Tenant, forwarder: str) -> None:
    sender = push_sender(tenant)
    template_id = ok(tenant, "POST", "/v1/templates", {"name": "P", "channel": "push", **TEMPLATE})[
        "id"
    ]
    ann = device(tenant, "ann@example.com", "tok-ann")
    send = {"channel": "push", "template_ids": [template_id], "sender_ids": [sender["id"]]}
    flow = put_flow(
        tenant.id,
        {
            "nodes": [
                {"id": "start", "kind": "trigger.manual"},
                {"id": "nudge", "kind": "send", "config": send},
            ],
            "edges": [{"source": "start", "target": "nudge"}],
        },
    )
    enrol_contact(tenant.id, flow, ann)
    drain()
    [step] = flow.steps
    records, _ = list_messages(tenant.id, flow.id, [step.id], limit=10)
    assert len(records) == 1 and records[0].provider_message_id
    log_push_statuses(sender, records, success=True)
    drain()
    counted = stats(tenant, flow.id)
    assert (counted["sent"], counted["delivered"]) == (1, 1)
    [after], _ = list_messages(tenant.id, flow.id, [step.id], limit=10)
    assert after.status == "delivered"
