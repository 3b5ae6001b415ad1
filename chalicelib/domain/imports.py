"""Bulk contact imports: reading rows, and deciding what each row does to which contact.

An import is split into chunks when it is submitted (``split_records`` then
``chunk_records``); each chunk is later planned in one go (``plan_chunk``) from the rows
and the contacts that already own their identities. Planning is pure, so the rules
(upsert by email first, then phone; the last row for an identity wins; a bad row is
rejected with its line number and never stops the others) are tested without AWS.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from chalicelib.domain.contacts import (
    Contact,
    ContactFields,
    Identity,
    apply_changes,
    first_error,
    identity_keys,
    imported_contact_id,
    new_contact,
    normalize_phone,
)
from chalicelib.domain.errors import PayloadTooLarge, ValidationFailed
from chalicelib.domain.model import Model

ImportFormat = Literal["jsonl", "csv"]
ImportStatus = Literal["queued", "running", "completed", "failed"]

MAX_ROWS = 100_000
CHUNK_MAX_ROWS = 1_000
CHUNK_MAX_BYTES = 300_000  # a chunk is one DynamoDB item; items stop at 400 KB
ERRORS_SHOWN = 1_000
REASON_MAX_LENGTH = 300
TAG_SEPARATOR = ";"
ATTRIBUTE_COLUMN_PREFIX = "attributes."
CSV_COLUMNS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "timezone",
        "locale",
        "tags",
        "lead_score",
        "status",
        "email_consent_at",
        "sms_consent_at",
    }
)

# A row as stored in a chunk: its line number and either its CSV cells by column, or the
# raw text of a JSON line (parsed when the chunk runs, so a bad line is a rejected row).
ImportRecord = tuple[int, dict[str, str] | str]


class ImportOptions(Model):
    model_config = ConfigDict(extra="forbid")

    default_region: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Region (ISO 3166 alpha-2) for phone numbers written without +country.",
    )
    emit_events: bool = Field(
        default=False, description="Publish contact.saved for every contact the import saves."
    )


class RowError(Model):
    line: int
    reason: str
    field: str | None = None


class ImportJob(Model):
    """An import as ``GET /v1/imports/{id}`` reports it."""

    id: str
    status: ImportStatus
    format: ImportFormat
    total: int = Field(description="Rows in the import.")
    processed: int = 0
    created: int = 0
    updated: int = Field(
        default=0,
        description="Rows that updated an existing contact (including one an earlier row made).",
    )
    rejected: int = 0
    errors: list[RowError] = Field(
        default_factory=list, description=f"The first {ERRORS_SHOWN} rejected rows."
    )
    errors_truncated: bool = False
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    last_error: str | None = Field(
        default=None, description="The last failure a chunk met (it is retried)."
    )


class RowRejected(Exception):
    """A row that cannot be used; ``error`` gets its line number when the chunk is planned."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.error = RowError(line=0, reason=reason[:REASON_MAX_LENGTH], field=field)


# -- submitting -------------------------------------------------------------------------
def split_records(format: ImportFormat, text: str) -> list[ImportRecord]:
    """The rows of an import with their line numbers; blank lines are skipped.

    A CSV header naming a column Herald does not know refuses the whole import (422 with
    ``columns.<name>``): every row would lose that data, which is no partial success.
    """
    records = _csv_records(text) if format == "csv" else _jsonl_records(text)
    if len(records) > MAX_ROWS:
        raise PayloadTooLarge(
            f"{len(records)} rows; one import takes at most {MAX_ROWS} (split the file)",
            field="data",
        )
    if not records:
        raise ValidationFailed("the import has no rows", field="data")
    return records


