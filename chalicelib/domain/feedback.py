"""What a provider says happened to a message, in one model, and how it moves the message.

SES publishes one record per event (Send, Delivery, Bounce, Complaint, Reject, Open, Click,
DeliveryDelay, Rendering Failure, Subscription) from the configuration set; identity
notifications carry the same sections under ``notificationType`` and no tags. The record
reaches the feedback queue wrapped in an SNS notification (``Message`` is the record as a
string), raw (SNS raw delivery), or as an EventBridge event (``detail``). SNS logs the
delivery status of each SMS (``{"notification", "delivery", "status"}``) to CloudWatch
Logs, and so the delivery status of each push to a platform application that names a
role to log with; Herald's forwarder puts those records on the feedback queue
(``SMS_STATUS_KIND``, ``PUSH_STATUS_KIND``). ``parse_notification`` turns any of these
into a ``DeliveryEvent``: a native event kind, the provider message id, Herald's ids from
the message tags, and the event's own time. When SES publishes through Firehose, the
records arrive many to an S3 object, announced by an S3 event notification
(``parse_object_notification``) and cut into records by ``split_records``.

The status of a message only moves forward along ``STATUS_ORDER``: late, duplicated and
out-of-order events can then be applied in any order and leave the same result, because
the ledger update is conditional on the status being lower (see docs/feedback.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from urllib.parse import unquote_plus

from pydantic import ConfigDict, Field, ValidationError

from chalicelib.domain.channels import ChannelName
from chalicelib.domain.model import Model

# -- message status ----------------------------------------------------------------------
# Lowest first: the order is the rank. A message is ``sent`` once the provider accepted it
# (the sender's ledger write). Engagement follows delivery; the adverse outcomes rank above
# engagement because they arrive after it when they arrive at all (a bounce after an MTA
# accepted, a complaint after the reader opened), and they are what the tenant must see.
MessageStatus = Literal[
    "sent",
    "delayed",
    "soft_bounced",
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "failed",
    "bounced",
    "complained",
]
STATUS_ORDER: tuple[MessageStatus, ...] = get_args(MessageStatus)
_RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUS_ORDER)}


def statuses_below(status: MessageStatus) -> tuple[MessageStatus, ...]:
    """The statuses a message may move to ``status`` from (the condition of the update)."""
    return STATUS_ORDER[: _RANK[status]]


# -- events -------------------------------------------------------------------------------
EventKind = Literal[
    "accepted",  # SES Send: SES took the message; Herald's own send already recorded it
    "delayed",
    "soft_bounced",
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "failed",  # SES Reject or Rendering Failure
    "bounced",
    "complained",
]
Channel = ChannelName
CallbackEvent = Literal["submitted", "delivered", "bounced", "opened", "clicked"]

# The status each kind moves a message to; ``accepted`` moves nothing (already ``sent``).
KIND_STATUS: dict[EventKind, MessageStatus | None] = {
    "accepted": None,
    "delayed": "delayed",
    "soft_bounced": "soft_bounced",
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
    "failed": "failed",
    "bounced": "bounced",
    "complained": "complained",
}
# The campaign counter each kind adds one to, the first time it happens to a message.
# ``failed`` events are SES-side refusals after the API accepted the send: counted as
# ``rejected`` so that the sender's ``failed`` (refused at the API) stays its own.
KIND_COUNTER: dict[EventKind, str | None] = {
    "accepted": None,
    "delayed": "delayed",
    "soft_bounced": "soft_bounced",
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
    "failed": "rejected",
    "bounced": "bounced",
    "complained": "complained",
}
# The events of the seed's aggregated callbacks (seed 003); SMS has only the first two.
KIND_CALLBACK: dict[EventKind, CallbackEvent] = {
    "delivered": "delivered",
    "bounced": "bounced",
    "opened": "opened",
    "clicked": "clicked",
}
SMS_CALLBACK_EVENTS: frozenset[CallbackEvent] = frozenset({"delivered", "bounced"})


def calls_back(event: CallbackEvent, channel: Channel) -> bool:
    """Whether the seed's callbacks carry ``event`` for ``channel`` (SMS: delivered, bounced)."""
    return channel != "sms" or event in SMS_CALLBACK_EVENTS


