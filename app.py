"""Herald: the Chalice app. Wiring only; everything that decides lives in chalicelib/.

Read top to bottom: one block per Lambda function, importing what that function runs and
wiring it: the HTTP blueprints (the API function), each queue's row of ``QUEUE_CONSUMERS``
(every message kind on it and the function that handles it), ``TICK_JOBS`` (everything the
one-minute tick runs), the status-log forwarder; then the handlers Chalice deploys. Nothing
registers itself by being imported: a handler missing from these tables is never called.

A Lambda function runs only its own block (``runs``: the function's name, which Lambda sets,
names its handler), so a worker never imports the API and the API no pipeline it does not
call: the cold start pays for one function, not ten. Outside Lambda (``chalice package``,
the tests, the local stack) every block runs, so Chalice sees every route and handler.
docs/architecture.md, "One app, ten functions".
"""

# ruff: noqa: E402 (the imports follow gc.disable(): see below)
from __future__ import annotations

import gc

# A cold start creates ~70,000 objects (modules, classes, pydantic fields, routes) that
# live as long as the process; while they are made, the collector would walk them again
# and again (~160 collections, about a tenth of the import). It stays off until the end
# of this module, which then freezes them (gc.freeze: never walked again, in the cold
# start or in any invocation after it) and switches it back on.
gc.disable()

from collections.abc import Callable
from typing import Any

from chalice import Chalice, Rate

from chalicelib import observability
from chalicelib.pipeline import dispatch
from chalicelib.pipeline import messages as kinds
from chalicelib.pipeline import tick as ticking
from chalicelib.pipeline.dispatch import Consumer
from chalicelib.resources import herald_resources
from chalicelib.settings import QueueRole, get_settings

settings = get_settings()
resources = herald_resources(settings)
app = Chalice(app_name="herald")
QUEUE_CONSUMERS: dict[QueueRole, Consumer] = {}
TICK_JOBS: dict[str, ticking.Job] = {}


def runs(handler: str) -> bool:
    """Whether this process runs ``handler``'s Lambda function: in Lambda only its own (every
    one for a function name this stage did not give); outside Lambda, every one."""
    serving = settings.lambda_handler
    return serving is None or serving == handler or serving not in resources.handlers


def consumes(role: QueueRole) -> bool:
    """Whether this process runs the function that consumes ``role``'s queue."""
    return runs(resources.queue(role).handler)


if runs(resources.api_handler):
    from chalicelib.api import (
        campaigns,
        contacts,
        docs,
        enrolments,
        events,
        flows,
        imports,
        inbox_threads,
        limits,
        lists,
        onsite,
        routing,
        segments,
        senders,
        stats,
        suppressions,
        templates,
        tenants,
        unsubscribe,
        webhooks,
    )
    from chalicelib.api.dialects import seed000, seed001, seed002, seed003, seed004
    from chalicelib.domain.unsubscribe import on_unsubscribe
    from chalicelib.pipeline.feedback import count_unsubscribe
    from chalicelib.services.enrolments import exit_on_unsubscribe

    for blueprint in (
        docs.blueprint,
        tenants.blueprint,
        contacts.blueprint,
        imports.blueprint,
        lists.blueprint,
        segments.blueprint,
        events.blueprint,
        campaigns.blueprint,
        enrolments.blueprint,
        flows.blueprint,
        templates.blueprint,
        senders.blueprint,
        inbox_threads.blueprint,
        onsite.blueprint,
        limits.blueprint,
        suppressions.blueprint,
        stats.blueprint,
        webhooks.blueprint,
        unsubscribe.blueprint,
        seed000.blueprint,
        seed001.blueprint,
        seed002.blueprint,
        seed003.blueprint,
        seed004.blueprint,
    ):
        app.register_blueprint(blueprint)
    # What an unsubscribe link does beyond suppressing.
    on_unsubscribe(count_unsubscribe)
    on_unsubscribe(exit_on_unsubscribe)
    app.register_middleware(routing.gateway_errors, "http")

if consumes("control"):
    from chalicelib.pipeline import flow_schedules, iterations, planner, segment_triggers
    from chalicelib.pipeline import imports as import_jobs
    from chalicelib.pipeline import lists as list_jobs

    QUEUE_CONSUMERS["control"] = Consumer(
        {
            kinds.StartCampaign.KIND: planner.start_campaign,
            kinds.PlanMessage.KIND: planner.continue_plan,
            kinds.IterationSettle.KIND: iterations.settle_iteration,
            kinds.IterationStart.KIND: iterations.start_iteration,
            kinds.ImportChunk.KIND: import_jobs.process_chunk,
            kinds.ListPurge.KIND: list_jobs.purge_list,
            kinds.SegmentSweepTenants.KIND: segment_triggers.sweep_tenants,
            kinds.SegmentSweep.KIND: segment_triggers.sweep_segments,
            kinds.EndFlow.KIND: flow_schedules.end_flow,
            kinds.EnterAudience.KIND: flow_schedules.enter_audience,
        }
    )

if consumes("send"):
    from chalicelib.pipeline.send import batch as send_batches

    QUEUE_CONSUMERS["send"] = Consumer({kinds.BatchMessage.KIND: send_batches.send_batch})

