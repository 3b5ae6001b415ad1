"""Import jobs, their chunks of rows, and their progress, in DynamoDB.

Layout (tenant scope prefix added by ScopedTable):
- ``IMPORTS / <import id>``                  the job: status, counters, and ``done_chunks``,
  a number set of the chunks already counted. A chunk's counters are added in the same
  UpdateItem that adds its number to the set, conditional on it not being there yet, so
  a redelivered chunk can never be counted twice.
- ``IMPORT#<id> / CHUNK#<n>``                a chunk's rows (JSON, under 300 KB), deleted once
  counted; expires after CHUNK_TTL in any case.
- ``IMPORT#<id>#ERRORS / <n>``               the rejected rows of chunk ``n``, so reading the
  first ERRORS_SHOWN errors never means reading the rows.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.domain.imports import (
    ERRORS_SHOWN,
    ImportFormat,
    ImportJob,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    RowError,
)
from chalicelib.store.expressions import ExpressionUpdate
from chalicelib.store.table import Condition, ConditionFailed, tenant_table

_JOBS = "IMPORTS"
JOB_TTL = timedelta(days=30)
CHUNK_TTL = timedelta(days=7)


@dataclass(frozen=True)
class ImportState:
    """What a chunk worker needs to know about its job."""

    job: ImportJob
    chunks: int
    done_chunks: frozenset[int]
    options: ImportOptions


def new_import_id() -> str:
    return "imp_" + uuid.uuid4().hex


def _chunks_partition(import_id: str) -> str:
    return f"IMPORT#{import_id}"


def _errors_partition(import_id: str) -> str:
    return f"IMPORT#{import_id}#ERRORS"


def _chunk_sort(index: int) -> str:
    return f"CHUNK#{index:05d}"


def _expires(now: datetime, ttl: timedelta) -> int:
    return int((now + ttl).timestamp())


def create_import(
    tenant_id: str,
    import_format: ImportFormat,
    chunks: list[list[ImportRecord]],
    options: ImportOptions,
    now: datetime | None = None,
) -> ImportJob:
    """Store the rows chunk by chunk, then the job (queued); nothing is processed yet."""
    now = now or datetime.now(UTC)
    import_id = new_import_id()
    table = tenant_table(tenant_id)
    table.batch_put(
        (
            _chunks_partition(import_id),
            _chunk_sort(index),
            {
                "records": json.dumps(chunk, separators=(",", ":")),
                "expires_at": _expires(now, CHUNK_TTL),
            },
        )
        for index, chunk in enumerate(chunks)
    )
    job = ImportJob(
        id=import_id,
        status="queued",
        format=import_format,
        total=sum(len(c) for c in chunks),
        created_at=now,
        updated_at=now,
    )
    record = {
        **job.model_dump(mode="json", exclude={"errors", "errors_truncated"}),
        "chunks": len(chunks),
        "options": options.model_dump(mode="json"),
        "expires_at": _expires(now, JOB_TTL),
    }
    table.put(_JOBS, import_id, record, condition=Condition.absent())
    return job


def _job_record(tenant_id: str, import_id: str) -> dict[str, Any]:
    record = tenant_table(tenant_id).get(_JOBS, import_id)
    if record is None:
        raise NotFound(f"import '{import_id}' not found", field="import_id")
    return record


def _job(record: dict[str, Any]) -> ImportJob:
    return ImportJob.model_validate(record)


def get_import(tenant_id: str, import_id: str) -> ImportJob:
    """The job with its progress and the first ERRORS_SHOWN rejected rows, in line order."""
    record = _job_record(tenant_id, import_id)
    errors: list[RowError] = []
    for item in tenant_table(tenant_id).query_all(_errors_partition(import_id), limit=25):
        errors.extend(RowError.model_validate(e) for e in item["errors"])
        if len(errors) >= ERRORS_SHOWN:
            break
    return _job(record).model_copy(
        update={
            "errors": errors[:ERRORS_SHOWN],
            "errors_truncated": int(record.get("rejected", 0)) > ERRORS_SHOWN,
        }
    )


def import_state(tenant_id: str, import_id: str) -> ImportState:
    return _state(_job_record(tenant_id, import_id))


def _state(record: dict[str, Any]) -> ImportState:
    return ImportState(
        job=_job(record),
        chunks=int(record["chunks"]),
        done_chunks=frozenset(int(n) for n in record.get("done_chunks", ())),
        options=ImportOptions.model_validate(record.get("options", {})),
    )


def load_chunk(tenant_id: str, import_id: str, index: int) -> list[ImportRecord] | None:
    """A chunk's rows, or None when they are gone (counted already, or expired)."""
    item = tenant_table(tenant_id).get(_chunks_partition(import_id), _chunk_sort(index))
    if item is None:
        return None
    return [(int(line), value) for line, value in json.loads(item["records"])]


def drop_chunk(tenant_id: str, import_id: str, index: int) -> None:
    tenant_table(tenant_id).delete(_chunks_partition(import_id), _chunk_sort(index))


def mark_running(tenant_id: str, import_id: str, now: datetime) -> None:
    """queued → running; any other status stays as it is."""
    with contextlib.suppress(ConditionFailed):  # already running, or finished
        tenant_table(tenant_id).update(
            _JOBS,
            import_id,
            set_values={"status": "running", "updated_at": now.isoformat()},
            condition=Condition.equals("status", "queued"),
        )


def record_chunk(
    tenant_id: str,
    import_id: str,
    index: int,
    *,
    created: int,
    updated: int,
    errors: list[RowError],
    now: datetime,
) -> ImportState | None:
    """Count a chunk once: its errors, then its counters and its number in one write.

    Returns the job as it now is, or None if the chunk had been counted already (a
    redelivered or concurrently run chunk message).
    """
    table = tenant_table(tenant_id)
    if errors:
        table.put(
            _errors_partition(import_id),
            f"{index:05d}",
            {
                "errors": [e.model_dump(mode="json") for e in errors],
                "expires_at": _expires(now, JOB_TTL),
            },
        )
    update = (
        ExpressionUpdate()
        .add("processed", created + updated + len(errors))
        .add("created", created)
        .add("updated", updated)
        .add("rejected", len(errors))
        .add("done_chunks", {index})
        .assign("updated_at", now.isoformat())
    )
    not_counted = Condition(
        "attribute_exists(pk) AND NOT contains(#c_done, :c_index)",
        {"#c_done": "done_chunks"},
        {":c_index": index},
    )
    try:
        return _state(update.run(table, (_JOBS, import_id), not_counted))
    except ConditionFailed:
        return None


def finish_import(tenant_id: str, import_id: str, status: ImportStatus, now: datetime) -> None:
    """Mark the job completed or failed (``last_error`` says why, when failed)."""
    tenant_table(tenant_id).update(
        _JOBS,
        import_id,
        set_values={"status": status, "completed_at": now.isoformat()},
        condition=Condition.present(),
    )


def note_failure(tenant_id: str, import_id: str, reason: str, now: datetime) -> None:
    """Keep the last error a chunk met, so a stalled job says why in its record."""
    tenant_table(tenant_id).update(
        _JOBS,
        import_id,
        set_values={"last_error": reason[:500], "updated_at": now.isoformat()},
        condition=Condition.present(),
    )