def callback_event(kind: EventKind, channel: Channel) -> CallbackEvent | None:
    """The seed callback ``event`` for a kind on a channel, or None when it has none."""
    event = KIND_CALLBACK.get(kind)
    return event if event is not None and calls_back(event, channel) else None


def timestamp_attribute(kind: EventKind) -> str:
    """The ledger attribute holding when ``kind`` first happened to a message."""
    return f"{kind}_at"


# The message tags Herald's sender sets on every email (SES EmailTags).
TAG_TENANT = "herald-tenant"
TAG_CAMPAIGN = "herald-campaign"
TAG_MESSAGE = "herald-message"
# The channels whose provider events name only the provider's message id (SNS's SMS and
# push status logs): each send leaves a pointer to its Herald message
# (store.provider_messages), found again by that id.
UNTAGGED_CHANNELS: frozenset[ChannelName] = frozenset({"sms", "push"})

_DETAIL_MAX = 300


class DeliveryEvent(Model):
    """One thing that happened to one sent message, whatever shape it arrived in."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    channel: Channel
    provider: Literal["ses", "sns", "herald"]
    provider_event: str = Field(description="The provider's own name: 'Bounce', 'SUCCESS', …")
    provider_message_id: str | None = None
    occurred_at: datetime
    sent_at: datetime | None = Field(
        default=None, description="When the provider accepted the message, if it says."
    )
    recipients: tuple[str, ...] = ()
    tenant_id: str | None = None
    campaign_id: str | None = None
    message_id: str | None = None
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    link: str | None = None
    detail: str | None = Field(default=None, description="Diagnostic, reason or response.")
    suppress: bool = Field(
        default=False, description="The recipient must not be mailed again by this tenant."
    )

    @property
    def correlated(self) -> bool:
        """Whether the tags name the tenant, campaign and message (no lookup needed)."""
        return bool(self.tenant_id and self.campaign_id and self.message_id)

    @property
    def status(self) -> MessageStatus | None:
        return KIND_STATUS[self.kind]


class UnrecognizedNotification(ValueError):
    """A feedback message in no shape Herald knows: it fails and ends in the DLQ."""


# -- SES records --------------------------------------------------------------------------
class _Loose(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Mail(_Loose):
    message_id: str = Field(alias="messageId")
    timestamp: datetime
    destination: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)


class _Recipient(_Loose):
    email_address: str = Field(alias="emailAddress")
    status: str | None = None
    diagnostic_code: str | None = Field(default=None, alias="diagnosticCode")


class _Bounce(_Loose):
    bounce_type: str = Field(alias="bounceType")
    bounce_sub_type: str | None = Field(default=None, alias="bounceSubType")
    bounced_recipients: list[_Recipient] = Field(alias="bouncedRecipients")
    timestamp: datetime


class _Complaint(_Loose):
    complained_recipients: list[_Recipient] = Field(alias="complainedRecipients")
    timestamp: datetime
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")


class _Delivery(_Loose):
    timestamp: datetime
    recipients: list[str] = Field(default_factory=list)
    smtp_response: str | None = Field(default=None, alias="smtpResponse")


class _Delay(_Loose):
    timestamp: datetime
    delay_type: str | None = Field(default=None, alias="delayType")
    delayed_recipients: list[_Recipient] = Field(default_factory=list, alias="delayedRecipients")


class _Engagement(_Loose):
    timestamp: datetime
    link: str | None = None


class _TopicStatus(_Loose):
    subscription_status: str = Field(alias="subscriptionStatus")


class _Preferences(_Loose):
    unsubscribe_all: bool = Field(default=False, alias="unsubscribeAll")
    topic_subscription_status: list[_TopicStatus] = Field(
        default_factory=list, alias="topicSubscriptionStatus"
    )


class _Subscription(_Loose):
    timestamp: datetime
    source: str | None = None
    new_topic_preferences: _Preferences = Field(
        default_factory=_Preferences, alias="newTopicPreferences"
    )


class _Reject(_Loose):
    reason: str | None = None


class _Failure(_Loose):
    error_message: str | None = Field(default=None, alias="errorMessage")


class _SesRecord(_Loose):
    event_type: str | None = Field(default=None, alias="eventType")
    notification_type: str | None = Field(default=None, alias="notificationType")
    mail: _Mail
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None
    delivery: _Delivery | None = None
    delivery_delay: _Delay | None = Field(default=None, alias="deliveryDelay")
    open: _Engagement | None = None
    click: _Engagement | None = None
    subscription: _Subscription | None = None
    reject: _Reject | None = None
    failure: _Failure | None = None


# Event publishing names (and identity-notification names) → how to read each.
_SES_TYPES = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "DeliveryDelay": "delivery_delay",
    "Rendering Failure": "rendering_failure",
    "RenderingFailure": "rendering_failure",
    "Subscription": "subscription",
}
# Identity notifications SES sends when a topic is attached: nothing happened to a message.
_SES_IGNORED = frozenset({"AmazonSnsSubscriptionSucceeded"})


def _first_tag(tags: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = tags.get(name) or ()
    return values[0] if values else None


def _short(text: str | None) -> str | None:
    return text[:_DETAIL_MAX] if text else None


def _ses_event(record: _SesRecord, provider_event: str) -> DeliveryEvent | None:
    mail = record.mail
    common: dict[str, Any] = {
        "channel": "email",
        "provider": "ses",
        "provider_event": provider_event,
        "provider_message_id": mail.message_id,
        "tenant_id": _first_tag(mail.tags, TAG_TENANT),
        "campaign_id": _first_tag(mail.tags, TAG_CAMPAIGN),
        "message_id": _first_tag(mail.tags, TAG_MESSAGE),
        "recipients": tuple(mail.destination),
        "occurred_at": mail.timestamp,
        "sent_at": mail.timestamp,
    }
    match _SES_TYPES.get(provider_event):
        case "send":
            return DeliveryEvent(kind="accepted", **common)
        case "delivery" if record.delivery is not None:
            return DeliveryEvent(
                kind="delivered",
                **{
                    **common,
                    "occurred_at": record.delivery.timestamp,
                    "recipients": tuple(record.delivery.recipients) or common["recipients"],
                    "detail": _short(record.delivery.smtp_response),
                },
            )
        case "bounce" if record.bounce is not None:
            return _bounce_event(record.bounce, common)
        case "complaint" if record.complaint is not None:
            complaint = record.complaint
            if complaint.complaint_feedback_type == "not-spam":
                return None  # the reader says it is NOT spam: nothing to act on
            return DeliveryEvent(
                kind="complained",
                suppress=True,
                detail=complaint.complaint_feedback_type,
                **{
                    **common,
                    "occurred_at": complaint.timestamp,
                    "recipients": tuple(r.email_address for r in complaint.complained_recipients)
                    or common["recipients"],
                },
            )
        case "reject":
            reason = record.reject.reason if record.reject else None
            return DeliveryEvent(kind="failed", detail=_short(reason), **common)
        case "rendering_failure":
            message = record.failure.error_message if record.failure else None
            return DeliveryEvent(kind="failed", detail=_short(message), **common)
        case "open" if record.open is not None:
            return DeliveryEvent(kind="opened", **{**common, "occurred_at": record.open.timestamp})
        case "click" if record.click is not None:
            return DeliveryEvent(
                kind="clicked",
                link=record.click.link,
                **{**common, "occurred_at": record.click.timestamp},
            )
        case "delivery_delay" if record.delivery_delay is not None:
            delay = record.delivery_delay
            return DeliveryEvent(
                kind="delayed",
                detail=delay.delay_type,
                **{
                    **common,
                    "occurred_at": delay.timestamp,
                    "recipients": tuple(r.email_address for r in delay.delayed_recipients)
                    or common["recipients"],
                },
            )
        case "subscription" if record.subscription is not None:
            return _subscription_event(record.subscription, common)
    raise UnrecognizedNotification(f"SES event {provider_event!r} without its section")


def _bounce_event(bounce: _Bounce, common: dict[str, Any]) -> DeliveryEvent:
    """Permanent bounces (including OnAccountSuppressionList) suppress; others do not.

    SES's ``Undetermined`` type is read as soft: suppressing on a guess would silence a
    good address for good.
    """
    permanent = bounce.bounce_type == "Permanent"
    first = bounce.bounced_recipients[0] if bounce.bounced_recipients else None
    return DeliveryEvent(
        kind="bounced" if permanent else "soft_bounced",
        suppress=permanent,
        bounce_type=bounce.bounce_type,
        bounce_subtype=bounce.bounce_sub_type,
        detail=_short(first.diagnostic_code if first else None),
        **{
            **common,
            "occurred_at": bounce.timestamp,
            "recipients": tuple(r.email_address for r in bounce.bounced_recipients)
            or common["recipients"],
        },
    )


def _subscription_event(
    subscription: _Subscription, common: dict[str, Any]
) -> DeliveryEvent | None:
    """An opt-out through SES subscription management; an opt-in changes nothing here."""
    preferences = subscription.new_topic_preferences
    opted_out = preferences.unsubscribe_all or any(
        t.subscription_status == "OptOut" for t in preferences.topic_subscription_status
    )
    if not opted_out:
        return None
    return DeliveryEvent(
        kind="unsubscribed",
        suppress=True,
        detail=subscription.source,
        **{**common, "occurred_at": subscription.timestamp},
    )


def parse_ses_record(record: Mapping[str, Any]) -> DeliveryEvent | None:
    """A SES event-publishing record or identity notification; None if it needs no action."""
    name = record.get("eventType") or record.get("notificationType")
    if name in _SES_IGNORED:
        return None
    if name not in _SES_TYPES:
        raise UnrecognizedNotification(f"unknown SES event type {name!r}")
    try:
        parsed = _SesRecord.model_validate(record)
    except ValidationError as error:
        raise UnrecognizedNotification(f"malformed SES {name} record: {error}") from error
    return _ses_event(parsed, str(name))


# -- SNS SMS delivery status --------------------------------------------------------------
# The provider responses (SNS's "SMS delivery failure reasons") that say the NUMBER is
# unusable: the phone or the number is blocked, opted out or does not exist. Only those
# become ``bounced`` (a permanent failure, the seed's ``bounced`` callback) and suppress the
# number. Every other failure (phone or carrier unreachable, carrier filtering, price
# limit, unknown error) is a temporary one: ``soft_bounced``, no callback, the number
# stays sendable because it may well work tomorrow.
PERMANENT_SMS_FAILURES = (
    "invalid phone number",
    "phone number is opted out",
    "phone has blocked sms",
    "phone is on a blocked list",
    "destination is on a blocked list",
)
# What Herald's status forwarder (``pipeline.status_logs``) puts an SMS log record in on the
# feedback queue: ``{"kind": SMS_STATUS_KIND, "status": <the record>}``.
SMS_STATUS_KIND = "sms.status"


class _SmsNotification(_Loose):
    message_id: str = Field(alias="messageId")
    timestamp: str


class _SmsDelivery(_Loose):
    destination: str
    provider_response: str | None = Field(default=None, alias="providerResponse")
    dwell_time_ms: int = Field(default=0, alias="dwellTimeMs")


class _SmsStatus(_Loose):
    notification: _SmsNotification
    delivery: _SmsDelivery
    status: Literal["SUCCESS", "FAILURE"]


def _sns_log_time(value: str) -> datetime:
    """SNS writes ``2016-06-28 00:40:34.558`` (UTC, no zone); ISO forms are accepted too."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def is_sms_status(record: Mapping[str, Any]) -> bool:
    return {"notification", "delivery", "status"} <= record.keys()


