"""Operator inbox threads in DynamoDB.

Layout (scope prefix added by ScopedTable):
- ``T#<tenant>#INBOX_THREAD / <thread id>``  one item per thread
- gsi1 ``T#<tenant>#INBOX_THREAD#<status> / <opened_at>#<thread id>``  listed by status,
  newest first

Opening is a conditional put on the id derived from the opener's key, so a repeated
``open_thread`` (a retried flow step) returns the thread the first call stored. A change
replaces the item on the condition that ``updated_at`` is what was read, so two
operators' concurrent changes cannot silently overwrite each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.contacts import utc
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.inbox_threads import (
    InboxThread,
    ThreadChange,
    ThreadStatus,
    changed,
    thread_id_for,
)
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_THREAD = "INBOX_THREAD"
_BY_STATUS = "INBOX_THREAD#{status}"


def _put(tenant_id: str, thread: InboxThread, condition: Condition) -> None:
    item: dict[str, Any] = thread.model_dump(mode="json")
    tenant_table(tenant_id).put(
        _THREAD,
        thread.id,
        item,
        condition=condition,
        index_keys={
            "gsi1": (_BY_STATUS.format(status=thread.status), f"{item['opened_at']}#{thread.id}")
        },
    )


def open_thread(
    tenant_id: str,
    *,
    thread_id: str,
    contact_id: str,
    campaign_id: str,
    node_id: str,
    title: str,
    now: datetime,
) -> InboxThread:
    """Open the thread named by ``thread_id`` (the flow's step key), or return the one a
    previous call opened under it, unchanged."""
    at = utc(now)
    thread = InboxThread(
        id=thread_id_for(thread_id),
        thread_key=thread_id,
        contact_id=contact_id,
        campaign_id=campaign_id,
        node_id=node_id,
        title=title,
        opened_at=at,
        updated_at=at,
    )
    try:
        _put(tenant_id, thread, Condition.absent())
    except ConditionFailed:
        return get_thread(tenant_id, thread.id)
    return thread


def get_thread(tenant_id: str, thread_id: str) -> InboxThread:
    """The thread with public id ``thread_id``; NotFound (field ``thread_id``) otherwise."""
    item = tenant_table(tenant_id).get(_THREAD, thread_id)
    if item is None:
        raise NotFound(f"inbox thread '{thread_id}' not found", field="thread_id")
    return InboxThread.model_validate(item)


def list_threads(
    tenant_id: str,
    *,
    status: ThreadStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[InboxThread], str | None]:
    """A page of threads: of one status newest first, or all of them in id order."""
    table = tenant_table(tenant_id)
    if status is None:
        page = table.query(_THREAD, limit=limit, cursor=cursor)
    else:
        page = table.query(
            _BY_STATUS.format(status=status),
            index="gsi1",
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
    return [InboxThread.model_validate(i) for i in page.items], page.cursor


def update_thread(
    tenant_id: str, thread_id: str, change: ThreadChange, now: datetime
) -> InboxThread:
    """Assign, unassign, close or reopen a thread; Conflict if it changed meanwhile."""
    current = get_thread(tenant_id, thread_id)
    updated = changed(current, change, utc(now))
    try:
        _put(
            tenant_id,
            updated,
            Condition.equals("updated_at", current.model_dump(mode="json")["updated_at"]),
        )
    except ConditionFailed:
        raise Conflict(
            f"inbox thread '{thread_id}' changed concurrently; retry", field="thread_id"
        ) from None
    return updated
