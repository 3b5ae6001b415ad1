"""Provider events → DeliveryEvent, for every AWS sample in every envelope it travels in."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from chalicelib.domain.feedback import (
    PUSH_STATUS_KIND,
    SMS_STATUS_KIND,
    STATUS_ORDER,
    TAG_CAMPAIGN,
    TAG_MESSAGE,
    TAG_TENANT,
    DeliveryEvent,
    UnrecognizedNotification,
    callback_event,
    calls_back,
    campaign_stats,
    message_timeline,
    parse_notification,
    statuses_below,
)
from tests.aws_events import (
    PUSH_FAILURE,
    PUSH_SUCCESS,
    SES_SAMPLES,
    SMS_FAILURE,
    SMS_SUCCESS,
    eventbridge_envelope,
    load,
    ses_record,
    ses_sample,
    sms_status,
    sns_envelope,
)

SAMPLE_MESSAGE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
# What each AWS sample means to Herald: (kind, event time, recipients).
EXPECTED = {
    "Send": ("accepted", "2016-10-14T05:02:16.645Z", ("recipient@example.com",)),
    "Delivery": ("delivered", "2016-10-19T23:21:04.133Z", ("recipient@example.com",)),
    "Bounce": ("bounced", "2017-08-05T00:41:02.669Z", ("recipient@example.com",)),
    "Complaint": ("complained", "2017-08-05T00:41:02.669Z", ("recipient@example.com",)),
    "Reject": ("failed", "2016-10-14T17:38:15.211Z", ("sender@example.com",)),
    "Open": ("opened", "2017-08-09T22:00:19.652Z", ("recipient@example.com",)),
    "Click": ("clicked", "2017-08-09T23:51:25.570Z", ("recipient@example.com",)),
    "DeliveryDelay": ("delayed", "2020-06-16T00:25:40.095Z", ("recipient@example.com",)),
    "Rendering Failure": ("failed", "2018-01-22T18:43:06.197Z", ("recipient@example.com",)),
    "Subscription": ("unsubscribed", "2022-01-12T01:00:17.910Z", ("recipient@example.com",)),
}
ENVELOPES = {
    "raw": lambda record: record,
    "sns": sns_envelope,
    "eventbridge": eventbridge_envelope,
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_ses_sample_is_covered():
    assert set(EXPECTED) == set(SES_SAMPLES)


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
@pytest.mark.parametrize("event_type", sorted(SES_SAMPLES))
def test_every_ses_sample_parses_in_every_envelope(event_type, envelope):
    body = ENVELOPES[envelope](ses_sample(event_type))
    event = parse_notification(body)
    kind, at, recipients = EXPECTED[event_type]
    assert event is not None
    assert event.kind == kind
    assert event.channel == "email"
    assert event.provider == "ses"
    assert event.provider_event == event_type
    assert event.provider_message_id.startswith("EXAMPLE")
    assert event.occurred_at == _at(at)
    assert event.recipients == recipients
    # The AWS samples carry no Herald tags: correlation must fall back to the id.
    assert not event.correlated


def test_herald_tags_name_tenant_campaign_and_message():
    tags = {TAG_TENANT: "t" * 32, TAG_CAMPAIGN: "cmp_1", TAG_MESSAGE: "m_abc"}
    event = parse_notification(sns_envelope(ses_record("Delivery", tags=tags)))
    assert event is not None and event.correlated
    assert (event.tenant_id, event.campaign_id, event.message_id) == ("t" * 32, "cmp_1", "m_abc")
    assert event.sent_at == _at("2016-10-19T23:20:52.240Z")
    assert event.detail == "250 2.6.0 Message received"


def test_permanent_bounce_suppresses_and_keeps_its_type():
    event = parse_notification(ses_sample("Bounce"))
    assert event is not None
    assert (event.kind, event.suppress) == ("bounced", True)
    assert (event.bounce_type, event.bounce_subtype) == ("Permanent", "General")
    assert event.detail == "smtp; 550 5.1.1 user unknown"


def test_account_suppression_list_bounce_is_permanent():
    record = ses_record("Bounce", bounceSubType="OnAccountSuppressionList")
    event = parse_notification(record)
    assert event is not None
    assert (event.kind, event.suppress, event.bounce_subtype) == (
        "bounced",
        True,
        "OnAccountSuppressionList",
    )


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_transient_and_undetermined_bounces_do_not_suppress(bounce_type):
    record = ses_record("Bounce", bounceType=bounce_type, bounceSubType="MailboxFull")
    event = parse_notification(record)
    assert event is not None
    assert (event.kind, event.suppress) == ("soft_bounced", False)
    assert callback_event(event.kind, "email") is None  # the seed's "bounced" is permanent only


def test_complaint_suppresses_but_not_spam_feedback_is_ignored():
    complaint = parse_notification(ses_sample("Complaint"))
    assert complaint is not None and complaint.suppress
    assert complaint.detail == "abuse"
    assert parse_notification(ses_record("Complaint", complaintFeedbackType="not-spam")) is None


def test_click_keeps_its_link():
    event = parse_notification(ses_sample("Click"))
    assert event is not None
    assert event.link == "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html"


def test_reject_and_rendering_failure_keep_their_reason():
    reject = parse_notification(ses_sample("Reject"))
    failure = parse_notification(ses_sample("Rendering Failure"))
    assert reject is not None and reject.detail == "Bad content"
    assert failure is not None and failure.detail is not None
    assert failure.detail.startswith("Attribute 'attributeName' is not present")


def test_subscription_opt_in_changes_nothing_and_opt_out_suppresses():
    opt_out = parse_notification(ses_sample("Subscription"))
    assert opt_out is not None and (opt_out.kind, opt_out.suppress) == ("unsubscribed", True)
    record = ses_sample("Subscription")
    preferences = record["subscription"]["newTopicPreferences"]
    preferences["unsubscribeAll"] = False
    preferences["topicSubscriptionStatus"][0]["subscriptionStatus"] = "OptIn"
    assert parse_notification(record) is None


def test_identity_notifications_use_notification_type_and_carry_no_tags():
    record = ses_sample("Bounce")
    record["notificationType"] = record.pop("eventType")
    del record["mail"]["tags"]
    event = parse_notification(sns_envelope(record))
    assert event is not None and event.kind == "bounced" and not event.correlated
    assert event.provider_message_id == SAMPLE_MESSAGE_ID


def test_sns_subscription_confirmation_notification_is_ignored():
    body = sns_envelope(
        {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have subscribed"}
    )
    assert parse_notification(body) is None


@pytest.mark.parametrize(
    "body",
    [
        {"eventType": "Teleport", "mail": ses_sample("Send")["mail"]},
        {"eventType": "Bounce", "mail": ses_sample("Send")["mail"]},  # no bounce section
        {"eventType": "Delivery", "mail": {"timestamp": "2020-01-01T00:00:00Z"}},  # no id
        {"kind": "send.batch"},
    ],
)
def test_unknown_or_broken_events_are_refused_not_dropped(body):
    with pytest.raises(UnrecognizedNotification):
        parse_notification(body)


def test_lambda_envelope_samples_are_not_provider_events():
    """The Lambda SNS sample's message is plain text; the SQS sample's body is "test"."""
    sns = load("lambda_sns_event.json")["Records"][0]["Sns"]
    sqs = load("lambda_sqs_event.json")["Records"][0]
    with pytest.raises(UnrecognizedNotification):
        parse_notification(sns)
    with pytest.raises(UnrecognizedNotification):
        parse_notification({"body": sqs["body"]})


def test_sms_success_is_delivered_and_the_sample_failure_is_a_soft_failure():
    """AWS's two samples, verbatim, in the envelope the SMS status forwarder uses."""
    delivered = parse_notification({"kind": SMS_STATUS_KIND, "status": SMS_SUCCESS})
    failed = parse_notification({"kind": SMS_STATUS_KIND, "status": SMS_FAILURE})
    assert delivered is not None and failed is not None
    assert (delivered.kind, delivered.channel, delivered.provider) == ("delivered", "sms", "sns")
    assert delivered.provider_message_id == "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"
    assert delivered.sent_at == datetime(2016, 6, 28, 0, 40, 34, 558000, tzinfo=UTC)
    assert delivered.occurred_at == datetime(2016, 6, 28, 0, 40, 35, 157000, tzinfo=UTC)
    assert delivered.recipients == ("+1XXX5550100",)
    assert (delivered.suppress, delivered.bounce_type) == (False, None)
    # "Unknown error attempting to reach phone" is temporary: soft, no callback, sendable.
    assert failed.provider_message_id == "1077257a-92f3-5ca3-bc97-6a915b310625"
    assert (failed.kind, failed.suppress, failed.bounce_type) == (
        "soft_bounced",
        False,
        "Transient",
    )
    assert failed.detail == "Unknown error attempting to reach phone"
    assert callback_event(failed.kind, "sms") is None
    assert callback_event("delivered", "sms") == "delivered"
    assert callback_event("opened", "sms") is None
    assert callback_event("bounced", "sms") == "bounced"
    assert not calls_back("submitted", "sms")  # seed 003: SMS gives delivered and bounced only
    assert calls_back("submitted", "email")