def is_permanent_sms_failure(provider_response: str | None) -> bool:
    """Whether an SMS failure's provider response says the number itself is unusable."""
    response = (provider_response or "").lower()
    return any(phrase in response for phrase in PERMANENT_SMS_FAILURES)


def parse_sms_status(record: Mapping[str, Any]) -> DeliveryEvent:
    """One SNS SMS delivery-status log record.

    SUCCESS → ``delivered``; FAILURE → ``bounced`` (suppressing) when the provider response
    is a permanent one, else ``soft_bounced``. ``bounce_type`` says which, as for email
    (``Permanent`` / ``Transient``). The record's timestamp is when SNS accepted the
    message; the event happened ``dwellTimeMs`` later (when SNS handed it to the carrier).
    """
    try:
        parsed = _SmsStatus.model_validate(record)
        published_at = _sns_log_time(parsed.notification.timestamp)
    except (ValidationError, ValueError) as error:
        raise UnrecognizedNotification(f"malformed SMS delivery status: {error}") from error
    response = parsed.delivery.provider_response
    delivered = parsed.status == "SUCCESS"
    permanent = not delivered and is_permanent_sms_failure(response)
    kind: EventKind = "delivered" if delivered else "bounced" if permanent else "soft_bounced"
    return DeliveryEvent(
        kind=kind,
        channel="sms",
        provider="sns",
        provider_event=parsed.status,
        provider_message_id=parsed.notification.message_id,
        occurred_at=published_at + timedelta(milliseconds=parsed.delivery.dwell_time_ms),
        sent_at=published_at,
        recipients=(parsed.delivery.destination,),
        bounce_type=None if delivered else "Permanent" if permanent else "Transient",
        detail=_short(response),
        suppress=permanent,
    )


