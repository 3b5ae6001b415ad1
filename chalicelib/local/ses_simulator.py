"""The SES mailbox simulator and SNS SMS delivery status, for the embedded stack.

moto accepts mail and SMS but never reports what became of them. This service watches
this process's own SES v2 ``SendEmail`` and SNS ``Publish`` calls (botocore hooks on the
clients ``chalicelib.aws`` hands out, so Herald's code is unchanged) and, after
``simulator_delay_seconds``, does what AWS would, in the same format, so the events travel
the real path: SES events go where the configuration set publishes them
(``Settings.ses_events_transport``): to its topic (topic → feedback queue → feedback
worker), or to its Firehose stream (stream → an S3 object → the bucket's notification on
the feedback queue → feedback worker); SMS and push statuses are delivered as
CloudWatch Logs delivers SNS's delivery-status log records to a subscription, to app.py's
status forwarder (forwarder → feedback queue → feedback worker).

Recipients follow SES's mailbox simulator (a ``+label`` is allowed, as in SES); of the
events below, only the types the configuration set publishes are sent (Herald's set leaves
out ``Send``: see chalicelib/resources.py), and no Open for a message sent with open
tracking turned off (``ConfigurationOverrides``; a Click may still come, as from a reader
whose mail client blocks images), and no Click for a message without a link SES would track
(every link marked ``ses:no-track``, as ``track_clicks: false`` marks them):

==================================================  =====================================
success@simulator.amazonses.com                     Send, Delivery
bounce@simulator.amazonses.com                      Send, Bounce (Permanent, General)
complaint@simulator.amazonses.com                   Send, Delivery, Complaint
ooto@simulator.amazonses.com                        Delivery
suppressionlist@simulator.amazonses.com             Bounce (Permanent, OnAccountSuppressionList)
reply@simulator.amazonses.com (or any ``+reply``)   Send, Delivery, and a reply: SES inbound's
                                                    Received notification on the inbound topic
anyone else                                         Send, Delivery, and Open / Click for a
                                                    share of messages (``simulator_open_rate``,
                                                    ``simulator_click_rate``; 0 by default)
==================================================  =====================================

``ooto@`` also answers with an automatic out-of-office reply (``Auto-Submitted``). A reply
quotes the Message-ID SES gave the message (``mail_threads.header_message_id``), so it
travels the real path: inbound topic → replies queue → reply worker.

An SMS is delivered (status SUCCESS) unless its number is one of
``simulator_failing_numbers`` (FAILURE, "Unknown error attempting to reach phone": a
temporary failure) or ``simulator_invalid_numbers`` (FAILURE, "Invalid phone number": a
permanent one). A push is delivered (status SUCCESS, logged to its application's group)
when push delivery status is on (``Settings.push_delivery_status``, as the embedded stack
and the stack set it). Which messages open or click is decided by a hash
of the message id, so a run is reproducible.

The Firehose records are SES's: "Amazon SES publishes email sending event records to
Amazon Data Firehose in JSON format [and] follows each JSON record with a newline
character" (SES developer guide, "Contents of event data that Amazon SES publishes to
Firehose"; the records are the same event objects SNS carries in ``Message``). Firehose
concatenates a buffer's records into one object as they are, so an object is one event
per line. SES puts many events per call, as the stream buffers them anyway: each publish
round of the simulator puts all of its due events with ``PutRecordBatch`` (in calls of
at most 500 records and 4 MiB, Firehose's limits); moto writes one object per call at
once, where Firehose would wait up to its buffer interval.

The simulator's clients are ``chalicelib.aws.client``'s, like Herald's own (its SNS,
Firehose and Lambda calls are SES's, SNS's and CloudWatch Logs' work in AWS, made
outside any handler invocation).
"""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses
from typing import Any, Literal

from chalicelib.aws import client
from chalicelib.domain import clock
from chalicelib.domain.mail_threads import header_message_id
from chalicelib.domain.replies import received_notification, reply_mail
from chalicelib.local.poller import invoke_handler
from chalicelib.local.services import Worker
from chalicelib.resources import PushStatusLogsSpec, SmsStatusLogsSpec, herald_resources
from chalicelib.settings import Settings, get_settings

