"""The one definition of Herald's AWS resources.

``infra/`` renders this into CloudFormation and ``chalicelib.local.provision`` creates the
same things in moto, so names and settings cannot drift between a laptop and AWS. It is
plain data: nothing here calls AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.settings import QUEUE_ROLES, QueueRole, Settings

VISIBILITY_PER_TIMEOUT = 6
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class QueueSpec:
    """A work queue, its dead-letter queue and the Lambda handler that consumes it."""

    role: QueueRole
    name: str
    dead_letter_name: str
    handler: str  # function name in app.py
    consumer_timeout_seconds: int
    batch_size: int
    max_batching_window_seconds: int = 0
    memory_mb: int | None = None  # None: the app's lambda_memory_size (.chalice/config.json)
    max_receive_count: int = MAX_RECEIVE_COUNT
    retention_seconds: int = 4 * 24 * 3600
    dead_letter_retention_seconds: int = 14 * 24 * 3600

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.consumer_timeout_seconds * VISIBILITY_PER_TIMEOUT


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index. ``KEYS_ONLY`` holds the table's and its own keys only, so
    a write that leaves its keys alone costs no index write (``ALL`` copies every change)."""

    name: str
    partition_key: str
    sort_key: str
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_key: str = "pk"
    sort_key: str = "sk"
    ttl_attribute: str = "expires_at"
    indexes: tuple[IndexSpec, ...] = (
        IndexSpec("gsi1", "gsi1pk", "gsi1sk"),
        IndexSpec("gsi2", "gsi2pk", "gsi2sk"),
    )


@dataclass(frozen=True)
class TopicSpec:
    """An SNS topic whose notifications are delivered to one of our queues."""

    name: str
    delivers_to: QueueRole
    published_by: str  # the AWS service principal the topic policy lets publish


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule on Herald's bus that forwards matching events to a queue."""

    name: str
    event_pattern: dict[str, Any]
    delivers_to: QueueRole


@dataclass(frozen=True)
class SesEventsStreamSpec:
    """SES's sending events through Amazon Data Firehose into S3 (transport "firehose").

    SES puts each event on the stream as one record (its JSON and a newline); Firehose
    buffers the records into one S3 object per ``buffer_mib`` or ``buffer_seconds``,
    whichever comes first, uncompressed, under ``object_prefix``; the bucket notifies
    ``delivers_to`` of each object (``s3:ObjectCreated:*`` on that prefix) and the
    feedback worker reads the object's events. Firehose bills each record rounded up to
    5 KB at $0.029 per GB, about $0.15 per million events against SNS's $0.50
    (docs/feedback.md). ``publisher_role`` is the role SES puts records with,
    ``delivery_role`` the one Firehose writes the bucket with.
    """

    stream: str
    bucket: str
    object_prefix: str
    publisher_role: str
    delivery_role: str
    delivers_to: QueueRole = "feedback"
    buffer_mib: int = 1
    buffer_seconds: int = 60
    # The worker reads an object within minutes of its notification; kept a while to debug.
    keep_days: int = 3


@dataclass(frozen=True)
class ConfigurationSetSpec:
    """The SES configuration set every email is sent with, and where it publishes events:
    to the SNS topic ``topic_name`` or to the Firehose stream ``stream``, exactly one of
    them (``Settings.ses_events_transport`` chooses)."""

    name: str
    event_destination: str
    topic_name: str | None = None
    stream: SesEventsStreamSpec | None = None
    # No SEND: Herald records "sent" in its ledger when SES accepts the message, so a Send
    # event would add nothing but an SNS publish, a queue message and a feedback worker's
    # share per email (half the feedback traffic: bench/README.md).
    event_types: tuple[str, ...] = (
        "REJECT",
        "BOUNCE",
        "COMPLAINT",
        "DELIVERY",
        "OPEN",
        "CLICK",
        "RENDERING_FAILURE",
        "DELIVERY_DELAY",
        "SUBSCRIPTION",
    )

    def __post_init__(self) -> None:
        if (self.topic_name is None) == (self.stream is None):
            raise ValueError("a configuration set publishes to a topic or a stream, not both")

    @property
    def camel_case_event_types(self) -> tuple[str, ...]:
        """The event types as SES v1 and CloudFormation spell them (``renderingFailure``)."""
        return tuple(_camel_case(t) for t in self.event_types)


def _camel_case(shouted: str) -> str:
    head, *rest = shouted.lower().split("_")
    return head + "".join(word.capitalize() for word in rest)


