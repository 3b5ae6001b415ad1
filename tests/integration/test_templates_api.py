"""Templates through HTTP: CRUD, save-time checks, previews, tenant isolation."""

from __future__ import annotations

from tests.conftest import Tenant, body_of

WELCOME = {
    "name": "Welcome",
    "channel": "email",
    "subject": "Hi {{ contact.first_name | default('there') }}",
    "html": "<p>Hello {{ contact.first_name | default('there') }}</p>"
    "<a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
}


def create(tenant: Tenant, body: dict = WELCOME) -> dict:
    response = tenant.call("POST", "/v1/templates", body)
    assert response.status_code == 201, response.body
    return body_of(response)


def test_create_get_list_update_delete(tenant: Tenant):
    created = create(tenant)
    assert created["id"].startswith("tpl_")
    assert created["channel"] == "email" and created["text"] is None and created["strict"] is False

    fetched = body_of(tenant.call("GET", f"/v1/templates/{created['id']}"))
    assert fetched == created

    sms = create(tenant, {"name": "Promo", "channel": "sms", "body": "Sale! {{ unsubscribe_url }}"})
    listing = body_of(tenant.call("GET", "/v1/templates"))
    assert {t["id"] for t in listing["items"]} == {created["id"], sms["id"]}
    assert all("html" not in t and "body" not in t for t in listing["items"])

    patched = tenant.call(
        "PATCH", f"/v1/templates/{created['id']}", {"text": "Hi {{ contact.first_name }}"}
    )
    assert patched.status_code == 200, patched.body
    assert body_of(patched)["text"] == "Hi {{ contact.first_name }}"
    assert body_of(patched)["subject"] == WELCOME["subject"]  # untouched
    cleared = body_of(tenant.call("PATCH", f"/v1/templates/{created['id']}", {"text": None}))
    assert cleared["text"] is None

    assert tenant.call("DELETE", f"/v1/templates/{created['id']}").status_code == 204
    assert tenant.call("GET", f"/v1/templates/{created['id']}").status_code == 404


def test_syntax_errors_are_refused_at_save_naming_the_field(tenant: Tenant):
    for field, source in (("subject", "Hi {{ contact.first_name"), ("html", "{% if x %}")):
        response = tenant.call("POST", "/v1/templates", {**WELCOME, field: source})
        assert response.status_code == 422, response.body
        assert body_of(response)["error"]["field"] == field
    unknown = tenant.call("POST", "/v1/templates", {**WELCOME, "html": "{{ contcat.email }}"})
    assert body_of(unknown)["error"]["field"] == "html"
    assert "contcat" in body_of(unknown)["error"]["message"]
    assert body_of(tenant.call("GET", "/v1/templates"))["items"] == []


def test_fields_of_the_wrong_channel_or_missing_ones_are_refused(tenant: Tenant):
    wrong = tenant.call("POST", "/v1/templates", {**WELCOME, "body": "x"})
    assert wrong.status_code == 422 and body_of(wrong)["error"]["field"] == "body"
    missing = tenant.call("POST", "/v1/templates", {"name": "x", "channel": "sms"})
    assert missing.status_code == 422 and body_of(missing)["error"]["field"] == "body"
    injected = tenant.call("POST", "/v1/templates", {**WELCOME, "subject": "Hi\r\nBcc: a@b.c"})
    assert injected.status_code == 422 and body_of(injected)["error"]["field"] == "subject"
    unknown = tenant.call("POST", "/v1/templates", {**WELCOME, "colour": "red"})
    assert unknown.status_code == 422 and body_of(unknown)["error"]["field"] == "colour"


def test_a_bad_patch_leaves_the_template_as_it_was(tenant: Tenant):
    created = create(tenant)
    response = tenant.call("PATCH", f"/v1/templates/{created['id']}", {"html": "{% for %}"})
    assert response.status_code == 422 and body_of(response)["error"]["field"] == "html"
    cleared = tenant.call("PATCH", f"/v1/templates/{created['id']}", {"subject": None})
    assert cleared.status_code == 422 and body_of(cleared)["error"]["field"] == "subject"
    assert body_of(tenant.call("GET", f"/v1/templates/{created['id']}")) == created


def test_preview_with_a_sample_contact(tenant: Tenant):
    created = create(tenant)
    response = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact": {"first_name": "Ann"}}
    )
    assert response.status_code == 200, response.body
    preview = body_of(response)
    assert preview["subject"] == "Hi Ann"
    assert preview["html"].startswith("<p>Hello Ann</p><a href='http")
    assert preview["text"].startswith("Hello Ann")
    assert preview["errors"] == []
    empty = body_of(tenant.call("POST", f"/v1/templates/{created['id']}/preview", {}))
    assert empty["subject"] == "Hi there"


