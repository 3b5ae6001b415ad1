"""What the EventBridge rule behind ``@app.schedule`` does: invoke app.py's ``tick``.

The handler gets the same "Scheduled Event" envelope EventBridge delivers for a
``rate(1 minute)`` rule (named as ``chalice deploy`` names it), so it cannot tell
local from AWS.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from chalicelib.local.poller import invoke_handler
from chalicelib.resources import herald_resources
from chalicelib.settings import get_settings

TICK_SECONDS = 60


def scheduled_event(now: datetime) -> dict[str, Any]:
    """EventBridge's Scheduled Event for the tick rule at ``now``."""
    settings = get_settings()
    rule = f"{settings.prefix}-{herald_resources(settings).tick_handler}-event"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": settings.account_id,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": settings.region,
        "resources": [f"arn:aws:events:{settings.region}:{settings.account_id}:rule/{rule}"],
        "detail": {},
    }


def invoke_tick(now: datetime | None = None, timeout_seconds: int = 30) -> Any:
    """Invoke app.py's tick handler once, as the one-minute rule would; returns its result."""
    name = herald_resources(get_settings()).tick_handler
    return invoke_handler(name, scheduled_event(now or datetime.now(UTC)), timeout_seconds)