SIMULATOR_DOMAIN = "simulator.amazonses.com"
PUBLISH_INTERVAL_SECONDS = 0.2
_ANCHOR = re.compile(r"""<a\s([^>]*?)href=["'](https?://[^"']+)["']""", re.IGNORECASE)
_USER_AGENT = "Mozilla/5.0 (Herald SES simulator)"
_SUPPRESSION_DIAGNOSTIC = (
    "Amazon SES did not send the message to this address because it is on the suppression "
    "list for your account. For more information about removing addresses from the "
    "suppression list, see the Amazon SES Developer Guide at "
    "https://docs.aws.amazon.com/ses/latest/DeveloperGuide/sending-email-suppression-list.html"
)


# How a pending record travels: published to an SNS topic (SES inbound's), published as
# SES publishes its sending events (``publish_ses_events``), or logged to a CloudWatch Logs
# group (an SMS or push status, delivered to the forwarder).
Route = Literal["topic", "ses_events", "logs"]
# PutRecordBatch takes at most 500 records and 4 MiB a call.
_BATCH_RECORDS = 500
_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class _Pending:
    due: float  # time.monotonic()
    destination: str  # a topic's, a stream's or a log group's name
    message: str
    route: Route = "topic"


def scenario(recipient: str, ses_message_id: str) -> list[str]:
    """The SES events (in order) the simulator publishes for a message to ``recipient``."""
    local, _, domain = recipient.lower().partition("@")
    if domain == SIMULATOR_DOMAIN:
        mailbox = local.split("+", 1)[0]
        fixed = {
            "success": ["Send", "Delivery"],
            "bounce": ["Send", "Bounce"],
            "complaint": ["Send", "Delivery", "Complaint"],
            "ooto": ["Delivery"],
            "suppressionlist": ["Bounce"],
        }
        if mailbox in fixed:
            return fixed[mailbox]
    settings = get_settings()
    roll = int(hashlib.sha256(ses_message_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    events = ["Send", "Delivery"]
    if roll < settings.simulator_open_rate:
        events.append("Open")
    if roll < min(settings.simulator_click_rate, settings.simulator_open_rate):
        events.append("Click")
    return events


def replies_to(
    params: Mapping[str, Any], ses_message_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The replies SES inbound would notify for one ``SendEmail`` call: from each
    ``reply``/``+reply`` recipient a person's answer, from ``ooto`` an automatic one."""
    raw = params.get("Content", {}).get("Raw", {}).get("Data")
    raw_bytes = raw if isinstance(raw, bytes) else (raw.encode() if raw else None)
    if raw_bytes is None:
        return []
    answering = [r for r in _recipients(params, raw_bytes) if _answers(r)]
    if not answering:
        return []  # the usual case; parsing every message sent was ~12 % of make bench
    sent = email.message_from_bytes(raw_bytes, policy=email.policy.default)
    settings = get_settings()
    quoted = header_message_id(ses_message_id, settings.region, settings.ses_message_id_domain)
    answer_to = str(sent.get("Reply-To") or sent.get("From") or params.get("FromEmailAddress"))
    address = next((a.addr_spec for a in getattr(sent["To"], "addresses", ())), "")
    notifications = []
    for recipient in answering:
        automatic = recipient.lower().partition("@")[0].partition("+")[0] == "ooto"
        to = next((a for _, a in getaddresses([answer_to]) if a), answer_to)
        subject = str(sent.get("Subject", ""))
        raw_reply = reply_mail(
            sender=address or recipient,
            to=to,
            subject=("Out of Office: " if automatic else "Re: ") + subject,
            quoted=[quoted],
            text="I am away." if automatic else "Thanks, let's talk.",
            automatic=automatic,
        )
        topic = _stack_topic_arn(settings, settings.inbound_topic_name)
        notifications.append(
            received_notification(raw_reply, to, uuid.uuid4().hex[:28], _iso(now), topic)
        )
    return notifications


def _answers(recipient: str) -> bool:
    """A ``reply``/``+reply`` or ``ooto`` mailbox of the simulator's domain: one that replies."""
    local, _, domain = recipient.lower().partition("@")
    mailbox, _, label = local.partition("+")
    return domain == SIMULATOR_DOMAIN and (mailbox in ("reply", "ooto") or label == "reply")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _recipients(params: Mapping[str, Any], raw: bytes | None) -> list[str]:
    listed = list(params.get("Destination", {}).get("ToAddresses", []))
    if listed or raw is None:
        return listed
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return [address.addr_spec for address in getattr(parsed["To"], "addresses", ())]


def ses_events(
    params: Mapping[str, Any], ses_message_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The records SES would publish for one ``SendEmail`` call (one per event, per
    recipient, of the types the configuration set publishes and the call's tracking
    overrides leave on), in the shape of SES's event-publishing examples."""
    raw = params.get("Content", {}).get("Raw", {}).get("Data")
    raw_bytes = raw if isinstance(raw, bytes) else (raw.encode() if raw else None)
    source = str(params.get("FromEmailAddress", ""))
    settings = get_settings()
    tags = {tag["Name"]: [tag["Value"]] for tag in params.get("EmailTags", [])}
    tags.update(
        {
            "ses:configuration-set": [params.get("ConfigurationSetName", "")],
            "ses:from-domain": [source.rpartition("@")[2]],
            "ses:caller-identity": ["herald"],
            "ses:source-ip": ["192.0.2.0"],
        }
    )
    published = _published_event_types(settings) - _untracked_event_types(params)
    # (seconds after the send, event): the offsets of SES's whole scenario, kept when the
    # configuration set leaves some of its events out
    scenarios = {
        recipient: [
            (offset, event)
            for offset, event in enumerate(scenario(recipient, ses_message_id), start=1)
            if event.lower() in published
        ]
        for recipient in _recipients(params, raw_bytes)
    }
    clicked = any(event == "Click" for events in scenarios.values() for _, event in events)
    link = _tracked_link(raw_bytes) if clicked else None
    records = []
    for recipient, events in scenarios.items():
        mail = {
            "timestamp": _iso(now),
            "source": source,
            "sourceArn": f"arn:aws:ses:{settings.region}:{settings.account_id}:identity/{source}",
            "sendingAccountId": settings.account_id,
            "messageId": ses_message_id,
            "destination": [recipient],
            "headersTruncated": False,
            "tags": tags,
        }
        for offset, event_type in events:
            if event_type == "Click" and link is None:
                continue  # no link SES would track: nothing to click
            at = now + timedelta(seconds=offset)
            records.append(_ses_record(event_type, mail, recipient, at, link or ""))
    return records


def _published_event_types(settings: Settings) -> frozenset[str]:
    """The event types the configuration set publishes, as lower-case SES event names
    (``DELIVERY_DELAY`` → ``deliverydelay``): SES drops the others, and so do we."""
    spec = herald_resources(settings).configuration_set
    return frozenset(t.replace("_", "").lower() for t in spec.event_types)


def _untracked_event_types(params: Mapping[str, Any]) -> frozenset[str]:
    """The events a send's tracking overrides turn off: SES adds no tracking image to a
    message with ``OpenTrackingEnabled = DISABLED``, so nothing can report its opening."""
    tracking = params.get("ConfigurationOverrides", {}).get("Tracking", {})
    return frozenset({"open"} if tracking.get("OpenTrackingEnabled") == "DISABLED" else ())


def _tracked_link(raw: bytes | None) -> str | None:
    """The first link SES would track in the message's HTML part: not the unsubscribe link,
    not one marked ``ses:no-track`` (``track_clicks: false``). None: SES reports no click."""
    if raw is None:
        return None
    html_part = email.message_from_bytes(raw, policy=email.policy.default).get_body(("html",))
    html = html_part.get_content() if html_part is not None else ""
    for match in _ANCHOR.finditer(html):
        attributes, url = match.groups()
        if "ses:no-track" not in attributes.lower() and "/u/" not in url:
            return str(url)
    return None


def _ses_record(
    event_type: str, mail: dict[str, Any], recipient: str, at: datetime, link: str
) -> dict[str, Any]:
    stamp = _iso(at)
    feedback_id = f"{uuid.uuid4().hex}-000000"
    sections: dict[str, tuple[str, dict[str, Any]]] = {
        "Send": ("send", {}),
        "Delivery": (
            "delivery",
            {
                "timestamp": stamp,
                "processingTimeMillis": 1000,
                "recipients": [recipient],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-30.smtp-out.amazonses.com",
            },
        ),
        "Complaint": (
            "complaint",
            {
                "complainedRecipients": [{"emailAddress": recipient}],
                "timestamp": stamp,
                "feedbackId": feedback_id,
                "userAgent": "Amazon SES Mailbox Simulator",
                "complaintFeedbackType": "abuse",
                "arrivalDate": stamp,
            },
        ),
        "Open": ("open", {"ipAddress": "192.0.2.1", "timestamp": stamp, "userAgent": _USER_AGENT}),
        "Click": (
            "click",
            {
                "ipAddress": "192.0.2.1",
                "link": link,
                "linkTags": {},
                "timestamp": stamp,
                "userAgent": _USER_AGENT,
            },
        ),
    }
    if event_type == "Bounce":
        sections["Bounce"] = ("bounce", _bounce(recipient, stamp, feedback_id))
    key, section = sections[event_type]
    return {"eventType": event_type, "mail": mail, key: section}


def _bounce(recipient: str, stamp: str, feedback_id: str) -> dict[str, Any]:
    mailbox = recipient.lower().partition("@")[0].split("+", 1)[0]
    if mailbox == "suppressionlist":
        return {
            "bounceType": "Permanent",
            "bounceSubType": "OnAccountSuppressionList",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": _SUPPRESSION_DIAGNOSTIC,
                }
            ],
            "timestamp": stamp,
            "feedbackId": feedback_id,
        }
    return {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": recipient,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": stamp,
        "feedbackId": feedback_id,
        "reportingMTA": "dsn; a8-30.smtp-out.amazonses.com",
    }


def sms_status(phone: str, sns_message_id: str, now: datetime) -> dict[str, Any]:
    """SNS's delivery-status log record for one SMS (the CloudWatch Logs format)."""
    settings = get_settings()
    invalid = phone in settings.simulator_invalid_numbers
    failing = invalid or phone in settings.simulator_failing_numbers
    return {
        "notification": {
            "messageId": sns_message_id,
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        },
        "delivery": {
            "mnc": 0 if failing else 270,
            "destination": phone,
            "priceInUSD": 0.00645,
            "smsType": "Promotional",
            "mcc": 0 if failing else 310,
            "providerResponse": (
                "Invalid phone number"
                if invalid
                else "Unknown error attempting to reach phone"
                if failing
                else "Message has been accepted by phone carrier"
            ),
            "dwellTimeMs": 599,
            "dwellTimeMsUntilDeviceAck": 1344,
        },
        "status": "FAILURE" if failing else "SUCCESS",
    }


def push_status(endpoint_arn: str, sns_message_id: str, now: datetime) -> dict[str, Any]:
    """SNS's delivery-status log record for one push FCM or APNs accepted (the CloudWatch
    Logs format; without the device token, which the simulator does not see)."""
    return {
        "status": "SUCCESS",
        "notification": {
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "messageId": sns_message_id,
        },
        "delivery": {
            "statusCode": 200,
            "dwellTimeMs": 48,
            "attempts": 1,
            "providerResponse": '{"success":1,"failure":0}',
            "destination": endpoint_arn,
        },
    }


def push_status_log_group(endpoint_arn: str) -> str:
    """The success log group of the endpoint's application
    (``arn:…:endpoint/<platform>/<application>/<id>`` → ``sns/…/app/<platform>/<application>``)."""
    settings = get_settings()
    _, platform, application, _ = endpoint_arn.split(":", 5)[5].split("/", 3)
    success, _ = PushStatusLogsSpec.log_groups(
        settings.region, settings.account_id, platform, application
    )
    return success


def sms_status_log_group(record: Mapping[str, Any]) -> str:
    """The log group SNS writes a status record to: successes and failures apart."""
    settings = get_settings()
    spec = herald_resources(settings).sms_status_logs
    success, failure = spec.log_group_suffixes
    suffix = success if record.get("status") == "SUCCESS" else failure
    return SmsStatusLogsSpec.log_group_prefix(settings.region, settings.account_id) + suffix


def logs_subscription_event(log_group: str, messages: list[str], now: datetime) -> dict[str, Any]:
    """CloudWatch Logs' event to a subscription's Lambda function: the log events, as JSON,
    gzipped and base64-encoded under ``awslogs.data``."""
    settings = get_settings()
    millis = int(now.timestamp() * 1000)
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": settings.account_id,
        "logGroup": log_group,
        "logStream": uuid.uuid4().hex,
        "subscriptionFilters": [
            herald_resources(settings).push_status_logs.filter_name
            if PushStatusLogsSpec.is_push_log_group(log_group)
            else f"{settings.prefix}-sms-status"
        ],
        "logEvents": [
            {"id": f"{millis}{index:06d}", "timestamp": millis, "message": message}
            for index, message in enumerate(messages)
        ],
    }
    data = gzip.compress(json.dumps(payload).encode())
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def _stack_topic_arn(settings: Settings, name: str) -> str:
    """The ARN of one of the stack's SNS topics (provisioned: it exists)."""
    return f"arn:aws:sns:{settings.region}:{settings.account_id}:{name}"


def publish_ses_events(events: list[str], clients: Callable[[str], Any] = client) -> None:
    """What SES does with sending events (JSON strings) for Herald's configuration set:
    publish each to its topic, or put them on its Firehose stream, each event's JSON and a
    newline a record, as many records a ``PutRecordBatch`` as Firehose takes. ``clients``
    makes the boto3 clients (``chalicelib.aws.client``'s by default)."""
    settings = get_settings()
    spec = herald_resources(settings).configuration_set
    if spec.stream is None:
        sns = clients("sns")
        assert spec.topic_name is not None  # one or the other (ConfigurationSetSpec)
        topic_arn = _stack_topic_arn(settings, spec.topic_name)
        for event in events:
            sns.publish(TopicArn=topic_arn, Message=event)
        return
    firehose, stream = clients("firehose"), spec.stream.stream
    batch: list[dict[str, bytes]] = []
    size = 0
    for event in events:
        data = f"{event}\n".encode()
        if batch and (len(batch) == _BATCH_RECORDS or size + len(data) > _BATCH_BYTES):
            firehose.put_record_batch(DeliveryStreamName=stream, Records=batch)
            batch, size = [], 0
        batch.append({"Data": data})
        size += len(data)
    if batch:
        firehose.put_record_batch(DeliveryStreamName=stream, Records=batch)


class FeedbackSimulator:
    """A local-stack service: hooks the SES and SNS clients, publishes their feedback."""

    name = "ses feedback simulator"
    _CAPTURED = "herald_simulator_params"

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self._topics: dict[str, str] = {}
        self._worker = Worker(self.name, self.publish_due, PUBLISH_INTERVAL_SECONDS)
        self._hooks: list[tuple[Any, str, Any]] = []

    # -- hooks --------------------------------------------------------------------------
    def install(self) -> FeedbackSimulator:
        """Start watching sends (tests call this without starting the publishing thread)."""
        for service, operation, react in (
            ("sesv2", "SendEmail", self._after_send_email),
            ("sns", "Publish", self._after_publish),
        ):
            events = client(service).meta.events
            for event, handler in (
                (f"provide-client-params.{service}.{operation}", self._capture),
                (f"after-call.{service}.{operation}", react),
            ):
                events.register(event, handler)
                self._hooks.append((events, event, handler))
        return self

    def uninstall(self) -> None:
        for events, event, handler in self._hooks:
            events.unregister(event, handler)
        self._hooks = []

    def _capture(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[self._CAPTURED] = dict(params)

    def _after_send_email(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params = context.get(self._CAPTURED)
        message_id = parsed.get("MessageId")
        if params is None or not message_id:
            return  # the call failed: SES publishes nothing either
        settings = get_settings()
        for record in ses_events(params, str(message_id), clock.now()):
            self._schedule(settings.ses_configuration_set, record, route="ses_events")
        for notification in replies_to(params, str(message_id), clock.now()):
            self._schedule(settings.inbound_topic_name, notification)

    def _after_publish(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params = context.get(self._CAPTURED) or {}
        phone, message_id = params.get("PhoneNumber"), parsed.get("MessageId")
        target = str(params.get("TargetArn") or "")
        if phone and message_id:  # an SMS, not a topic publish (like the simulator's own)
            record = sms_status(str(phone), str(message_id), clock.now())
            self._schedule(sms_status_log_group(record), record, route="logs")
        elif message_id and ":endpoint/" in target and get_settings().push_delivery_status:
            # A push: SNS logs it when the application names a role, as Herald's do then.
            record = push_status(target, str(message_id), clock.now())
            self._schedule(push_status_log_group(target), record, route="logs")

    def _schedule(
        self, destination: str, record: dict[str, Any], *, route: Route = "topic"
    ) -> None:
        due = time.monotonic() + get_settings().simulator_delay_seconds
        with self._lock:
            self._pending.append(_Pending(due, destination, json.dumps(record), route))

    # -- publishing ---------------------------------------------------------------------
    def pending_event_bytes(self) -> int:
        """The size of the SES events waiting to be put on the Firehose stream (what a
        caller emulating Firehose's size buffer weighs; see bench/harness.py)."""
        with self._lock:
            return sum(len(p.message) + 1 for p in self._pending if p.route == "ses_events")

    def publish_due(self, *, everything: bool = False) -> int:
        """Publish the events whose delay is over (all of them with ``everything``)."""
        now = time.monotonic()
        due: list[_Pending] = []
        waiting: list[_Pending] = []
        with self._lock:
            for pending in self._pending:
                (due if everything or pending.due <= now else waiting).append(pending)
            self._pending = waiting
        grouped: dict[tuple[Route, str], list[str]] = {}
        for pending in due:
            if pending.route == "topic":
                client("sns").publish(
                    TopicArn=self._topic_arn(pending.destination), Message=pending.message
                )
            else:
                grouped.setdefault((pending.route, pending.destination), []).append(pending.message)
        for (route, destination), messages in grouped.items():
            if route == "ses_events":
                publish_ses_events(messages)
            else:
                self._deliver_logs(destination, messages)
        return len(due)

    @staticmethod
    def _deliver_logs(log_group: str, messages: list[str]) -> None:
        """What a subscription filter on ``log_group`` does: invoke the forwarder."""
        spec = herald_resources(get_settings()).sms_status_logs
        event = logs_subscription_event(log_group, messages, clock.now())
        invoke_handler(spec.handler, event, spec.timeout_seconds)

    def flush(self) -> int:
        """Publish everything now (tests)."""
        return self.publish_due(everything=True)

    def _topic_arn(self, name: str) -> str:
        if name not in self._topics:
            self._topics[name] = str(client("sns").create_topic(Name=name)["TopicArn"])
        return self._topics[name]

    # -- service ------------------------------------------------------------------------
    def start(self) -> None:
        self.install()
        self._worker.start()

    def stop(self) -> None:
        self.uninstall()
        self._worker.stop()

    def join(self, timeout: float) -> bool:
        return self._worker.join(timeout)