# -- SNS mobile push delivery status ------------------------------------------------------
# What the status forwarder puts a push status record in: ``{"kind": PUSH_STATUS_KIND,
# "status": <the record>}`` (it knows push from SMS by the log group the record came from).
PUSH_STATUS_KIND = "push.status"


class _PushDelivery(_Loose):
    destination: str = Field(description="The platform endpoint's ARN.")
    status_code: int | None = Field(default=None, alias="statusCode")
    provider_response: str | None = Field(default=None, alias="providerResponse")
    dwell_time_ms: int = Field(default=0, alias="dwellTimeMs")


class _PushStatus(_Loose):
    notification: _SmsNotification
    delivery: _PushDelivery
    status: Literal["SUCCESS", "FAILURE"]


def is_push_status(record: Mapping[str, Any]) -> bool:
    """A status record (``is_sms_status``'s shape) whose destination is a platform endpoint."""
    delivery = record.get("delivery")
    return isinstance(delivery, Mapping) and ":endpoint/" in str(delivery.get("destination"))


def parse_push_status(record: Mapping[str, Any]) -> DeliveryEvent:
    """One SNS platform-application delivery-status log record (SNS developer guide,
    "Amazon SNS mobile app attributes": the same ``notification`` / ``delivery`` /
    ``status`` as an SMS record, with the endpoint's ARN as ``destination`` and the push
    service's ``statusCode`` and ``providerResponse``).

    SUCCESS → ``delivered`` (the push service — APNs, FCM — accepted it for the device);
    FAILURE → ``failed`` with the push service's answer as the reason. Nothing is
    suppressed: a device whose token the service refused is disabled by SNS itself, and
    the next send to it removes the device (chalicelib/channels/push.py).
    """
    try:
        parsed = _PushStatus.model_validate(record)
        published_at = _sns_log_time(parsed.notification.timestamp)
    except (ValidationError, ValueError) as error:
        raise UnrecognizedNotification(f"malformed push delivery status: {error}") from error
    delivery = parsed.delivery
    delivered = parsed.status == "SUCCESS"
    reason = None
    if not delivered:
        code = f"{delivery.status_code}: " if delivery.status_code is not None else ""
        reason = _short(f"{code}{delivery.provider_response or 'no response'}")
    return DeliveryEvent(
        kind="delivered" if delivered else "failed",
        channel="push",
        provider="sns",
        provider_event=parsed.status,
        provider_message_id=parsed.notification.message_id,
        occurred_at=published_at + timedelta(milliseconds=delivery.dwell_time_ms),
        sent_at=published_at,
        recipients=(delivery.destination,),
        detail=reason,
    )


