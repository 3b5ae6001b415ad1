"""Bulk imports through HTTP and the control queue, against moto."""

from __future__ import annotations

import csv
import io
import json

from chalicelib.aws import client
from chalicelib.domain.contacts import imported_contact_id
from chalicelib.local.poller import drain
from chalicelib.pipeline.queues import enqueue, queue_url
from chalicelib.store import contacts as contact_store
from tests.conftest import Tenant, body_of

ROWS = 2_000
BAD_EMAIL_ROWS = {i for i in range(ROWS) if i % 250 == 7}


def build_csv() -> tuple[str, dict[int, tuple[int, str | None]]]:
    """~2,000 CSV rows, a few of them bad; returns the text and, per bad row, its line and field.

    Row 50's plan spans two lines, so every later row sits one line further down: line
    numbers must count physical lines, not rows.
    """
    lines = ["email,first_name,tags,lead_score,timezone,attributes.plan"]
    bad: dict[int, tuple[int, str | None]] = {}
    line = 2
    for i in range(ROWS):
        email = f"user{i}@example.com"
        name, timezone, score, plan = f"User {i}", "Europe/Berlin", str(i), "gold"
        if i in BAD_EMAIL_ROWS:
            email = f"broken-{i}"
            bad[i] = (line, "email")
        if i == 12:
            email = "USER11@example.com"  # same contact as row 11, same chunk
        if i == 1_500:
            email, name = "user10@example.com", "Ten again"  # row 10's contact, next chunk
        if i == 50:
            plan = '"gold\nplus"'
        if i == 60:
            name = '"Sixty\r\nBcc: all@example.com"'
            bad[i] = (line, "first_name")
        if i == 100:
            timezone = "Mars/Base"
            bad[i] = (line, "timezone")
        if i == 200:
            plan = "gold,surplus"
            bad[i] = (line, None)
        if i == 300:
            score = "lots"
            bad[i] = (line, "lead_score")
        lines.append(f"{email},{name},vip;t{i % 3},{score},{timezone},{plan}")
        line += 1 + name.count("\n") + plan.count("\n")
    return "\n".join(lines) + "\n", bad


def lines_of_rows(text: str) -> dict[int, int]:
    """Row number → the line it starts on, read back from the text like a CSV reader would."""
    reader = csv.reader(io.StringIO(text))
    next(reader)
    starts: dict[int, int] = {}
    start = reader.line_num + 1
    for row_number, _ in enumerate(reader):
        starts[row_number] = start
        start = reader.line_num + 1
    return starts


def import_status(tenant: Tenant, import_id: str) -> dict:
    response = tenant.call("GET", f"/v1/imports/{import_id}")
    assert response.status_code == 200, response.body
    return body_of(response)


def test_csv_import_counts_rows_and_reports_bad_lines(tenant: Tenant):
    existing = tenant.call(
        "POST", "/v1/contacts", {"email": "user5@example.com", "last_name": "Keep"}
    )
    text, bad = build_csv()
    response = tenant.call("POST", "/v1/imports", text, headers={"Content-Type": "text/csv"})
    assert response.status_code == 202, response.body
    job = body_of(response)
    assert job["status"] == "queued" and job["total"] == ROWS
    drain(["control"])
    done = import_status(tenant, job["id"])
    assert done["status"] == "completed"
    assert done["processed"] == ROWS
    assert done["rejected"] == len(bad)
    # Updated: row 5 (an existing contact), 12 (row 11's email), 1,500 (row 10's email).
    assert done["updated"] == 3
    assert done["created"] == ROWS - len(bad) - 3
    assert [(e["line"], e["field"]) for e in done["errors"]] == sorted(bad.values())
    assert not done["errors_truncated"]

    keep = contact_store.find_by_email(tenant.id, "user5@example.com")
    assert keep.id == body_of(existing)["id"]
    assert (keep.last_name, keep.first_name, keep.attributes) == (
        "Keep",
        "User 5",
        {"plan": "gold"},
    )
    ten = contact_store.find_by_email(tenant.id, "user10@example.com")
    assert ten.first_name == "Ten again"  # the last row for an email wins
    assert contact_store.find_by_email(tenant.id, "user11@example.com").first_name == "User 12"
    fifty = contact_store.find_by_email(tenant.id, "user50@example.com")
    assert fifty.attributes == {"plan": "gold\nplus"}
    assert contact_store.find_by_email(tenant.id, "user60@example.com") is None
    assert contact_store.find_by_email(tenant.id, "user1999@example.com").tags == ["vip", "t1"]
    # Every row that created a contact made it under its deterministic id, owning its email.
    # (Identity items for all of them; the contacts themselves for a sample, because moto's
    # BatchGetItem slows down sharply with item size.)
    starts = lines_of_rows(text)
    created = {
        ("email", f"user{i}@example.com"): imported_contact_id(job["id"], starts[i])
        for i in range(ROWS)
        if i not in bad and i not in (5, 12, 1_500)
    }
    assert len(created) == done["created"]
    assert contact_store.resolve_identities(tenant.id, created) == created
    sample = list(created.values())[::40]
    assert len(contact_store.get_contacts(tenant.id, sample)) == len(sample)


