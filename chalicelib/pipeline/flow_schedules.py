"""What a flow's schedules fire (chalicelib.pipeline.flow_scheduling): its end, and its
scheduled triggers entering the audience a page at a time.

Both may arrive twice, late, or after the flow changed (Scheduler is at least once; a
schedule deleted too late still fires): each handler re-reads the flow and acts only
when the message still describes it.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain import clock
from chalicelib.domain.campaigns import START_LEEWAY
from chalicelib.domain.errors import InvalidTransition, NotFound
from chalicelib.observability import logger
from chalicelib.pipeline.messages import EndFlow
from chalicelib.services import flows
from chalicelib.store.campaigns import get_campaign


def end_flow(message: dict[str, Any]) -> None:
    """Complete the flow if its ``ends_at`` has come; a moved or finished one is left."""
    end = EndFlow.model_validate(message)
    now = clock.now()
    try:
        campaign = get_campaign(end.tenant_id, end.campaign_id)
    except NotFound:
        return
    if campaign.family != "flow" or campaign.ends_at is None:
        return
    if campaign.ends_at > now + START_LEEWAY:
        logger.info("flow end not due (ends_at moved)", extra={"campaign_id": campaign.id})
        return
    try:
        flows.complete(end.tenant_id, campaign.id, now)
    except InvalidTransition as refused:
        logger.info("flow end refused", extra={"current": refused.current})