@dataclass(frozen=True)
class SmsStatusLogsSpec:
    """SNS's SMS delivery-status logs and the function that forwards them to the feedback queue.

    SNS writes the status of each SMS to CloudWatch Logs only (docs/feedback.md says why
    Herald reads them there): successes to ``sns/<region>/<account>/DirectPublishToPhoneNumber``,
    failures to ``…/Failure``, names SNS fixes per account and region. A subscription filter
    on each invokes ``handler``; the invocations Lambda gives up on go to ``dead_letter_name``.
    """

    handler: str
    dead_letter_name: str
    log_group_suffixes: tuple[str, ...] = (
        "DirectPublishToPhoneNumber",
        "DirectPublishToPhoneNumber/Failure",
    )
    # Percentage of successful SMS SNS logs (failures are always logged): all of them, or
    # the campaign's "delivered" count would be a sample.
    success_sampling_rate: int = 100
    timeout_seconds: int = 60
    log_retention_days: int = 30
    dead_letter_retention_seconds: int = 14 * 24 * 3600

    @staticmethod
    def log_group_prefix(region: str, account_id: str) -> str:
        return f"sns/{region}/{account_id}/"


@dataclass(frozen=True)
class PushStatusLogsSpec:
    """SNS's push delivery-status logs: one pair of log groups per platform application.

    SNS logs a push's status only for an application whose attributes name a role to log
    with (``SuccessFeedbackRoleArn``, ``FailureFeedbackRoleArn``): successes to
    ``sns/<region>/<account>/app/<platform>/<application>``, failures to ``…/Failure``.
    Applications are made per push sender at run time, so the stack cannot name their
    groups: the push channel makes both groups and subscribes ``forwarder_arn`` (the
    forwarder of SMS status too) to each when it makes the application, with the role
    ``role_arn`` the stack made (docs/feedback.md, "Push delivery status").
    """

    enabled: bool
    role_name: str
    role_arn: str
    forwarder_arn: str
    filter_name: str
    # Percentage of successful pushes SNS logs (failures are always logged): all of them,
    # or the campaign's "delivered" count would be a sample.
    success_sampling_rate: int = 100
    log_retention_days: int = 30

    @staticmethod
    def log_groups(
        region: str, account_id: str, platform: str, application: str
    ) -> tuple[str, str]:
        """The success and failure log groups of one platform application."""
        success = (
            f"{SmsStatusLogsSpec.log_group_prefix(region, account_id)}app/{platform}/{application}"
        )
        return success, f"{success}/Failure"

    @staticmethod
    def is_push_log_group(log_group: str) -> bool:
        """Whether ``log_group`` is an application's (``sns/<region>/<account>/app/…``), not
        the SMS groups (``sns/<region>/<account>/DirectPublishToPhoneNumber…``)."""
        parts = log_group.split("/")
        return len(parts) > 3 and parts[0] == "sns" and parts[3] == "app"


@dataclass(frozen=True)
class InboundSpec:
    """SES inbound for replies: the bucket every received mail is stored in, the topic
    notified of it, and the receipt rule set (only with a reply domain)."""

    bucket: str
    topic_name: str
    rule_set: str
    reply_domain: str | None
    object_prefix: str = "replies/"
    keep_days: int = 30


@dataclass(frozen=True)
class HeraldResources:
    table: TableSpec
    queues: tuple[QueueSpec, ...]
    topics: tuple[TopicSpec, ...]
    event_bus: str
    rules: tuple[RuleSpec, ...]
    schedule_group: str
    scheduler_role: str
    configuration_set: ConfigurationSetSpec
    sms_status_logs: SmsStatusLogsSpec
    push_status_logs: PushStatusLogsSpec
    inbound: InboundSpec
    tick_handler: str = "tick"
    api_handler: str = "api_handler"

    def queue(self, role: QueueRole) -> QueueSpec:
        return next(q for q in self.queues if q.role == role)

    @property
    def handlers(self) -> tuple[str, ...]:
        """Every Lambda function's handler in app.py (each its own function: infra/)."""
        consumers = tuple(spec.handler for spec in self.queues)
        return (self.api_handler, *consumers, self.tick_handler, self.sms_status_logs.handler)


# Per queue: (handler in app.py, Lambda timeout in seconds, batch size, batching window).
_CONSUMERS: dict[QueueRole, tuple[str, int, int, int]] = {
    "control": ("control_worker", 60, 1, 0),
    "send": ("send_worker", 120, 1, 0),
    # 100 events per invocation (Lambda gathers them with 10 receives): the batch's campaign
    # read, webhook lookup and counter write are shared by 100 events instead of 10.
    "feedback": ("feedback_worker", 60, 100, 1),
    "triggers": ("trigger_worker", 60, 10, 1),
    "callbacks": ("callback_worker", 60, 10, 0),
    # Flow steps (docs/flows.md): one enrolment woken per message, walked until it waits.
    "flows": ("flow_worker", 120, 10, 0),
    # Replies through SES inbound (docs/api-seed-001.md): matched, counted, forwarded.
    "replies": ("reply_worker", 60, 10, 0),
}