def _failed_sms(response: str) -> DeliveryEvent:
    """The feedback event of a failed SMS whose provider answered ``response``."""
    record = sms_status(
        success=False,
        sns_message_id="abc",
        phone="+15555550100",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        response=response,
    )
    event = parse_notification({"kind": SMS_STATUS_KIND, "status": record})
    assert event is not None
    return event


@pytest.mark.parametrize(
    "response",
    [
        "Invalid phone number",
        "Phone number is opted out",
        "Phone has blocked SMS",
        "Phone is on a blocked list",
        "Destination is on a blocked list",
    ],
)
def test_permanent_sms_failure_bounces_and_suppresses(response: str):
    event = _failed_sms(response)
    assert (event.kind, event.suppress, event.bounce_type) == ("bounced", True, "Permanent")
    assert callback_event(event.kind, "sms") == "bounced"


@pytest.mark.parametrize(
    "response",
    [
        "Unknown error attempting to reach phone",
        "Phone is currently unreachable/unavailable",
        "Phone carrier is currently unreachable/unavailable",
        "Phone carrier has blocked this message",
        "Blocked as spam by phone carrier",
        "This delivery would exceed max price",
    ],
)
def test_temporary_sms_failure_is_a_soft_failure_that_keeps_the_number(response: str):
    event = _failed_sms(response)
    assert (event.kind, event.suppress, event.bounce_type) == ("soft_bounced", False, "Transient")