if consumes("feedback"):
    from chalicelib.pipeline import feedback as provider_feedback

    QUEUE_CONSUMERS["feedback"] = Consumer(
        {
            kinds.SNS: provider_feedback.on_provider_event,
            kinds.EVENTBRIDGE: provider_feedback.on_provider_event,
            kinds.SMS_STATUS: provider_feedback.on_provider_event,
            kinds.PUSH_STATUS: provider_feedback.on_provider_event,
            kinds.SES: provider_feedback.on_provider_event,
            kinds.S3: provider_feedback.on_events_object,
            kinds.SesEventsObject.KIND: provider_feedback.on_events_object,
            kinds.ChannelReceipt.KIND: provider_feedback.on_channel_receipt,
        },
        scopes=(provider_feedback.feedback_batch,),
    )

if consumes("triggers"):
    from chalicelib.pipeline import events as contact_events
    from chalicelib.pipeline import segment_triggers
    from chalicelib.services import enrolments as flow_entry

    QUEUE_CONSUMERS["triggers"] = Consumer(
        {
            kinds.EVENTBRIDGE: contact_events.receive_bus_event,
            kinds.SegmentCheck.KIND: segment_triggers.check_contacts,
        },
        scopes=(segment_triggers.batch_scope,),
    )
    # What a recorded contact event does beyond the timeline: enrol by trigger.event, exit
    # on goals, wake waits; move watched segment memberships.
    contact_events.on_contact_event(flow_entry.on_event)
    contact_events.on_contact_event(segment_triggers.on_contact_event)

if consumes("callbacks"):
    from chalicelib.pipeline import callbacks as notifications

    QUEUE_CONSUMERS["callbacks"] = Consumer(
        {
            kinds.CallbackFlush.KIND: notifications.flush_window,
            kinds.HttpDelivery.KIND: notifications.deliver,
        }
    )

if consumes("flows"):
    from chalicelib.pipeline.flows import timers as flow_timers
    from chalicelib.pipeline.flows import worker as flow_worker_steps

    QUEUE_CONSUMERS["flows"] = Consumer(
        {
            kinds.FlowWake.KIND: flow_worker_steps.wake,
            kinds.FlowSweep.KIND: flow_timers.sweep_shard,
        },
        scopes=(flow_worker_steps.wake_batch,),
        ahead=flow_worker_steps.read_ahead,
    )

if consumes("replies"):
    from chalicelib.pipeline import replies

    QUEUE_CONSUMERS["replies"] = Consumer({kinds.SNS: replies.on_inbound})

if runs(resources.tick_handler):
    from chalicelib.pipeline import callbacks as notifications
    from chalicelib.pipeline import scheduling, segment_triggers, watchdog
    from chalicelib.pipeline.flows import timers as flow_timers

    TICK_JOBS.update(
        {
            "campaigns.overdue": scheduling.start_overdue,
            "callback-windows": notifications.queue_due_flushes,
            "campaigns.watchdog": watchdog.watch_running_campaigns,
            "segments.hourly": segment_triggers.start_hourly_sweep,
            "flows.sweep": flow_timers.sweep_due,
        }
    )

if runs(resources.sms_status_logs.handler):
    from chalicelib.pipeline import status_logs


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    name = type(event).__name__
    return observability.observe(name, event, get_response)


def _consumes(role: QueueRole) -> Callable[[Callable[[Any], Any]], Any]:
    """Subscribe the decorated function to ``role``'s queue as chalicelib.resources says."""
    spec = resources.queue(role)
    subscribe: Callable[[Callable[[Any], Any]], Any] = app.on_sqs_message(
        queue=spec.name,
        batch_size=spec.batch_size,
        maximum_batching_window_in_seconds=spec.max_batching_window_seconds,
    )
    return subscribe


@_consumes("control")
def control_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch(
        "control", QUEUE_CONSUMERS["control"], event.to_dict(), event.context
    )


@_consumes("send")
def send_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("send", QUEUE_CONSUMERS["send"], event.to_dict(), event.context)


@_consumes("feedback")
def feedback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch(
        "feedback", QUEUE_CONSUMERS["feedback"], event.to_dict(), event.context
    )


@_consumes("triggers")
def trigger_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch(
        "triggers", QUEUE_CONSUMERS["triggers"], event.to_dict(), event.context
    )


@_consumes("callbacks")
def callback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch(
        "callbacks", QUEUE_CONSUMERS["callbacks"], event.to_dict(), event.context
    )


@_consumes("flows")
def flow_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("flows", QUEUE_CONSUMERS["flows"], event.to_dict(), event.context)


@_consumes("replies")
def reply_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch(
        "replies", QUEUE_CONSUMERS["replies"], event.to_dict(), event.context
    )


@app.lambda_function(name=resources.sms_status_logs.handler)
def sms_status_forwarder(event: dict[str, Any], context: Any) -> dict[str, int]:
    """CloudWatch Logs' subscriptions to SNS's SMS delivery-status logs (infra/sms_status.py)
    and to each push application's (chalicelib/channels/push.py)."""
    return {"forwarded": status_logs.forward_status_logs(event)}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: Any) -> dict[str, str]:
    return ticking.run_tick(TICK_JOBS)


gc.freeze()
gc.enable()
