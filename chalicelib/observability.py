"""Powertools Logger, Metrics and Tracer, shared by every handler.

Logs are JSON with ``tenant_id`` and ``campaign_id`` as top-level keys when known, so an
operator can search CloudWatch Logs Insights by tenant or campaign. Metrics go out as EMF
in the log stream (no PutMetricData calls). Tracing turns itself off outside Lambda.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "herald"
CORRELATION_KEYS = ("tenant_id", "campaign_id", "handler")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Herald", service=SERVICE)
tracer = Tracer(service=SERVICE)


def observe(handler_name: str, event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Run one Lambda invocation with fresh log keys, a trace segment and flushed metrics."""
    logger.remove_keys(list(CORRELATION_KEYS))
    logger.append_keys(handler=handler_name)
    context = getattr(event, "context", None) or getattr(event, "lambda_context", None)
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    try:
        with tracer.provider.in_subsegment(f"## {handler_name}"):
            return get_response(event)
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()