def test_preview_with_a_stored_contact(tenant: Tenant):
    contact = body_of(
        tenant.call("POST", "/v1/contacts", {"email": "bo@example.com", "first_name": "Bo"})
    )
    created = create(tenant)
    preview = body_of(
        tenant.call("POST", f"/v1/templates/{created['id']}/preview", {"contact_id": contact["id"]})
    )
    assert preview["subject"] == "Hi Bo"
    missing = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact_id": "c_" + "0" * 32}
    )
    assert missing.status_code == 404 and body_of(missing)["error"]["field"] == "contact_id"


def test_preview_reports_data_dependent_render_errors_per_part_with_200(tenant: Tenant):
    created = create(
        tenant,
        {
            "name": "Strict",
            "channel": "email",
            "subject": "Hi {{ contact.first_name }}",
            "html": "<p>{{ 100 // contact.lead_score }}</p>",
            "strict": True,
        },
    )
    response = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact": {"lead_score": 0}}
    )
    assert response.status_code == 200
    preview = body_of(response)
    assert preview["subject"] is None and preview["html"] is None
    assert [(e["field"], e["reason"]) for e in preview["errors"]] == [
        ("subject", "undefined"),
        ("html", "error"),
    ]


def test_saving_a_template_that_breaks_the_budget_is_refused_naming_the_part(tenant: Tenant):
    for part, source in (
        ("html", "<p>{{ range(10**9) | list }}</p>"),
        (
            "subject",
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        ),
        ("text", "{{ ''.__class__.__mro__ }}"),
    ):
        body = {**WELCOME, part: source}
        response = tenant.call("POST", "/v1/templates", body)
        assert response.status_code == 422, (part, response.body)
        assert body_of(response)["error"]["code"] == "render_error"
        assert body_of(response)["error"]["field"] == part
    created = create(tenant)
    patched = tenant.call(
        "PATCH", f"/v1/templates/{created['id']}", {"html": "{{ ('x' * 999999) * 2 }}"}
    )
    assert patched.status_code == 422 and body_of(patched)["error"]["field"] == "html"
    stored = body_of(tenant.call("GET", f"/v1/templates/{created['id']}"))
    assert stored["html"] == WELCOME["html"]  # nothing half-written
    listing = body_of(tenant.call("GET", "/v1/templates"))["items"]
    assert [t["id"] for t in listing] == [created["id"]]  # the refused creates left nothing


def test_preview_over_the_budget_for_this_contact_is_a_422(tenant: Tenant):
    # Fine for the sample contact used at save (lead_score 42), far over the step budget
    # for a contact whose lead_score is 10,000: the preview is bounded like a send.
    nested = (
        "{% for i in range(contact.lead_score) %}{% for j in range(contact.lead_score) %}"
        "{% endfor %}{% endfor %}done"
    )
    created = create(tenant, {**WELCOME, "html": nested})
    ok = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact": {"lead_score": 3}}
    )
    assert ok.status_code == 200 and body_of(ok)["html"] == "done"
    response = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact": {"lead_score": 10000}}
    )
    assert response.status_code == 422
    error = body_of(response)["error"]
    assert error["code"] == "render_error" and error["field"] == "html"
    assert "steps" in error["message"]


def test_sample_contact_is_validated(tenant: Tenant):
    created = create(tenant)
    response = tenant.call(
        "POST", f"/v1/templates/{created['id']}/preview", {"contact": {"email": "nope"}}
    )
    assert response.status_code == 422
    assert body_of(response)["error"]["field"] == "contact.email"


def test_another_tenants_template_is_not_found(tenant: Tenant, other_tenant: Tenant):
    created = create(tenant)
    for method, path, body in (
        ("GET", f"/v1/templates/{created['id']}", None),
        ("PATCH", f"/v1/templates/{created['id']}", {"name": "stolen"}),
        ("DELETE", f"/v1/templates/{created['id']}", None),
        ("POST", f"/v1/templates/{created['id']}/preview", {}),
    ):
        assert other_tenant.call(method, path, body).status_code == 404, (method, path)
    assert body_of(other_tenant.call("GET", "/v1/templates"))["items"] == []
    assert body_of(tenant.call("GET", f"/v1/templates/{created['id']}"))["name"] == "Welcome"
