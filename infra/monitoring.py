"""What an operator watches: one dashboard, and alarms that mail the ``AlarmEmail`` parameter.

Alarms fire on what needs a person: any message in a dead-letter queue (work Herald gave up
on), any Lambda error, a campaign the watchdog found stuck (``stuck_campaigns``), SES
reputation nearing the rates at which AWS reviews an account (bounces 5 %, complaints
0.1 %), and SES's events stuck in their Firehose stream (transport "firehose"). The
dashboard shows the same signals plus queue depths, ages and durations, so an alarm can be
read in context.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.observability import SERVICE
from chalicelib.observability import metrics as herald_metrics
from infra.naming import (
    ALARM_EMAIL,
    ALARM_TOPIC,
    DASHBOARD,
    HAS_ALARM_EMAIL,
    SMS_STATUS_DEAD_LETTER_QUEUE,
    Json,
    Stack,
    get_att,
    ref,
    sub,
)
from infra.ses_events import SES_EVENTS_STREAM

# SES's events normally wait at most the stream's buffer interval (60 s) before reaching S3.
STALLED_EVENTS_SECONDS = 900
# AWS puts an SES account under review at these reputation rates.
SES_BOUNCE_RATE_LIMIT = 0.05
SES_COMPLAINT_RATE_LIMIT = 0.001


def monitoring_resources(stack: Stack) -> Json:
    rendered: Json = {
        ALARM_TOPIC: {"Type": "AWS::SNS::Topic", "Properties": {}},
        f"{ALARM_TOPIC}EmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": HAS_ALARM_EMAIL,
            "Properties": {
                "TopicArn": ref(ALARM_TOPIC),
                "Protocol": "email",
                "Endpoint": ref(ALARM_EMAIL),
            },
        },
        DASHBOARD: {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": stack.settings.prefix,
                "DashboardBody": sub(json.dumps({"widgets": _widgets(stack)})),
            },
        },
    }
    rendered.update(_alarms(stack))
    return rendered


def _alarms(stack: Stack) -> Json:
    prefix = stack.settings.prefix
    alarms: Json = {}
    for spec in stack.resources.queues:
        dead_letter_id = stack.dead_letter_queue_id(spec.role)
        alarms[f"{dead_letter_id}Alarm"] = _alarm(
            name=f"{prefix}-{spec.role}-dead-letters",
            description=f"Messages gave up on after {spec.max_receive_count} receives "
            f"wait in {spec.dead_letter_name}: read them, fix, then redrive.",
            namespace="AWS/SQS",
            metric="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": get_att(dead_letter_id, "QueueName")},
            statistic="Maximum",
            threshold=0,
        )
    sms_status = stack.resources.sms_status_logs
    alarms[f"{SMS_STATUS_DEAD_LETTER_QUEUE}Alarm"] = _alarm(
        name=f"{prefix}-sms-status-dead-letters",
        description="SMS delivery-status log deliveries the forwarder failed to put on the "
        f"feedback queue wait in {sms_status.dead_letter_name}: fix, then forward them again.",
        namespace="AWS/SQS",
        metric="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": get_att(SMS_STATUS_DEAD_LETTER_QUEUE, "QueueName")},
        statistic="Maximum",
        threshold=0,
    )
    for handler in stack.handlers:
        function_id = stack.function_id(handler)
        alarms[f"{function_id}ErrorsAlarm"] = _alarm(
            name=f"{prefix}-{handler}-errors",
            description=f"{handler} failed (an invocation error, not a failed SQS record).",
            namespace="AWS/Lambda",
            metric="Errors",
            dimensions={"FunctionName": ref(function_id)},
            statistic="Sum",
            threshold=0,
            period=300,
        )
    alarms["StuckCampaignsAlarm"] = _alarm(
        name=f"{prefix}-stuck-campaigns",
        description="The watchdog found a campaign calculating or sending without progress "
        "(re-driven, then failed after three tries): see its error_message and the logs.",
        namespace=herald_metrics.namespace,
        metric="stuck_campaigns",
        dimensions={"service": SERVICE},
        statistic="Sum",
        threshold=0,
        period=300,
    )
    stream = stack.resources.configuration_set.stream
    if stream is not None:
        alarms[f"{SES_EVENTS_STREAM}FreshnessAlarm"] = _alarm(
            name=f"{prefix}-ses-events-stalled",
            description=f"SES events waited over {STALLED_EVENTS_SECONDS // 60} minutes in "
            f"{stream.stream} without reaching {stream.bucket} (Firehose retries for 24 "
            "hours): check the delivery role and the bucket; feedback is stalled meanwhile.",
            namespace="AWS/Firehose",
            metric="DeliveryToS3.DataFreshness",
            dimensions={"DeliveryStreamName": ref(SES_EVENTS_STREAM)},
            statistic="Maximum",
            threshold=STALLED_EVENTS_SECONDS,
            period=300,
        )
    for metric, limit, alarm_id in (
        ("Reputation.BounceRate", SES_BOUNCE_RATE_LIMIT, "SesBounceRateAlarm"),
        ("Reputation.ComplaintRate", SES_COMPLAINT_RATE_LIMIT, "SesComplaintRateAlarm"),
    ):
        alarms[alarm_id] = _alarm(
            name=f"{prefix}-ses-{metric.split('.')[1].lower()}",
            description=f"The account's SES {metric} reached {limit:.1%}, the rate at which "
            "AWS puts sending under review.",
            namespace="AWS/SES",
            metric=metric,
            dimensions={},
            statistic="Maximum",
            threshold=limit,
            period=900,
            comparison="GreaterThanOrEqualToThreshold",
        )
    return alarms


def _alarm(
    *,
    name: str,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, Any],
    statistic: str,
    threshold: float,
    period: int = 60,
    comparison: str = "GreaterThanThreshold",
) -> Json:
    properties: Json = {
        "AlarmName": name,
        "AlarmDescription": description,
        "Namespace": namespace,
        "MetricName": metric,
        "Statistic": statistic,
        "Period": period,
        "EvaluationPeriods": 1,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": "notBreaching",
        "AlarmActions": [ref(ALARM_TOPIC)],
        "OKActions": [ref(ALARM_TOPIC)],
    }
    if dimensions:
        properties["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _widgets(stack: Stack) -> list[Json]:
    queues = stack.resources.queues
    functions = [stack.function_name(h) for h in stack.handlers]

    def per_queue(metric: str, dead_letters: bool = False) -> list[list[Any]]:
        lines = [
            [
                "AWS/SQS",
                metric,
                "QueueName",
                q.dead_letter_name if dead_letters else q.name,
                {"label": q.role},
            ]
            for q in queues
        ]
        if dead_letters:
            name = stack.resources.sms_status_logs.dead_letter_name
            lines.append(["AWS/SQS", metric, "QueueName", name, {"label": "sms-status"}])
        return lines

    def per_function(metric: str, stat: str) -> list[list[Any]]:
        return [
            ["AWS/Lambda", metric, "FunctionName", name, {"label": name, "stat": stat}]
            for name in functions
        ]

    ses = [["AWS/SES", m, {"stat": "Sum"}] for m in ("Send", "Delivery", "Bounce", "Complaint")]
    reputation = [
        ["AWS/SES", "Reputation.BounceRate", {"stat": "Maximum"}],
        ["AWS/SES", "Reputation.ComplaintRate", {"stat": "Maximum"}],
    ]
    panels: list[tuple[str, list[list[Any]], Json]] = [
        ("Queue depth", per_queue("ApproximateNumberOfMessagesVisible"), {"stat": "Maximum"}),
        ("Oldest message age (s)", per_queue("ApproximateAgeOfOldestMessage"), {}),
        (
            "Dead-letter queue depth (alarms above 0)",
            per_queue("ApproximateNumberOfMessagesVisible", dead_letters=True),
            {"stat": "Maximum"},
        ),
        ("Lambda errors", per_function("Errors", "Sum"), {}),
        ("Lambda duration p99 (ms)", per_function("Duration", "p99"), {}),
        ("Lambda throttles", per_function("Throttles", "Sum"), {}),
        ("SES sends and feedback", ses, {}),
        (
            "SES reputation",
            reputation,
            {
                "annotations": {
                    "horizontal": [
                        {"label": "bounce review", "value": SES_BOUNCE_RATE_LIMIT},
                        {"label": "complaint review", "value": SES_COMPLAINT_RATE_LIMIT},
                    ]
                }
            },
        ),
    ]
    widgets: list[Json] = []
    for position, (title, metrics, extra) in enumerate(panels):
        widgets.append(
            {
                "type": "metric",
                "x": (position % 2) * 12,
                "y": (position // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": "${AWS::Region}",
                    "view": "timeSeries",
                    "period": 60,
                    "metrics": metrics,
                    **extra,
                },
            }
        )
    return widgets
