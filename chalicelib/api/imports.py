"""Bulk contact imports: submit rows (JSON lines or CSV), get a job id at once, poll progress.

``POST /v1/imports`` takes either a JSON body ``{"format", "data", "options"}`` or the
rows themselves as ``text/csv`` or ``application/x-ndjson`` (options then in the query
string). The route reads the body itself, so it declares no body model to the gate.
"""

from __future__ import annotations

import re

from chalice import Blueprint, Response
from pydantic import Field, ValidationError

from chalicelib.api.errors import from_validation_error
from chalicelib.api.models import Input
from chalicelib.api.routing import JSON, Call, endpoint, read_body
from chalicelib.domain.errors import BadRequest, NotFound
from chalicelib.domain.imports import ImportFormat, ImportJob, ImportOptions
from chalicelib.pipeline.imports import submit_import
from chalicelib.store import imports as store

blueprint = Blueprint(__name__)

CSV = "text/csv"
NDJSON = "application/x-ndjson"
_FORMAT_BY_CONTENT_TYPE: dict[str, ImportFormat] = {CSV: "csv", NDJSON: "jsonl"}
_IMPORT_ID = re.compile(r"^imp_[0-9a-f]{32}$")


class ImportBody(Input):
    """An import sent as JSON: the rows are the text of a CSV file or of JSON lines."""

    format: ImportFormat
    data: str = Field(description="The rows: CSV with a header line, or one JSON object a line.")
    options: ImportOptions = Field(default_factory=ImportOptions)


class ImportQuery(Input):
    """Options for an import sent as a raw CSV or JSON-lines body."""

    default_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    emit_events: bool = False


@endpoint(
    blueprint,
    "/v1/imports",
    "POST",
    idempotent=True,
    auth="tenant",
    tag="imports",
    status=202,
    summary=(
        "Import up to 100,000 contacts (JSON body, text/csv or application/x-ndjson); "
        "returns the job at once"
    ),
    query=ImportQuery,
    response=ImportJob,
    content_types=(JSON, CSV, NDJSON),
)
def create_import(call: Call) -> ImportJob | Response:
    content_type = (call.request.headers.get("content-type") or JSON).split(";")[0].strip()
    import_format = _FORMAT_BY_CONTENT_TYPE.get(content_type.lower())
    if import_format is None:
        try:
            body = ImportBody.model_validate(read_body(call.request))
        except ValidationError as error:
            return from_validation_error(error)
        return submit_import(call.tenant_id, body.format, body.data, body.options)
    options = ImportOptions.model_validate(call.query.model_dump())
    return submit_import(call.tenant_id, import_format, _text(call.request.raw_body), options)


def _text(raw: bytes | str | None) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return (raw or b"").decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not UTF-8: {error}", field="body") from None


@endpoint(
    blueprint,
    "/v1/imports/{import_id}",
    "GET",
    auth="tenant",
    tag="imports",
    summary="An import's progress: counts and the first 1,000 rejected rows with line numbers",
    response=ImportJob,
)
def get_import(call: Call) -> ImportJob:
    import_id = call.params["import_id"]
    if not _IMPORT_ID.match(import_id):
        raise NotFound(f"import '{import_id}' not found", field="import_id")
    return store.get_import(call.tenant_id, import_id)
