"""Operator inbox threads: a flow's ``notify_inbox`` node asks a person to follow up.

A thread is about one contact and the flow (campaign) and node that opened it. Operators
list the open ones, assign them to someone and close them. The flow worker opens a
thread under its step key (``thread_key``) and may repeat the call after a crash or an
SQS redelivery, so one key always names one thread: its public ``id`` is derived from
the key (a step key holds ``#`` and ids travel in URL paths, so the key itself is not
the id).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from chalicelib.domain.model import Model

ThreadStatus = Literal["open", "closed"]
THREAD_STATUSES: tuple[ThreadStatus, ...] = ("open", "closed")


def thread_id_for(thread_key: str) -> str:
    """The public id of the thread opened under ``thread_key`` (the same for every retry)."""
    return "thr_" + hashlib.sha256(thread_key.encode()).hexdigest()[:32]


class InboxThread(Model):
    """One request for manual follow-up about a contact."""

    model_config = ConfigDict(frozen=True)

    id: str
    thread_key: str = Field(description="The opener's idempotency key (a flow's step key).")
    contact_id: str
    campaign_id: str
    node_id: str
    title: str
    status: ThreadStatus = "open"
    assignee: str | None = None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class ThreadChange(Model):
    """What an operator changes: the fields present are applied (null unassigns)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    assignee: str | None = Field(default=None, min_length=1, max_length=200)
    status: ThreadStatus | None = None


def changed(thread: InboxThread, change: ThreadChange, now: datetime) -> InboxThread:
    """``thread`` with ``change`` applied; closing stamps ``closed_at``, reopening clears it."""
    values = thread.model_dump()
    if "assignee" in change.model_fields_set:
        values["assignee"] = change.assignee
    if change.status is not None and change.status != thread.status:
        values["status"] = change.status
        values["closed_at"] = now if change.status == "closed" else None
    values["updated_at"] = now
    return InboxThread.model_validate(values)