# -- envelopes ----------------------------------------------------------------------------
# Herald's envelopes of SNS status log records (the status forwarder's), by kind.
_STATUS_PARSERS = {SMS_STATUS_KIND: parse_sms_status, PUSH_STATUS_KIND: parse_push_status}


def _record_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The provider record inside an SNS notification, an EventBridge event, or as is."""
    if body.get("Type") == "Notification" and "Message" in body:
        try:
            inner = json.loads(body["Message"])
        except (TypeError, ValueError) as error:
            raise UnrecognizedNotification("SNS Message is not JSON") from error
        if not isinstance(inner, dict):
            raise UnrecognizedNotification("SNS Message is not a JSON object")
        return inner
    if body.get("source") == "aws.ses" and isinstance(body.get("detail"), dict):
        detail: Mapping[str, Any] = body["detail"]
        return detail
    return body


def parse_notification(body: Mapping[str, Any]) -> DeliveryEvent | None:
    """The event in one feedback-queue message (any supported envelope); None to ignore.

    Raises ``UnrecognizedNotification`` for anything else, so a misrouted or corrupted
    message is not silently dropped but ends in the dead-letter queue.
    """
    parse_status = _STATUS_PARSERS.get(str(body.get("kind")))
    if parse_status is not None:
        status = body.get("status")
        if not isinstance(status, dict):
            raise UnrecognizedNotification(f"{body.get('kind')} envelope without its record")
        return parse_status(status)
    record = _record_of(body)
    if is_sms_status(record):
        return parse_push_status(record) if is_push_status(record) else parse_sms_status(record)
    if "mail" in record:
        return parse_ses_record(record)
    if record.get("notificationType") in _SES_IGNORED:
        return None
    raise UnrecognizedNotification("not an SES event nor an SMS delivery status")


# -- objects of SES events (SES → Firehose → S3) ------------------------------------------
# What S3 sends to the feedback queue once the bucket's notification is configured, before
# any object: nothing happened to a message.
S3_TEST_EVENT = "s3:TestEvent"


class EventsObject(Model):
    """An S3 object of SES event records (Firehose's), from ``start`` bytes in: where a
    new object begins (0) or where the rest of one goes on (a continuation)."""

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    start: int = Field(default=0, ge=0)


class _S3Bucket(_Loose):
    name: str


class _S3Object(_Loose):
    key: str


class _S3Entity(_Loose):
    bucket: _S3Bucket
    stored: _S3Object = Field(alias="object")


class _S3Record(_Loose):
    event_source: str = Field(alias="eventSource")
    event_name: str = Field(alias="eventName")
    s3: _S3Entity


def is_s3_notification(body: Mapping[str, Any]) -> bool:
    """An S3 event notification (``Records`` from ``aws:s3``) or S3's test event."""
    if body.get("Event") == S3_TEST_EVENT:
        return True
    records = body.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and records[0].get("eventSource") == "aws:s3"
    )


