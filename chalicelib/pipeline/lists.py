"""Clearing a deleted list from its members, a page per control-queue message.

Deleting a list answers at once; this job then removes the list's id from each member's
``lists`` and deletes the member items, ``MEMBER_PAGE`` members per message, and queues
itself again until none are left, so a list of millions never holds a Lambda past its
timeout. Every step is idempotent: a redelivered message redoes at most one page.
"""

from __future__ import annotations

from typing import Any

from chalicelib.pipeline.messages import ListPurge
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import segment_triggers
from chalicelib.store.lists import purge_members


def schedule_purge(tenant_id: str, list_id: str) -> None:
    enqueue("control", [ListPurge(tenant_id=tenant_id, list_id=list_id).as_message()])


def purge_list(message: dict[str, Any]) -> None:
    purge = ListPurge.model_validate(message)
    done, removed = purge_members(purge.tenant_id, purge.list_id)
    segment_triggers.queue_check(purge.tenant_id, removed)  # a segment on the list: exits
    if not done:
        schedule_purge(purge.tenant_id, purge.list_id)