def consumer_timeout_seconds(role: QueueRole) -> int:
    """How long ``role``'s consumer may run (its Lambda timeout; the same in every stage):
    what leases and claims are sized by, on hot paths, so read from the table without
    building every resource's spec (``herald_resources``)."""
    return _CONSUMERS[role][1]


# SNS's SMS and push delivery-status logs → the feedback queue (pipeline.status_logs).
_STATUS_FORWARDER = "sms_status_forwarder"

# The planner is one chain of pages, each CPU-bound (parsing 500 contacts, filtering,
# cutting batches): at 512 MB Lambda gives it ~0.29 vCPU and it plans ~1,000 recipients a
# second; at 1,769 MB (one full vCPU) ~1,850. It runs once per 500 recipients, so the
# larger size costs ~$0.02 per million emails (bench/README.md, "10 million an hour").
_CONSUMER_MEMORY_MB: dict[QueueRole, int] = {"control": 1769}


def herald_resources(settings: Settings) -> HeraldResources:
    """Everything Herald needs in an AWS account, named for ``settings.stage``."""
    queues = tuple(
        QueueSpec(
            role=role,
            name=settings.queue_name(role),
            dead_letter_name=settings.dead_letter_queue_name(role),
            handler=_CONSUMERS[role][0],
            consumer_timeout_seconds=consumer_timeout_seconds(role),
            batch_size=_CONSUMERS[role][2],
            max_batching_window_seconds=_CONSUMERS[role][3],
            memory_mb=_CONSUMER_MEMORY_MB.get(role),
        )
        for role in QUEUE_ROLES
    )
    configuration_set = _configuration_set(settings)
    ses_events_topics = (
        ()
        if configuration_set.topic_name is None
        else (
            TopicSpec(
                configuration_set.topic_name,
                delivers_to="feedback",
                published_by="ses.amazonaws.com",
            ),
        )
    )
    return HeraldResources(
        table=TableSpec(name=settings.table_name),
        queues=queues,
        topics=(
            *ses_events_topics,
            TopicSpec(
                settings.inbound_topic_name,
                delivers_to="replies",
                published_by="ses.amazonaws.com",
            ),
        ),
        event_bus=settings.event_bus_name,
        rules=(
            RuleSpec(
                name=f"{settings.prefix}-tenant-events",
                # Any event that names its tenant; detail-type is the event name.
                event_pattern={"detail": {"tenant_id": [{"exists": True}]}},
                delivers_to="triggers",
            ),
        ),
        schedule_group=settings.schedule_group_name,
        scheduler_role=settings.scheduler_role_name,
        configuration_set=configuration_set,
        sms_status_logs=SmsStatusLogsSpec(
            handler=_STATUS_FORWARDER,
            dead_letter_name=f"{settings.prefix}-sms-status-dlq",
        ),
        push_status_logs=PushStatusLogsSpec(
            enabled=settings.push_delivery_status,
            role_name=settings.push_status_role_name,
            role_arn=settings.push_status_role_arn,
            forwarder_arn=settings.function_arn(_STATUS_FORWARDER),
            filter_name=f"{settings.prefix}-push-status",
        ),
        inbound=InboundSpec(
            bucket=settings.inbound_bucket_name,
            topic_name=settings.inbound_topic_name,
            rule_set=f"{settings.prefix}-replies",
            reply_domain=settings.reply_domain,
        ),
    )


def _configuration_set(settings: Settings) -> ConfigurationSetSpec:
    """The configuration set publishing to the transport the settings choose."""
    name = settings.ses_configuration_set
    if settings.ses_events_transport == "sns":
        return ConfigurationSetSpec(
            name=name,
            event_destination=f"{settings.prefix}-events-to-sns",
            topic_name=settings.ses_events_topic_name,
        )
    stream = SesEventsStreamSpec(
        stream=settings.ses_events_stream_name,
        bucket=settings.ses_events_bucket_name,
        object_prefix=settings.ses_events_object_prefix,
        publisher_role=f"{settings.prefix}-ses-events-publisher",
        delivery_role=f"{settings.prefix}-ses-events-delivery",
    )
    return ConfigurationSetSpec(
        name=name, event_destination=f"{settings.prefix}-events-to-firehose", stream=stream
    )
