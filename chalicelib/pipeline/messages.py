"""Every message Herald puts on its queues: one pydantic model per kind, for producer and consumer.

A producer builds the model and queues ``as_message()``; the consumer validates the body
with the same model. A field added, renamed or retyped here changes both sides at once,
so a message can never be written in one shape and read in another.

Models ignore fields they do not know: during a deployment, messages written by the new
version may be read by the old one (and the reverse) for as long as a queue holds them.

Some kinds are not Herald's own: EventBridge envelopes (bus events, provider feedback),
SNS notifications, S3 event notifications (an object of SES events written by Firehose)
and raw SES event records (one of such an object's, queued again alone) arrive without a
``kind`` and are recognised by their shape (``chalicelib.pipeline.dispatch``); SNS's SMS
and push delivery-status log records name no tenant and come wrapped by the status
forwarder (``pipeline.status_logs``) as ``{"kind": SMS_STATUS | PUSH_STATUS, "status":
<record>}``. ``ENVELOPES`` names them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from chalicelib.domain.feedback import PUSH_STATUS_KIND, SMS_STATUS_KIND, CallbackEvent
from chalicelib.domain.model import Model
from chalicelib.settings import MAX_SEND_BATCH, QueueRole

EVENTBRIDGE = "eventbridge"  # the kind of bus events, which carry no ``kind`` of their own
SNS = "sns"  # the kind of SNS notifications (SNS → SQS, not raw): provider feedback
SMS_STATUS = SMS_STATUS_KIND  # an SNS SMS status log record, as the forwarder queues it
PUSH_STATUS = PUSH_STATUS_KIND  # an SNS push status log record, likewise
S3 = "s3"  # an S3 event notification: Firehose wrote an object of SES events
SES = "ses"  # a raw SES event record: one of an object's, queued again alone
# The queues each foreign envelope reaches (by infra's subscriptions and bus rules).
ENVELOPES: dict[str, frozenset[QueueRole]] = {
    EVENTBRIDGE: frozenset({"feedback", "triggers"}),
    SNS: frozenset({"feedback", "replies"}),  # SES events; SES inbound's received mail
    SMS_STATUS: frozenset({"feedback"}),
    PUSH_STATUS: frozenset({"feedback"}),
    S3: frozenset({"feedback"}),
    SES: frozenset({"feedback"}),
}


class QueueMessage(Model):
    """A message of one ``KIND`` that travels on one ``QUEUE``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    KIND: ClassVar[str]
    QUEUE: ClassVar[QueueRole]

    tenant_id: str = Field(min_length=1)

    def as_message(self) -> dict[str, Any]:
        """The JSON object to queue: the fields plus ``kind``."""
        return {"kind": self.KIND, **self.model_dump(mode="json", exclude_none=True)}


class StartCampaign(QueueMessage):
    """Start a due campaign (from its schedule, send-now, or the overdue sweep)."""

    KIND = "campaign.start"
    QUEUE = "control"

    campaign_id: str


class PlanMessage(QueueMessage):
    """Plan one page of a started campaign's audience: which page, where it starts, totals."""

    KIND = "campaign.plan"
    QUEUE = "control"

    campaign_id: str
    page: int = Field(ge=0)
    cursor: str | None = None
    chain: int = Field(default=0, ge=0, description="Which part of the audience (of chains).")
    chains: int = Field(default=1, ge=1, description="Chains the audience is planned in.")
    recipients: int = Field(
        default=0, ge=0, description="Audience members on the chain's earlier pages."
    )
    batches: int = Field(
        default=0, ge=0, description="Batches planned on the chain's earlier pages."
    )
    quota: int | None = Field(
        default=None,
        ge=0,
        description="An automation's iteration: recipients it may still plan.",
    )


class IterationSettle(QueueMessage):
    """See whether an automation's iteration has its feedback in; then gate the next."""

    KIND = "automation.settle"
    QUEUE = "control"

    campaign_id: str
    iteration: int = Field(ge=1)


class IterationStart(QueueMessage):
    """Start an automation's next iteration (from its schedule, or a resume)."""

    KIND = "automation.iterate"
    QUEUE = "control"

    campaign_id: str
    iteration: int = Field(ge=2)


class BatchMessage(QueueMessage):
    """Send one batch of a campaign's recipients."""

    KIND = "send.batch"
    QUEUE = "send"

    campaign_id: str
    step: str = "main"
    batch_id: str = Field(min_length=1, max_length=200)
    recipients: list[str] = Field(max_length=MAX_SEND_BATCH)
    not_before: datetime | None = Field(
        default=None, description="Quiet hours: not to be sent before this instant."
    )
    pause_hops: int = Field(default=0, ge=0, description="How often it found the campaign paused.")


class ImportChunk(QueueMessage):
    """Work through one chunk of a bulk import."""

    KIND = "import.chunk"
    QUEUE = "control"

    import_id: str
    chunk: int = Field(ge=0)


class ListPurge(QueueMessage):
    """Clear one more page of a deleted list's members."""

    KIND = "list.purge"
    QUEUE = "control"

    list_id: str


