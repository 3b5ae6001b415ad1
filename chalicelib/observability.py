"""Powertools Logger and Metrics, shared by every handler.

Logs are JSON with ``tenant_id`` and ``campaign_id`` as top-level keys when known, so an
operator can search CloudWatch Logs Insights by tenant or campaign. Metrics go out as EMF
in the log stream (no PutMetricData calls).

Traces come from Lambda itself: infra turns on active tracing, and Lambda records each
invocation's segments (initialisation, invocation, overhead) without an SDK in the
package. Herald does not ship the X-Ray SDK (Powertools' ``Tracer``): importing it cost a
fifth of every cold start and its botocore pin was most of the layer. What that drops is
the SDK's subsegment per AWS call: the latency of DynamoDB, SQS and SES calls is in those
services' own CloudWatch metrics instead, not in the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

SERVICE = "herald"
CORRELATION_KEYS = ("tenant_id", "campaign_id", "handler")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Herald", service=SERVICE)


def observe(handler_name: str, event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Run one Lambda invocation with fresh log keys and flushed metrics."""
    logger.remove_keys(list(CORRELATION_KEYS))
    logger.append_keys(handler=handler_name)
    context = getattr(event, "context", None) or getattr(event, "lambda_context", None)
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    try:
        return get_response(event)
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()  # prints the EMF line and clears the set
            # With POWERTOOLS_METRICS_DISABLED (the benchmark) flushing prints nothing and
            # clears nothing: the values would pile up across invocations until Powertools
            # prints them anyway at 100 per metric. Enabled, the set is already empty here.
            metrics.clear_metrics()
