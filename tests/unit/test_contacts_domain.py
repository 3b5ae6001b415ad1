"""Contact rules and import planning, without AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.domain.contacts import (
    ATTRIBUTES_MAX_BYTES,
    Contact,
    ContactFields,
    ContactFilter,
    apply_changes,
    contact_saved_detail,
    imported_contact_id,
    new_contact,
    normalize_email,
    normalize_phone,
)
from chalicelib.domain.errors import PayloadTooLarge, ValidationFailed
from chalicelib.domain.imports import (
    CHUNK_MAX_ROWS,
    MAX_ROWS,
    ImportOptions,
    RowError,
    RowRejected,
    chunk_records,
    parse_row,
    plan_chunk,
    split_records,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def fields(**values) -> ContactFields:
    return ContactFields.model_validate(values)


def field_of(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.errors()[0]["loc"])


# -- normalization ----------------------------------------------------------------------
def test_email_is_case_folded_for_identity():
    assert normalize_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"


@pytest.mark.parametrize("bad", ["", "ann", "ann@", "@x.com", "ann@@x.com", "a b@x.com"])
def test_bad_email_names_the_email_field(bad):
    with pytest.raises(ValidationFailed) as raised:
        normalize_email(bad)
    assert raised.value.field == "email"


@given(
    st.from_regex(r"[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,15}\.(com|org|DE|Net)", fullmatch=True)
)
def test_email_normalization_is_idempotent(email):
    try:
        once = normalize_email(email)
    except ValidationFailed:
        return  # e.g. a dot at the start of the local part: rejected, nothing to check
    assert normalize_email(once) == once == once.lower()


def test_phone_becomes_e164_and_national_numbers_need_a_region():
    assert normalize_phone("+49 151 12345678") == "+4915112345678"
    assert normalize_phone("0151 12345678", default_region="DE") == "+4915112345678"
    with pytest.raises(ValidationFailed) as raised:
        normalize_phone("0151 12345678")
    assert raised.value.field == "phone"


@pytest.mark.parametrize("bad", ["12", "+1 000", "phone", "+99912345678"])
def test_invalid_phones_are_refused(bad):
    with pytest.raises(ValidationFailed):
        normalize_phone(bad)


# -- field validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "+1 555"}, "phone"),
        ({"email": "a@x.com", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@x.com", "locale": "english please"}, "locale"),
        ({"email": "a@x.com", "first_name": "Ann\r\nBcc: evil@x.com"}, "first_name"),
        ({"email": "a@x.com", "last_name": "Lee\x00"}, "last_name"),
        ({"email": "a@x.com", "nickname": "Al"}, "nickname"),
        ({"email": "a@x.com", "attributes": {"blob": "x" * ATTRIBUTES_MAX_BYTES}}, "attributes"),
        ({"email": "a@x.com", "attributes": {"n": float("inf")}}, "attributes"),
        ({"email": "a@x.com", "attributes": ["not", "an", "object"]}, "attributes"),
        ({"email": "a@x.com", "tags": ["ok", ""]}, "tags.1"),
        ({"email": "a@x.com", "lead_score": "high"}, "lead_score"),
        ({"email": "a@x.com", "status": "maybe"}, "status"),
        ({"email": "a@x.com", "email_consent_at": "2026-01-01T00:00:00"}, "email_consent_at"),
    ],
)
def test_each_bad_field_is_named(values, field):
    with pytest.raises(ValidationError) as raised:
        ContactFields.model_validate(values)
    assert field_of(raised.value) == field


def test_deeply_nested_attributes_are_refused():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ValidationError) as raised:
        fields(email="a@x.com", attributes=deep)
    assert field_of(raised.value) == "attributes"


def test_valid_fields_are_normalized():
    parsed = fields(
        email="Ann@X.com",
        phone="+49 151 12345678",
        timezone="Europe/Berlin",
        locale="pt_BR",
        tags=["vip", "vip", "beta"],
    )
    assert (parsed.email, parsed.phone, parsed.locale) == ("ann@x.com", "+4915112345678", "pt-BR")
    assert parsed.tags == ["vip", "beta"]


# -- creating and changing --------------------------------------------------------------
def test_a_contact_needs_an_email_or_a_phone():
    with pytest.raises(ValidationFailed) as raised:
        new_contact(fields(first_name="Ann"), NOW)
    assert raised.value.field == "email"


def test_patch_changes_only_what_was_sent_and_null_clears():
    contact = new_contact(
        fields(email="a@x.com", first_name="Ann", last_name="Lee", tags=["vip"]), NOW
    )
    later = NOW + timedelta(minutes=1)
    changed_contact, changed = apply_changes(contact, fields(last_name=None, tags=None), later)
    assert changed == ["last_name", "tags"]
    assert changed_contact.first_name == "Ann"
    assert changed_contact.last_name is None and changed_contact.tags == []
    assert changed_contact.updated_at == later and changed_contact.created_at == NOW


def test_attributes_merge_by_key_and_null_removes_a_key_or_all():
    contact = new_contact(fields(email="a@x.com", attributes={"plan": "free", "seats": 1}), NOW)
    merged, _ = apply_changes(contact, fields(attributes={"plan": "pro", "seats": None}), NOW)
    assert merged.attributes == {"plan": "pro"}
    cleared, changed = apply_changes(merged, fields(attributes=None), NOW)
    assert cleared.attributes == {} and changed == ["attributes"]


def test_merged_attributes_may_not_outgrow_the_limit():
    half = "x" * (ATTRIBUTES_MAX_BYTES // 2)
    contact = new_contact(fields(email="a@x.com", attributes={"a": half}), NOW)
    with pytest.raises(ValidationFailed) as raised:
        apply_changes(contact, fields(attributes={"b": half}), NOW)
    assert raised.value.field == "attributes"


def test_clearing_the_only_identity_is_refused():
    contact = new_contact(fields(email="a@x.com"), NOW)
    with pytest.raises(ValidationFailed) as raised:
        apply_changes(contact, fields(email=None), NOW)
    assert raised.value.field == "email"


def test_unsubscribing_stamps_the_time_and_resubscribing_clears_it():
    contact = new_contact(fields(email="a@x.com"), NOW)
    gone, changed = apply_changes(contact, fields(status="unsubscribed"), NOW)
    assert gone.unsubscribed_at == NOW and changed == ["status"]
    back, _ = apply_changes(gone, fields(status="subscribed"), NOW)
    assert back.unsubscribed_at is None
    with pytest.raises(ValidationFailed):
        apply_changes(contact, fields(status=None), NOW)


def test_an_unchanged_patch_changes_nothing():
    contact = new_contact(fields(email="a@x.com", first_name="Ann"), NOW)
    same, changed = apply_changes(contact, fields(email="A@X.COM", first_name="Ann"), NOW)
    assert same is contact and changed == []


def test_filter_checks_status_tag_and_list():
    contact = new_contact(fields(email="a@x.com", tags=["vip"]), NOW).model_copy(
        update={"lists": ["l1"]}
    )
    assert ContactFilter(status="subscribed", tag="vip", list_id="l1").matches(contact)
    assert not ContactFilter(tag="beta").matches(contact)
    assert not ContactFilter(list_id="l2").matches(contact)
    assert not ContactFilter().active


def test_contact_saved_detail_names_the_contact_and_what_changed():
    contact = new_contact(fields(email="a@x.com", first_name="Ann"), NOW)
    detail = contact_saved_detail(contact, created=True, changed=["email", "first_name"])
    assert detail["contact"] == {"id": contact.id, "email": "a@x.com", "phone": None}
    assert detail["properties"]["first_name"] == "Ann"
    assert detail["properties"]["created"] is True
    json.dumps(detail)  # it must travel as JSON


# -- import rows ------------------------------------------------------------------------
def test_csv_rows_keep_their_physical_line_numbers():
    text = 'email,first_name\n\na@x.com,Ann\n"b@x.com","Two\nlines"\nc@x.com,Cy\n'
    assert split_records("csv", text) == [
        (3, {"email": "a@x.com", "first_name": "Ann"}),
        (4, {"email": "b@x.com", "first_name": "Two\nlines"}),
        (6, {"email": "c@x.com", "first_name": "Cy"}),
    ]


def test_unknown_csv_column_refuses_the_whole_import():
    with pytest.raises(ValidationFailed) as raised:
        split_records("csv", "email,nickname\na@x.com,Al\n")
    assert raised.value.field == "columns.nickname"


def test_too_many_rows_are_refused_before_anything_is_stored():
    text = "\n".join(["{}"] * (MAX_ROWS + 1))
    with pytest.raises(PayloadTooLarge):
        split_records("jsonl", text)


def test_chunks_hold_at_most_chunk_max_rows_in_order():
    records = [(n, "{}") for n in range(1, 2 * CHUNK_MAX_ROWS + 2)]
    chunks = chunk_records(records)
    assert [len(c) for c in chunks] == [CHUNK_MAX_ROWS, CHUNK_MAX_ROWS, 1]
    assert [r for c in chunks for r in c] == records


def test_csv_cells_map_to_fields_tags_and_attributes():
    row = parse_row(
        {"email": "A@x.com", "tags": "vip; beta", "lead_score": "7", "attributes.plan": "pro"},
        ImportOptions(),
    )
    assert (row.email, row.tags, row.lead_score) == ("a@x.com", ["vip", "beta"], 7)
    assert row.attributes == {"plan": "pro"}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("{not json", None),
        ("[1, 2]", None),
        ('{"email": "nope"}', "email"),
        ('{"email": "a@x.com", "shoe_size": 9}', "shoe_size"),
        ({"email": "a@x.com", "lead_score": "many"}, "lead_score"),
        ({"email": "a@x.com", "": "3 cells for 2 columns"}, None),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(value, field):
    with pytest.raises(RowRejected) as raised:
        parse_row(value, ImportOptions())
    assert raised.value.error.field == field
    assert raised.value.error.reason


def test_default_region_reads_national_phone_numbers():
    row = parse_row('{"phone": "0151 12345678"}', ImportOptions(default_region="DE"))
    assert row.phone == "+4915112345678"


# -- planning a chunk -------------------------------------------------------------------
def test_two_rows_with_one_email_make_one_contact_and_the_last_wins():
    rows = [
        (2, fields(email="a@x.com", first_name="First")),
        (9, fields(email="A@x.com", first_name="Last")),
    ]
    plan = plan_chunk("imp_1", rows, {}, {}, NOW)
    assert (plan.created_rows, plan.updated_rows) == (1, 1)
    [contact] = plan.created.values()
    assert contact.id == imported_contact_id("imp_1", 2)
    assert contact.first_name == "Last"
    assert plan.claimed == {("email", "a@x.com"): contact.id}


def test_rows_update_the_contact_owning_their_email_then_their_phone():
    ann = new_contact(fields(email="ann@x.com", first_name="Ann"), NOW)
    bob = new_contact(fields(phone="+4915112345678"), NOW)
    owners = {("email", "ann@x.com"): ann.id, ("phone", "+4915112345678"): bob.id}
    rows = [
        (2, fields(email="ann@x.com", last_name="Lee")),
        (3, fields(email="bob@x.com", phone="+4915112345678")),
    ]
    plan = plan_chunk("imp_1", rows, owners, {ann.id: ann, bob.id: bob}, NOW)
    assert (plan.created_rows, plan.updated_rows) == (0, 2)
    assert plan.updated[ann.id][0].last_name == "Lee"
    assert plan.updated[ann.id][1] == {"last_name"}
    assert plan.updated[bob.id][0].email == "bob@x.com"
    assert plan.claimed == {("email", "bob@x.com"): bob.id}


def test_a_row_whose_email_and_phone_belong_to_two_contacts_is_rejected():
    ann = new_contact(fields(email="ann@x.com"), NOW)
    bob = new_contact(fields(phone="+4915112345678"), NOW)
    owners = {("email", "ann@x.com"): ann.id, ("phone", "+4915112345678"): bob.id}
    rows = [(5, fields(email="ann@x.com", phone="+4915112345678"))]
    plan = plan_chunk("imp_1", rows, owners, {ann.id: ann, bob.id: bob}, NOW)
    assert plan.errors[0].line == 5 and plan.errors[0].field == "phone"
    assert bob.id in plan.errors[0].reason
    assert not plan.updated and not plan.claimed


def test_an_email_moved_by_a_row_releases_the_old_identity():
    ann = new_contact(fields(email="old@x.com", phone="+4915112345678"), NOW)
    owners = {("phone", "+4915112345678"): ann.id, ("email", "old@x.com"): ann.id}
    rows = [(2, fields(email="new@x.com", phone="+4915112345678"))]
    plan = plan_chunk("imp_1", rows, owners, {ann.id: ann}, NOW)
    assert plan.released == [("email", "old@x.com")]
    assert plan.claimed == {("email", "new@x.com"): ann.id}


def test_a_rerun_counts_its_own_creations_as_created_again():
    first = plan_chunk("imp_1", [(2, fields(email="a@x.com"))], {}, {}, NOW)
    written = first.created[imported_contact_id("imp_1", 2)]
    again = plan_chunk(
        "imp_1", [(2, fields(email="a@x.com"))], first.claimed, {written.id: written}, NOW
    )
    assert (again.created_rows, again.updated_rows) == (1, 0)


def test_rejected_rows_keep_their_line_and_never_stop_the_others():
    rows: list = [
        (2, RowError(line=0, reason="not valid JSON", field=None)),
        (3, fields(first_name="No identity")),
        (4, fields(email="ok@x.com")),
    ]
    plan = plan_chunk("imp_1", rows, {}, {}, NOW)
    assert [(e.line, e.field) for e in plan.errors] == [(2, None), (3, "email")]
    assert plan.created_rows == 1


def test_saved_lists_new_and_updated_contacts():
    ann = new_contact(fields(email="ann@x.com"), NOW)
    rows = [(2, fields(email="ann@x.com", first_name="Ann")), (3, fields(email="b@x.com"))]
    plan = plan_chunk("imp_1", rows, {("email", "ann@x.com"): ann.id}, {ann.id: ann}, NOW)
    saved = {c.email: (new, changed) for c, new, changed in plan.saved()}
    assert saved == {"b@x.com": (True, []), "ann@x.com": (False, ["first_name"])}
    assert isinstance(plan.saved()[0][0], Contact)