def _jsonl_records(text: str) -> list[ImportRecord]:
    return [
        (number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def _csv_records(text: str) -> list[ImportRecord]:
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    for name in header:
        if name not in CSV_COLUMNS and not (
            name.startswith(ATTRIBUTE_COLUMN_PREFIX) and len(name) > len(ATTRIBUTE_COLUMN_PREFIX)
        ):
            raise ValidationFailed(
                f"unknown column {name!r}: use {sorted(CSV_COLUMNS)} or attributes.<name>",
                field=f"columns.{name}",
            )
    if len(set(header)) != len(header):
        raise ValidationFailed("a column appears twice in the header", field="columns")
    records: list[ImportRecord] = []
    start = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            records.append((start, _cells(header, cells)))
        start = reader.line_num + 1
    return records


def _cells(header: list[str], cells: list[str]) -> dict[str, str]:
    """Non-empty cells by column; an extra cell is kept under '' so the row is rejected."""
    row = {name: value for name, value in zip(header, cells, strict=False) if value.strip()}
    if len(cells) > len(header):
        row[""] = f"{len(cells)} cells for {len(header)} columns"
    return row


def chunk_records(records: list[ImportRecord]) -> list[list[ImportRecord]]:
    """Consecutive rows, at most CHUNK_MAX_ROWS and about CHUNK_MAX_BYTES a chunk."""
    chunks: list[list[ImportRecord]] = []
    current: list[ImportRecord] = []
    size = 0
    for record in records:
        record_size = len(json.dumps(record, separators=(",", ":")).encode())
        if current and (len(current) == CHUNK_MAX_ROWS or size + record_size > CHUNK_MAX_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


# -- one row ----------------------------------------------------------------------------
def parse_row(value: dict[str, str] | str, options: ImportOptions) -> ContactFields:
    """The contact fields one row sets; RowRejected says why a row cannot be used."""
    data = _from_json_line(value) if isinstance(value, str) else _from_cells(value)
    phone = data.get("phone")
    if options.default_region and isinstance(phone, str) and not phone.strip().startswith("+"):
        try:
            data["phone"] = normalize_phone(phone, options.default_region)
        except ValidationFailed as error:
            raise RowRejected(error.message, "phone") from None
    try:
        return ContactFields.model_validate(data)
    except ValidationError as error:
        field, message = first_error(error)
        raise RowRejected(message, field) from None


def _from_json_line(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError as error:
        raise RowRejected(f"not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RowRejected("a line must be a JSON object")
    return data


def _from_cells(cells: dict[str, str]) -> dict[str, Any]:
    if "" in cells:
        raise RowRejected(cells[""])
    data: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for column, value in cells.items():
        if column.startswith(ATTRIBUTE_COLUMN_PREFIX):
            attributes[column[len(ATTRIBUTE_COLUMN_PREFIX) :]] = value
        elif column == "tags":
            data["tags"] = [t.strip() for t in value.split(TAG_SEPARATOR) if t.strip()]
        elif column == "lead_score":
            try:
                data["lead_score"] = int(value.strip())
            except ValueError:
                raise RowRejected("must be a whole number", "lead_score") from None
        else:
            data[column] = value
    if attributes:
        data["attributes"] = attributes
    return data


# -- one chunk --------------------------------------------------------------------------
@dataclass
class ChunkPlan:
    """What one chunk writes, and what it reports.

    ``created`` contacts are written whole; ``updated`` ones only in the fields that
    changed (so list memberships and event summaries written meanwhile survive).
    """

    created: dict[str, Contact] = field(default_factory=dict)
    updated: dict[str, tuple[Contact, set[str]]] = field(default_factory=dict)
    claimed: dict[Identity, str] = field(default_factory=dict)
    released: list[Identity] = field(default_factory=list)
    created_rows: int = 0
    updated_rows: int = 0
    errors: list[RowError] = field(default_factory=list)

    def saved(self) -> list[tuple[Contact, bool, list[str]]]:
        """Each contact saved: the contact, whether it is new, and the fields that changed."""
        fresh: list[tuple[Contact, bool, list[str]]] = [
            (c, True, []) for c in self.created.values()
        ]
        return [*fresh, *((c, False, sorted(f)) for c, f in self.updated.values())]


def plan_chunk(
    import_id: str,
    rows: list[tuple[int, ContactFields | RowError]],
    owners: dict[Identity, str],
    existing: dict[str, Contact],
    now: datetime,
) -> ChunkPlan:
    """Decide, row by row in line order, what each row does.

    ``owners`` maps the identities the rows name to the contacts that own them now, and
    ``existing`` holds those contacts. A row goes to the contact owning its email, else the
    one owning its phone, else to a new contact whose id derives from the import and line
    (so a re-run recognises it as its own creation and counts it as created again). A row
    whose email and phone belong to two different contacts is rejected, not guessed at.
    """
    planner = _Planner(import_id, now, dict(owners), dict(existing))
    for line, row in rows:
        try:
            if isinstance(row, RowError):
                raise RowRejected(row.reason, row.field)
            planner.apply(line, row)
        except RowRejected as rejected:
            planner.plan.errors.append(rejected.error.model_copy(update={"line": line}))
        except ValidationFailed as failed:
            reason = failed.message[:REASON_MAX_LENGTH]
            planner.plan.errors.append(RowError(line=line, reason=reason, field=failed.field))
    plan = planner.plan
    plan.claimed = {i: c for i, c in planner.owners.items() if owners.get(i) != c}
    plan.released = [i for i in owners if i not in planner.owners]
    return plan


@dataclass
class _Planner:
    """The state of a chunk as its rows are applied: who owns which identity, and each
    contact as the rows so far left it."""

    import_id: str
    now: datetime
    owners: dict[Identity, str]
    contacts: dict[str, Contact]
    plan: ChunkPlan = field(default_factory=ChunkPlan)

    def apply(self, line: int, fields: ContactFields) -> None:
        identities = identity_keys(fields)
        target = next((self.owners[i] for i in identities if i in self.owners), None)
        for identity in identities:
            owner = self.owners.get(identity)
            if owner is not None and owner != target:
                kind, _ = identity
                raise RowRejected(f"this {kind} belongs to another contact ({owner})", kind)
        own_id = imported_contact_id(self.import_id, line)
        before = self.contacts.get(target) if target not in (None, own_id) else None
        if before is None:
            # New, made by this very row on an earlier run, or an identity left pointing at
            # a contact that no longer exists: (re)create it under this row's own id.
            contact = new_contact(fields, self.now, own_id)
            self.plan.created[contact.id] = contact
            self.plan.created_rows += 1
        else:
            contact, changed = apply_changes(before, fields, self.now)
            if contact.id in self.plan.created:
                self.plan.created[contact.id] = contact
            else:
                _, earlier = self.plan.updated.get(contact.id, (contact, set()))
                self.plan.updated[contact.id] = (contact, earlier | set(changed))
            self.plan.updated_rows += 1
            for identity in identity_keys(before):
                self.owners.pop(identity, None)
        self.contacts[contact.id] = contact
        for identity in identity_keys(contact):
            self.owners[identity] = contact.id