def is_ses_record(body: Mapping[str, Any]) -> bool:
    """A SES event record as SES writes it, in no envelope (one of an object's records)."""
    return "mail" in body and ("eventType" in body or "notificationType" in body)


def parse_object_notification(body: Mapping[str, Any]) -> list[EventsObject]:
    """The new objects an S3 event notification announces (S3 user guide, "Event message
    structure": ``Records[].s3.bucket.name`` and ``.object.key``, the key URL-encoded).

    S3's test event and events other than ``ObjectCreated:*`` announce nothing to read.
    """
    if body.get("Event") == S3_TEST_EVENT:
        return []
    records = body.get("Records")
    if not isinstance(records, list):
        raise UnrecognizedNotification("S3 notification without Records")
    try:
        parsed = [_S3Record.model_validate(record) for record in records]
    except ValidationError as error:
        raise UnrecognizedNotification(f"malformed S3 notification: {error}") from error
    if any(record.event_source != "aws:s3" for record in parsed):
        raise UnrecognizedNotification("a notification record not from S3")
    return [
        EventsObject(bucket=record.s3.bucket.name, key=unquote_plus(record.s3.stored.key))
        for record in parsed
        if record.event_name.startswith("ObjectCreated:")
    ]


@dataclass(frozen=True)
class ObjectRecord:
    """One record of an object of events, as ``split_records`` found it."""

    value: dict[str, Any] | None  # None: the text is not a JSON object
    text: str
    end: int  # bytes from the start of the data to just after this record


# Where a record that does not parse ends: at a line's end (newline-delimited objects),
# where a ``}`` meets the next ``{`` (valid JSON has ``}{`` only inside strings), or where
# the next SES record begins (a record cut short runs straight into it; SES writes
# ``eventType`` first).
_RECORD_END = re.compile(r'\n|\}(?=\s*\{)|(?=\{"(?:eventType|notificationType)")')
_NOT_SPACE = re.compile(r"\S")
_DECODER = json.JSONDecoder()