def test_sms_status_is_read_raw_and_in_an_sns_envelope_too():
    for body in (SMS_SUCCESS, sns_envelope(SMS_SUCCESS)):
        event = parse_notification(body)
        assert event is not None and event.kind == "delivered"


@pytest.mark.parametrize("status", ["not json", ["a list"], None])
def test_sms_status_envelope_without_a_record_is_refused(status: object):
    with pytest.raises(UnrecognizedNotification):
        parse_notification({"kind": SMS_STATUS_KIND, "status": status})


def test_malformed_sms_status_is_refused():
    broken = copy.deepcopy(SMS_SUCCESS)
    broken["notification"]["timestamp"] = "yesterday"
    with pytest.raises(UnrecognizedNotification):
        parse_notification(broken)


def test_push_success_is_delivered_and_failure_fails_with_the_push_services_answer():
    """The documented push status records in the envelope the status forwarder uses."""
    delivered = parse_notification({"kind": PUSH_STATUS_KIND, "status": PUSH_SUCCESS})
    failed = parse_notification({"kind": PUSH_STATUS_KIND, "status": PUSH_FAILURE})
    assert delivered is not None and failed is not None
    assert (delivered.kind, delivered.channel, delivered.provider) == ("delivered", "push", "sns")
    assert delivered.provider_message_id == "5b7c1f0e-2d4a-5e8b-9c3f-7a6d1e2b4c80"
    assert delivered.sent_at == datetime(2026, 6, 1, 12, 0, 1, 250000, tzinfo=UTC)
    assert delivered.occurred_at == datetime(2026, 6, 1, 12, 0, 1, 298000, tzinfo=UTC)
    assert delivered.recipients == (PUSH_SUCCESS["delivery"]["destination"],)
    assert (delivered.detail, delivered.suppress) == (None, False)
    assert (failed.kind, failed.suppress, failed.status) == ("failed", False, "failed")
    assert failed.detail == (
        "8: NotificationErrorResponse(command=8, status=InvalidToken, id=1, cause=null)"
    )
    # Read by shape too (raw, or in an SNS envelope): an endpoint ARN is no phone number.
    for body in (PUSH_FAILURE, sns_envelope(PUSH_FAILURE)):
        raw = parse_notification(body)
        assert raw is not None and (raw.channel, raw.kind) == ("push", "failed")


@pytest.mark.parametrize("status", ["not a status record", {"status": "SUCCESS"}])
def test_push_status_that_is_no_record_is_refused(status: object):
    with pytest.raises(UnrecognizedNotification):
        parse_notification({"kind": PUSH_STATUS_KIND, "status": status})


def test_status_only_moves_forward():
    assert STATUS_ORDER[0] == "sent" and STATUS_ORDER[-1] == "complained"
    assert statuses_below("opened") == ("sent", "delayed", "soft_bounced", "delivered")
    assert "opened" not in statuses_below("delivered")  # a late delivery moves nothing
    assert "delivered" not in statuses_below("delivered")  # nor does a duplicate
    assert "bounced" not in statuses_below("opened")
    assert "clicked" in statuses_below("complained")
    assert statuses_below("sent") == ()


def test_stats_rates_use_the_documented_denominators():
    counts = {
        "sent": 10,
        "failed": 1,
        "delivered": 8,
        "opened": 4,
        "clicked": 2,
        "bounced": 2,
        "complained": 1,
        "unsubscribed": 1,
    }
    stats = campaign_stats(11, counts)
    assert (stats.total_recipients, stats.sent, stats.failed) == (11, 10, 1)
    assert stats.delivery_rate == 0.8  # delivered / sent
    assert stats.bounce_rate == 0.2  # bounced / sent
    assert stats.open_rate == 0.5  # opened / delivered
    assert stats.click_rate == 0.25  # clicked / delivered
    assert stats.unsubscribe_rate == 0.125  # unsubscribed / delivered
    assert stats.complaint_rate == 0.125
    empty = campaign_stats(0, {})
    assert (empty.delivery_rate, empty.open_rate, empty.bounce_rate) == (0.0, 0.0, 0.0)


def test_timeline_lists_first_occurrences_in_time_order():
    sent_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    record = {
        "opened_at": "2026-01-01T12:05:00+00:00",
        "delivered_at": "2026-01-01T12:00:03+00:00",  # recorded after the open arrived
        "clicked_at": "2026-01-01T12:06:00+00:00",
    }
    entries = message_timeline(sent_at, record)
    assert [e.event for e in entries] == ["sent", "delivered", "opened", "clicked"]
    assert json.loads(entries[1].model_dump_json())["at"] == "2026-01-01T12:00:03Z"
