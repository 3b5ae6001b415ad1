"""The API explorer at /docs: Swagger UI served from the package (no CDN, so it works
offline and inside a VPC) on a valid OpenAPI document where the seeds are their own groups."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from chalice.test import Client
from openapi_spec_validator import validate

from chalicelib.api.docs import ASSETS
from tests.conftest import body_of, call

BASE = "http://herald.internal/api/docs"  # as under an API Gateway stage prefix


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_docs_is_an_explorer_page_that_loads_only_local_files(client: Client) -> None:
    page = call(client, "GET", "/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.body.decode()
    references = _references(html)
    assert len(references) == 5  # no icon, the stylesheet, two scripts, the document link
    assert references[0] == "data:,"  # no favicon request to a route that has none
    for reference in references[1:]:
        assert not urlsplit(reference).scheme and not reference.startswith("/"), reference
        # relative to the page, so a stage prefix is kept
        assert urljoin(BASE, reference).startswith("http://herald.internal/api/")
    assert "https://" not in html and "http://" not in html


def test_every_asset_the_page_loads_is_served_with_its_content_type(client: Client) -> None:
    html = call(client, "GET", "/docs").body.decode()
    loaded = [urlsplit(r).path for r in _references(html) if r.startswith("docs/assets/")]
    assert {path.rsplit("/", 1)[1] for path in loaded} == set(ASSETS)
    for path in loaded:
        response = call(client, "GET", f"/{path}")
        assert response.status_code == 200, path
        assert response.headers["Content-Type"] == ASSETS[path.rsplit("/", 1)[1]]
        text = response.body.decode()
        assert len(text) > 100 and "sourceMappingURL" not in text
    initializer = call(client, "GET", "/docs/assets/explorer.js").body.decode()
    assert 'fetch("v1/openapi.json")' in initializer and "validatorUrl: null" in initializer


def test_an_unknown_asset_is_404_in_the_error_shape(client: Client) -> None:
    for name in ("index.html", "..%2Fdocs.py", "swagger-ui-bundle.js.map"):
        response = call(client, "GET", f"/docs/assets/{name}")
        assert response.status_code == 404
        assert body_of(response)["error"]["code"] == "not_found"


def test_the_document_is_valid_openapi_with_the_seeds_as_their_own_groups(client: Client) -> None:
    document = body_of(call(client, "GET", "/v1/openapi.json"))
    validate(document)
    tags = [tag["name"] for tag in document["tags"]]
    used = {t for ops in document["paths"].values() for op in ops.values() for t in op["tags"]}
    assert set(tags) == used
    seeds = [tag for tag in document["tags"] if tag["name"].startswith("seed ")]
    assert [tag["name"].split(":")[0] for tag in seeds] == [
        "seed 000",
        "seed 001",
        "seed 002",
        "seed 003",
        "seed 004",
    ]
    assert all(tag["description"] for tag in seeds)
    assert tags[-5:] == [tag["name"] for tag in seeds]  # after the native groups
    assert "/campaigns" in document["paths"] and "/campaign/{campaign}" in document["paths"]
    assert "/email/campaigns/{sequence_id}/steps/{step_id}" in document["paths"]
    assert "/api/workspaces/{workspaceId}/campaigns/{campaignId}/enroll" in document["paths"]
