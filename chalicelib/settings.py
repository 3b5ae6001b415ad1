"""Herald's one settings object.

Every name of an AWS resource, every rate and limit, and the AWS endpoint come from
here and nowhere else. In AWS the values arrive as ``HERALD_*`` environment variables set
by the stack in ``infra/``; on a laptop the local runner sets the endpoint to moto's URL.
Resource names are derived from ``stage`` so that infra, the local provisioner and the
handlers agree without a second list of names.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator

QueueRole = Literal["control", "send", "feedback", "triggers", "callbacks", "flows", "replies"]
QUEUE_ROLES: tuple[QueueRole, ...] = (
    "control",
    "send",
    "feedback",
    "triggers",
    "callbacks",
    "flows",
    "replies",
)
ENV_PREFIX = "HERALD_"
# Fields the Lambda runtime sets, under its own names rather than HERALD_<FIELD>.
RUNTIME_VARIABLES = {"lambda_function": "AWS_LAMBDA_FUNCTION_NAME"}
# A send batch's recipients at most: one planner page's (pipeline.planner.PAGE_SIZE).
MAX_SEND_BATCH = 500


class Settings(BaseModel):
    """Configuration read once per process from ``HERALD_<FIELD>`` environment variables.

    ``Settings(stage="prod")`` reads the environment too; keyword arguments win over it.
    (A plain model rather than pydantic-settings, whose import alone cost every cold start
    more than reading a dozen variables does.)
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_environment(), **values})

    stage: str = Field(default="dev", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    region: str = "us-east-1"
    aws_endpoint_url: str | None = Field(
        default=None, description="Unset in AWS; moto's URL on a laptop and in tests."
    )
    account_id: str = Field(
        default="123456789012",
        description="Used only to build ARNs locally; in AWS the stack passes the real one.",
    )

    # Sending limits.
    ses_max_send_rate: float = Field(default=14.0, gt=0, description="SES account sends/second.")
    send_batch_size: int = Field(
        default=100,
        ge=1,
        le=MAX_SEND_BATCH,
        description=(
            "Recipients per send batch (one queue message, one lease, one set of counter "
            "writes and one completion check). Larger batches share those calls more "
            "widely (500: 0.08 AWS calls and $0.05 per million emails fewer than 100, "
            "bench/README.md); a worker must send a batch well within its lease, so keep "
            "it under 60 s of one worker's pace (ses_max_send_rate / send_workers)."
        ),
    )
    send_concurrency: int = Field(default=8, ge=1, le=64)
    send_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "Threads that carry a round of send_concurrency sends (None: one per send). "
            "Fewer only where a send waits on no network: the benchmark's in-process AWS "
            "(bench/herald_time.py), where more threads would only take turns at the GIL. "
            "A round is still send_concurrency sends, recorded together."
        ),
    )
    send_workers: int = Field(
        default=4,
        ge=1,
        le=1000,
        description=(
            "Reserved concurrency of the send worker Lambda. Each worker paces itself to "
            "ses_max_send_rate / send_workers, so together they never exceed the account rate."
        ),
    )
    plan_chains: int = Field(
        default=32,
        ge=1,
        le=256,
        description=(
            "Planning chains a broadcast's audience is split into (docs/engine.md, "
            "'Planning chains'): a divisor of the 16 contact shards, or a multiple of 16."
        ),
    )
    sms_max_send_rate: float = Field(default=20.0, gt=0, description="SNS SMS sends/second.")
    push_max_send_rate: float = Field(
        default=100.0, gt=0, description="SNS mobile push publishes/second."
    )
    telegram_max_send_rate: float = Field(
        default=25.0,
        gt=0,
        description="Bot API sendMessage calls/second (Telegram allows about 30 per bot).",
    )
    onsite_max_send_rate: float = Field(
        default=200.0, gt=0, description="On-site inbox writes/second (DynamoDB puts)."
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        description=(
            "The Bot API's base URL; the embedded stack points it at its fake Bot API. "
            "Called through the SSRF-safe client (loopback only where callbacks allow it)."
        ),
    )
    onsite_retention_days: int = Field(
        default=90, ge=1, le=3650, description="On-site inbox messages expire after this long."
    )
    contact_token_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="How long a contact token (the on-site inbox's Bearer) stays valid.",
    )
    quota_retry_minutes: int = Field(
        default=60,
        ge=1,
        le=1440,
        description=(
            "A campaign paused because the provider's daily quota is spent resumes by itself "
            "after this long (SES's quota is a rolling 24-hour window); spent again, it "
            "pauses again."
        ),
    )
    render_failure_pause_count: int = Field(
        default=20,
        ge=1,
        description="A batch with at least this many render failures (and the share below)…",
    )
    render_failure_pause_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="…among the recipients it tried pauses its campaign with the reason.",
    )
    stuck_campaign_minutes: int = Field(
        default=10,
        ge=1,
        description=(
            "The watchdog re-drives, then fails, a calculating or sending campaign whose "
            "progress has not moved for this long with no live lease."
        ),
    )

    # The deliverability breaker (docs/engine.md): a campaign whose complaint or
    # hard-bounce rate over a window crosses its limit pauses itself, once the window
    # holds breaker_min_volume messages with a delivery outcome. Rates are fractions.
    breaker_complaint_rate_1h: float = Field(default=0.01, gt=0, le=1)
    breaker_complaint_rate_24h: float = Field(default=0.003, gt=0, le=1)
    breaker_hard_bounce_rate_1h: float = Field(default=0.10, gt=0, le=1)
    breaker_hard_bounce_rate_24h: float = Field(default=0.05, gt=0, le=1)
    breaker_min_volume: int = Field(default=300, ge=1)
    # The delivery gate of automation iterations (docs/engine.md).
    gate_settled_share: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="An iteration's feedback has settled when this share of its sends has "
        "an outcome (delivered, bounced, complained, rejected)…",
    )
    gate_settle_minutes: int = Field(
        default=30, ge=1, description="…or this long after its last send, whichever first."
    )
    gate_poll_seconds: int = Field(
        default=60,
        ge=1,
        le=900,
        description="How long a settling iteration waits before its counters are read "
        "again (an SQS delay: one read a minute in AWS); tests and demos set 1.",
    )
    automation_interval_unit_seconds: int = Field(
        default=60,
        ge=1,
        le=60,
        description="Seconds in one of an automation's send_interval minutes; tests and "
        "demos set 1 (an interval of 10 is then 10 s).",
    )

    # Address verification (docs/engine.md): where domain records come from.
    verification_resolver: Literal["dns", "stub"] = Field(
        default="dns", description="stub: no network (the embedded stack and the tests)."
    )
    verification_dns_timeout_seconds: float = Field(default=2.0, gt=0, le=10)

    # Per-tenant limits: the defaults; an admin sets a tenant's own (chalicelib.domain.limits).
    limit_sends_per_day: int = Field(default=100_000, ge=0)
    limit_test_sends_per_hour: int = Field(default=100, ge=0)
    limit_sms_per_day: int = Field(default=1_000, ge=0)
    limit_requests_per_minute: int = Field(
        default=6_000, ge=1, description="API requests a minute per tenant (all its keys)."
    )
    limit_sms_countries: list[str] = Field(
        default=["*"], description="ISO 3166 codes SMS may go to by default; '*' is all."
    )
    limit_api_keys: int = Field(default=20, ge=1)
    limit_templates: int = Field(default=1_000, ge=0)
    limit_senders: int = Field(default=100, ge=0)
    limit_webhooks: int = Field(default=20, ge=0)

    # Feedback and callbacks.
    feedback_events_per_invocation: int = Field(
        default=1_000,
        ge=100,
        le=5_000,
        description=(
            "SES events one feedback invocation applies from Firehose's objects of events "
            "(docs/feedback.md, 'Events in objects'): each costs about one DynamoDB round "
            "trip (~6 ms), so 1,000 take ~6 s of the worker's 60 s; the rest of an object "
            "goes on in a continuation message."
        ),
    )
    callback_window_seconds: int = Field(default=60, ge=1, le=240)
    allow_loopback_callbacks: bool = Field(
        default=False, description="Only the embedded stack turns this on."
    )
    callback_ports: list[int] = Field(
        default=[80, 443],
        min_length=1,
        description=(
            "The only ports webhooks and event callbacks may be sent to (SSRF policy); an "
            "operator widens the list here. Loopback, when allowed, takes any port."
        ),
    )
    callback_deadline_seconds: float = Field(
        default=5.0,
        gt=0,
        le=5.0,
        description=(
            "One deadline for a whole delivery attempt: DNS, connect, TLS, request, response "
            "headers. At most 5 s so that a callbacks batch (10 deliveries, one after the "
            "other) always ends inside the worker's 60 s timeout."
        ),
    )

    # How SES's sending events reach the feedback queue (docs/feedback.md, "How SES's events
    # travel"). "sns": one SNS publish per event ($0.50 per million), on the queue within
    # seconds. "firehose": Firehose buffers the events into S3 objects ($0.029 per GB, each
    # record rounded up to 5 KB: about $0.15 per million) and S3 notifies the queue of each
    # object, up to the buffer interval (60 s) later.
    ses_events_transport: Literal["firehose", "sns"] = Field(
        default="firehose",
        description="firehose: SES's events as S3 objects via Firehose, $0.35 per million "
        "emails cheaper and up to a minute later; sns: one SNS notification per event.",
    )

    # Replies and mail threads (docs/api-seed-001.md, "Stop on reply").
    ses_message_id_domain: str | None = Field(
        default=None,
        description="The domain SES writes after its id in Message-ID; unset: derived from "
        "the region (email.amazonses.com in us-east-1, <region>.amazonses.com elsewhere).",
    )
    push_delivery_status: bool = Field(
        default=False,
        description="Log each push's delivery status (SNS platform-application attributes) "
        "and subscribe the status forwarder to the logs when a push sender is made. The stack "
        "sets it; off locally, where moto has no forwarder function to subscribe.",
    )
    reply_domain: str | None = Field(
        default=None,
        description="The domain SES receives replies for (an MX record to SES inbound in a "
        "region that offers it); unset: no receipt rule, no reply+token addresses.",
    )
    sequence_delay_unit_seconds: int = Field(
        default=60,
        ge=1,
        le=60,
        description="Seconds in one of seed 001's delay_minutes; tests and demos set 1.",
    )

    # The embedded stack's SES/SNS feedback simulator (chalicelib.local.ses_simulator).
    simulator_open_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of ordinary addresses that 'open'."
    )
    simulator_click_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share that 'click' (within those that open)."
    )
    simulator_failing_numbers: list[str] = Field(
        default=["+61491570159"],  # an Australian number reserved for fiction
        description="Phone numbers whose SMS fail for a while ('Unknown error attempting "
        "to reach phone': soft_bounced).",
    )
    simulator_invalid_numbers: list[str] = Field(
        default=["+61491570158"],  # also reserved for fiction
        description="Phone numbers whose SMS fail for good ('Invalid phone number': bounced).",
    )
    simulator_delay_seconds: float = Field(
        default=1.0, ge=0, le=60, description="How long after a send its events are published."
    )

    # API Gateway stage throttling (infra/gateway.py): the whole API, every tenant together;
    # beyond it API Gateway answers 429 in Herald's error shape without calling Herald.
    api_throttle_rate: float = Field(
        default=100.0, gt=0, description="Steady requests per second the API stage accepts."
    )
    api_throttle_burst: int = Field(
        default=200, ge=1, description="Requests the API stage accepts at once above the rate."
    )

    lambda_function: str | None = Field(
        default=None,
        description=(
            "The Lambda function this process runs as (Lambda sets AWS_LAMBDA_FUNCTION_NAME): "
            "app.py imports only what that function runs. Unset (chalice package, the tests, "
            "the local stack): every function's modules."
        ),
    )

    # Public base URL of the API, used to build unsubscribe links.
    public_base_url: str = "http://127.0.0.1:8000"

    # Contact timelines: raw events expire (DynamoDB TTL); per-name summaries on the contact stay.
    event_timeline_retention_days: int = Field(default=365, ge=1, le=3650)

    @field_validator("plan_chains")
    @classmethod
    def _splits_the_contact_shards(cls, chains: int) -> int:
        # 16 = chalicelib.store.contacts.CONTACT_SHARDS (settings import nothing of Herald's)
        if not (16 % chains == 0 or chains % 16 == 0):
            raise ValueError("plan_chains must divide 16 or be a multiple of 16")
        return chains

    @property
    def prefix(self) -> str:
        return f"herald-{self.stage}"

    @property
    def table_name(self) -> str:
        return f"{self.prefix}-table"

    def queue_name(self, role: QueueRole) -> str:
        return f"{self.prefix}-{role}"

    def dead_letter_queue_name(self, role: QueueRole) -> str:
        return f"{self.prefix}-{role}-dlq"

    @property
    def ses_events_topic_name(self) -> str:
        """The SNS topic SES publishes its sending events to (transport "sns" only)."""
        return f"{self.prefix}-ses-events"

    @property
    def ses_events_stream_name(self) -> str:
        """The Firehose stream SES publishes its sending events to (transport "firehose")."""
        return f"{self.prefix}-ses-events"

    @property
    def ses_events_bucket_name(self) -> str:
        """Where that stream writes its objects (S3 names are global: account and region)."""
        return f"{self.prefix}-ses-events-{self.account_id}-{self.region}"

    @property
    def ses_events_object_prefix(self) -> str:
        """The key prefix of the stream's objects, the one the bucket notifies the queue of."""
        return "ses-events/"

    @property
    def inbound_topic_name(self) -> str:
        """SES inbound's Received notifications for the reply domain (the replies queue)."""
        return f"{self.prefix}-inbound"

    @property
    def inbound_bucket_name(self) -> str:
        """Where SES inbound stores received mail (read when it is over 150 KB)."""
        return f"{self.prefix}-inbound-{self.account_id}-{self.region}"

    @property
    def event_bus_name(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def schedule_group_name(self) -> str:
        return f"{self.prefix}-schedules"

    @property
    def scheduler_role_name(self) -> str:
        return f"{self.prefix}-scheduler"

    @property
    def scheduler_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.scheduler_role_name}"

    @property
    def push_status_role_name(self) -> str:
        """The role SNS logs push delivery status with (the stack makes it)."""
        return f"{self.prefix}-push-status"

    @property
    def push_status_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.push_status_role_name}"

    def function_name(self, handler: str) -> str:
        """A Lambda function's name (fixed, so logs and integrations can find it by name)."""
        return f"{self.prefix}-{handler}"

    @property
    def lambda_handler(self) -> str | None:
        """The handler in app.py the running Lambda function serves (``function_name``'s
        inverse); None outside Lambda or for a function name this stage did not give."""
        name = self.lambda_function or ""
        handler = name.removeprefix(f"{self.prefix}-")
        return handler if handler != name else None

    def function_arn(self, handler: str) -> str:
        return (
            f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name(handler)}"
        )

    @property
    def ses_configuration_set(self) -> str:
        return f"{self.prefix}-mail"

    def queue_arn(self, role: QueueRole) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.queue_name(role)}"


def _environment() -> dict[str, Any]:
    """The fields whose variable is set, as strings for pydantic to convert; a list is JSON."""
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        raw = os.environ.get(RUNTIME_VARIABLES.get(name, f"{ENV_PREFIX}{name.upper()}"))
        if raw is not None:
            values[name] = json.loads(raw) if get_origin(field.annotation) is list else raw
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