class SegmentCheck(QueueMessage):
    """Re-evaluate the watched segments of these contacts: they changed without a
    ``contact.saved`` on the bus (list membership, an import that publishes no events).
    ``created`` names those the change created (they were in no segment before)."""

    KIND = "segment.check"
    QUEUE = "triggers"

    contact_ids: list[str] = Field(min_length=1, max_length=500)
    created: list[str] = Field(default_factory=list, max_length=500)


class SegmentSweep(QueueMessage):
    """Re-evaluate ``segment_ids`` for one more page of the tenant's contacts: the hourly
    sweep of time-relative segments, or the baseline walk of a new revision."""

    KIND = "segment.sweep"
    QUEUE = "control"

    segment_ids: list[str] = Field(min_length=1, max_length=100)
    cursor: str | None = None


class SegmentSweepTenants(QueueMessage):
    """Go on with the hourly sweep: one more page of tenants (the tick does the first)."""

    KIND = "segment.sweep_tenants"
    QUEUE = "control"

    tenant_id: str = Field(default="SYS", min_length=1, description="No tenant: all of them.")
    cursor: str | None = None


class FlowWake(QueueMessage):
    """Wake one enrolment that stands on ``visit`` (docs/flows.md): the flow worker takes
    its steps until it waits or exits. A wake whose visit is no longer the enrolment's
    (a duplicate, a stale timer) changes nothing. ``event`` is the event that woke it
    (a ``wait_for_event`` or a goal), as the timeline stores it."""

    KIND = "flow.wake"
    QUEUE = "flows"

    campaign_id: str
    contact_id: str
    visit: int = Field(ge=0)
    event: dict[str, Any] | None = None


class EndFlow(QueueMessage):
    """Complete a flow whose ``ends_at`` has come (from its schedule or the overdue sweep).
    A flow whose ``ends_at`` moved later, or that is no longer live, is left alone."""

    KIND = "flow.end"
    QUEUE = "control"

    campaign_id: str


class EnterAudience(QueueMessage):
    """Enrol one page of whom a trigger selects, at the trigger ``node_id``, each next page
    queued by the one before: a ``trigger.scheduled`` that fired at ``fire_at`` (page 0
    from its schedule) enters the flow's audience; a trigger processed ``by_hand`` (seed
    004's ``process_trigger`` at ``fire_at``, pages after the request's first) enters the
    audience, or the members of ``segment_id`` when it names one."""

    KIND = "flow.enter_audience"
    QUEUE = "control"

    campaign_id: str
    node_id: str
    fire_at: datetime
    page: int = Field(default=0, ge=0)
    cursor: str | None = None
    by_hand: bool = False
    segment_id: str | None = None


class FlowSweep(QueueMessage):
    """Queue a FlowWake for every due entry filed under ``minutes`` in ``shard`` (the
    one-minute tick fans out one per shard, with every minute not swept yet, docs/flows.md
    "Timers"). The sweep is cross-tenant: ``tenant_id`` is the system scope's name."""

    KIND = "flow.sweep"
    QUEUE = "flows"

    tenant_id: str = Field(default="system", min_length=1)
    minutes: list[str] = Field(min_length=1, max_length=60)
    shard: int = Field(ge=0)


class ChannelReceipt(QueueMessage):
    """What a channel learned of a message it handed over (the on-site inbox stored it,
    Telegram took it): a ``DeliveryEvent`` for the feedback worker to apply like a
    provider's, so the message's status and the campaign's counters move the one way."""

    KIND = "channel.receipt"
    QUEUE = "feedback"

    event: dict[str, Any]


class SesEventsObject(QueueMessage):
    """The rest of an object of SES events, from ``start`` bytes in: what a feedback
    invocation that spent its event budget leaves for the next (docs/feedback.md). The
    object holds every tenant's events, so ``tenant_id`` is the system scope's name."""

    KIND = "ses_events_object"
    QUEUE = "feedback"

    tenant_id: str = Field(default="system", min_length=1)
    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    start: int = Field(ge=0)


class CallbackFlush(QueueMessage):
    """Turn one closed callback window into POSTs."""

    KIND = "callback.flush"
    QUEUE = "callbacks"

    campaign_id: str
    event: CallbackEvent
    start: int
    due: int


class HttpDelivery(QueueMessage):
    """One attempt of one outgoing POST: an aggregated callback or a signed webhook."""

    KIND = "http.deliver"
    QUEUE = "callbacks"

    target: Literal["callback", "webhook", "flow"]
    target_id: str = Field(
        description="The campaign (callback, a flow's webhook node) or the webhook endpoint."
    )
    event_type: str
    delivery_id: str
    body: str
    attempt: int = Field(default=1, ge=1)
    not_before: int = Field(default=0, description="Unix seconds before which not to POST.")
    url: str | None = Field(default=None, description="A callback's URL; webhooks look it up.")


MESSAGE_TYPES: tuple[type[QueueMessage], ...] = (
    StartCampaign,
    PlanMessage,
    BatchMessage,
    IterationSettle,
    IterationStart,
    ImportChunk,
    ListPurge,
    SegmentCheck,
    SegmentSweep,
    SegmentSweepTenants,
    EndFlow,
    EnterAudience,
    ChannelReceipt,
    SesEventsObject,
    CallbackFlush,
    HttpDelivery,
    FlowWake,
    FlowSweep,
)