def test_redelivered_chunks_change_no_count(tenant: Tenant):
    lines = [json.dumps({"email": f"u{i}@x.com"}) for i in range(1_200)]  # two chunks
    job = body_of(
        tenant.call(
            "POST",
            "/v1/imports",
            "\n".join(lines),
            headers={"Content-Type": "application/x-ndjson"},
        )
    )
    message = {"kind": "import.chunk", "tenant_id": tenant.id, "import_id": job["id"], "chunk": 0}
    enqueue("control", [message])  # the first chunk is now queued twice
    drain(["control"])
    first = import_status(tenant, job["id"])
    enqueue("control", [message, {**message, "chunk": 1}])  # and again after completion
    drain(["control"])
    again = import_status(tenant, job["id"])
    assert first["status"] == again["status"] == "completed"
    counts = ("processed", "created", "updated", "rejected")
    assert [again[c] for c in counts] == [first[c] for c in counts] == [1_200, 1_200, 0, 0]


def test_jsonl_import_upserts_by_email_then_phone_and_rejects_bad_lines(tenant: Tenant):
    by_phone = body_of(tenant.call("POST", "/v1/contacts", {"phone": "+4915112345678"}))
    by_email = body_of(tenant.call("POST", "/v1/contacts", {"email": "c@x.com"}))
    data = "\n".join(
        [
            json.dumps({"email": "new@x.com", "phone": "0151 12345678", "first_name": "Pia"}),
            "{broken json",
            "",
            json.dumps(["not", "an", "object"]),
            json.dumps({"email": "a@x.com", "shoe_size": 42}),
            json.dumps({"email": "c@x.com", "phone": "0151 12345678"}),
            json.dumps({"email": "b@x.com", "attributes": {"nested": {"ok": [1, 2.5]}}}),
        ]
    )
    body = {"format": "jsonl", "data": data, "options": {"default_region": "DE"}}
    job = body_of(tenant.call("POST", "/v1/imports", body))
    drain(["control"])
    done = import_status(tenant, job["id"])
    assert (done["total"], done["created"], done["updated"], done["rejected"]) == (6, 1, 1, 4)
    assert [(e["line"], e["field"]) for e in done["errors"]] == [
        (2, None),
        (4, None),
        (5, "shoe_size"),
        (6, "phone"),  # the email is one contact's, the phone another's
    ]
    pia = contact_store.get_contact(tenant.id, by_phone["id"])
    assert (pia.email, pia.first_name) == ("new@x.com", "Pia")
    assert contact_store.find_by_email(tenant.id, "b@x.com").attributes == {
        "nested": {"ok": [1, 2.5]}
    }
    assert contact_store.find_by_email(tenant.id, "a@x.com") is None
    assert contact_store.get_contact(tenant.id, by_email["id"]).phone is None


def test_an_unknown_csv_column_refuses_the_import_and_stores_nothing(tenant: Tenant):
    body = {"format": "csv", "data": "email,shoe_size\na@x.com,42\n"}
    response = tenant.call("POST", "/v1/imports", body)
    assert response.status_code == 422
    assert body_of(response)["error"]["field"] == "columns.shoe_size"
    bad_format = tenant.call("POST", "/v1/imports", {"format": "xlsx", "data": "x"})
    assert bad_format.status_code == 422 and body_of(bad_format)["error"]["field"] == "format"
    drain(["control"])
    assert body_of(tenant.call("GET", "/v1/contacts"))["items"] == []


def test_imports_can_announce_each_saved_contact(tenant: Tenant):
    response = tenant.call(
        "POST",
        "/v1/imports?emit_events=true",
        "email\na@x.com\nb@x.com\n",
        headers={"Content-Type": "text/csv"},
    )
    drain(["control"])
    assert import_status(tenant, body_of(response)["id"])["created"] == 2
    received = client("sqs").receive_message(
        QueueUrl=queue_url("triggers"), MaxNumberOfMessages=10
    )["Messages"]
    emails = sorted(json.loads(m["Body"])["detail"]["contact"]["email"] for m in received)
    assert emails == ["a@x.com", "b@x.com"]


def test_another_tenants_import_is_404(tenant: Tenant, other_tenant: Tenant):
    job = body_of(
        other_tenant.call("POST", "/v1/imports", {"format": "csv", "data": "email\na@x.com\n"})
    )
    assert tenant.call("GET", f"/v1/imports/{job['id']}").status_code == 404
    assert tenant.call("GET", "/v1/imports/not-an-id").status_code == 404
    assert other_tenant.call("GET", f"/v1/imports/{job['id']}").status_code == 200
