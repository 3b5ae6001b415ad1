"""Bulk imports as jobs: submitted at once, worked through chunk by chunk on the control queue.

``submit_import`` splits the rows into chunks, stores them and queues the first chunk;
each ``import.chunk`` message plans its rows against the contacts that already own their
identities, writes the result with BatchWriteItem, counts the chunk once, then queues the
next one. Chunks run one after another, never side by side, so a row always sees what
every earlier row of the import did: two rows with the same email, a thousand lines
apart, still make one contact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.contacts import ContactFields, identity_keys
from chalicelib.domain.imports import (
    ChunkPlan,
    ImportFormat,
    ImportJob,
    ImportOptions,
    ImportRecord,
    RowError,
    RowRejected,
    chunk_records,
    parse_row,
    plan_chunk,
    split_records,
)
from chalicelib.observability import logger
from chalicelib.pipeline.messages import ImportChunk
from chalicelib.pipeline.queues import enqueue
from chalicelib.services import segment_triggers
from chalicelib.store import contacts as contact_store
from chalicelib.store import imports as store
from chalicelib.store.events_out import publish_events


def submit_import(
    tenant_id: str, import_format: ImportFormat, text: str, options: ImportOptions
) -> ImportJob:
    """Store an import's rows and queue its first chunk; returns the job (queued)."""
    chunks = chunk_records(split_records(import_format, text))
    job = store.create_import(tenant_id, import_format, chunks, options)
    _queue_chunk(tenant_id, job.id, 0)
    return job


def _queue_chunk(tenant_id: str, import_id: str, index: int) -> None:
    message = ImportChunk(tenant_id=tenant_id, import_id=import_id, chunk=index)
    enqueue("control", [message.as_message()])


def process_chunk(message: dict[str, Any]) -> None:
    """Run one chunk; a redelivered or concurrent copy changes no count (see record_chunk)."""
    chunk = ImportChunk.model_validate(message)
    tenant_id, import_id, index = chunk.tenant_id, chunk.import_id, chunk.chunk
    state = store.import_state(tenant_id, import_id)
    if index in state.done_chunks:
        _carry_on(tenant_id, state, index)
        return
    now = datetime.now(UTC)
    records = store.load_chunk(tenant_id, import_id, index)
    if records is None:
        store.note_failure(tenant_id, import_id, f"chunk {index} is missing (expired?)", now)
        store.finish_import(tenant_id, import_id, "failed", now)
        return
    store.mark_running(tenant_id, import_id, now)
    try:
        plan = _plan(tenant_id, import_id, records, state.options, now)
        contact_store.write_import_plan(tenant_id, plan)
        if state.options.emit_events:
            publish_events(
                tenant_id,
                (
                    contact_store.saved_event(c, created=new, changed=changed)
                    for c, new, changed in plan.saved()
                ),
            )
        else:  # no contact.saved to carry the change to the segment triggers
            saved = list(plan.saved())
            segment_triggers.queue_check(
                tenant_id, [c.id for c, _, _ in saved], created=[c.id for c, new, _ in saved if new]
            )
    except Exception as error:
        store.note_failure(tenant_id, import_id, f"chunk {index}: {error}", now)
        raise
    after = store.record_chunk(
        tenant_id,
        import_id,
        index,
        created=plan.created_rows,
        updated=plan.updated_rows,
        errors=plan.errors,
        now=now,
    )
    if after is None:
        logger.info("import chunk counted by another delivery", extra={"chunk": index})
        return
    _carry_on(tenant_id, after, index)
    store.drop_chunk(tenant_id, import_id, index)


def _plan(
    tenant_id: str,
    import_id: str,
    records: list[ImportRecord],
    options: ImportOptions,
    now: datetime,
) -> ChunkPlan:
    rows: list[tuple[int, ContactFields | RowError]] = []
    for line, value in records:
        try:
            rows.append((line, parse_row(value, options)))
        except RowRejected as rejected:
            rows.append((line, rejected.error))
    identities = [i for _, r in rows if isinstance(r, ContactFields) for i in identity_keys(r)]
    owners = contact_store.resolve_identities(tenant_id, identities)
    existing = contact_store.get_contacts(tenant_id, set(owners.values()))
    return plan_chunk(import_id, rows, owners, existing, now)


def _carry_on(tenant_id: str, state: store.ImportState, index: int) -> None:
    """After chunk ``index`` is counted: queue the next chunk, or mark the job completed."""
    if len(state.done_chunks) == state.chunks:
        if state.job.status != "completed":
            store.finish_import(tenant_id, state.job.id, "completed", datetime.now(UTC))
    elif index + 1 < state.chunks and index + 1 not in state.done_chunks:
        _queue_chunk(tenant_id, state.job.id, index + 1)