def split_records(data: bytes) -> Iterator[ObjectRecord]:
    """The JSON records of an object of events, one after the other, lazily.

    Firehose concatenates the records it is given; SES's may or may not end in a newline,
    so both newline-delimited and back-to-back objects are read. A record that does not
    parse is yielded with ``value`` None and skipped up to where the next one begins, so
    it sinks no other record. ``end`` counts bytes (an undecodable byte is kept as
    itself), so a continuation can read the rest of the object from there.
    """
    text = data.decode("utf-8", "surrogateescape")
    at = consumed = 0
    while (found := _NOT_SPACE.search(text, at)) is not None:
        begin = found.start()
        value: Any
        try:
            value, end = _DECODER.raw_decode(text, begin)
        except ValueError:
            value, end = None, _end_of_bad_record(text, begin)
        consumed += len(text[at:end].encode("utf-8", "surrogateescape"))
        yield ObjectRecord(value if isinstance(value, dict) else None, text[begin:end], consumed)
        at = end


def _end_of_bad_record(text: str, begin: int) -> int:
    found = _RECORD_END.search(text, begin + 1)
    return found.end() if found is not None else len(text)


# -- campaign stats -----------------------------------------------------------------------
class CampaignStats(Model):
    """A campaign's outcome so far. Rates are fractions (0.0 to 1.0, four decimals).

    Denominators: delivery and bounce rates are over ``sent`` (what the provider
    accepted); open, click, unsubscribe and complaint rates are over ``delivered`` (only a
    delivered message can be opened). A rate whose denominator is 0 is 0.0. Counts of
    engagement are unique per message: a message opened five times counts once.
    """

    total_recipients: int
    sent: int
    failed: int
    delivered: int
    opened: int
    clicked: int
    bounced: int
    complained: int
    unsubscribed: int
    soft_bounced: int
    rejected: int
    delivery_rate: float
    open_rate: float
    click_rate: float
    unsubscribe_rate: float
    bounce_rate: float
    complaint_rate: float


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0


def campaign_stats(total_recipients: int, counts: Mapping[str, int]) -> CampaignStats:
    """The stats view of a campaign's counters (``store.counters.read_counts``)."""

    def count(name: str) -> int:
        return int(counts.get(name, 0))

    sent, delivered = count("sent"), count("delivered")
    return CampaignStats(
        total_recipients=total_recipients,
        sent=sent,
        failed=count("failed"),
        delivered=delivered,
        opened=count("opened"),
        clicked=count("clicked"),
        bounced=count("bounced"),
        complained=count("complained"),
        unsubscribed=count("unsubscribed"),
        soft_bounced=count("soft_bounced"),
        rejected=count("rejected"),
        delivery_rate=_rate(delivered, sent),
        open_rate=_rate(count("opened"), delivered),
        click_rate=_rate(count("clicked"), delivered),
        unsubscribe_rate=_rate(count("unsubscribed"), delivered),
        bounce_rate=_rate(count("bounced"), sent),
        complaint_rate=_rate(count("complained"), delivered),
    )


class TimelineEntry(Model):
    """One step in a message's life."""

    event: str
    at: datetime


def message_timeline(sent_at: datetime | None, record: Mapping[str, Any]) -> list[TimelineEntry]:
    """A message's events in time order, from ``sent_at`` and its ``<kind>_at`` attributes.

    Each kind appears once, at the first time it happened (what the ledger keeps).
    """
    entries = [TimelineEntry(event="sent", at=sent_at)] if sent_at else []
    for kind in KIND_STATUS:
        value = record.get(timestamp_attribute(kind))
        if value:
            entries.append(TimelineEntry(event=kind, at=datetime.fromisoformat(str(value))))
    return sorted(entries, key=lambda entry: entry.at)


def step_counter(name: str, step_id: str) -> str:
    """The counter of ``name`` (sent, opened, clicked, replied…) for one step of a flow,
    kept beside the campaign's own in its sharded counters and read with them in the same
    BatchGetItem, so a step's figures cost nothing more to read (seed 001 shows them)."""
    return f"{name}@{step_id}"
