"""Refusals Chalice makes before a view runs (a content type the route does not take, a
method the path does not have) answer in Herald's one error shape, or in the route's
dialect envelope, never in Chalice's own ``{"Code", "Message"}`` (found by the fuzz test)."""

from __future__ import annotations

from tests.conftest import Tenant, body_of


def test_an_unsupported_content_type_is_415_in_herald_error_shape(tenant: Tenant) -> None:
    response = tenant.call("POST", "/v1/lists", "name=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    error = body_of(response)["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["field"] == "Content-Type"
    assert "text/plain" in error["message"]


def test_an_unknown_method_is_405_in_herald_error_shape_with_allow(tenant: Tenant) -> None:
    response = tenant.call("PUT", "/v1/lists")
    assert response.status_code == 405
    assert body_of(response)["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_a_seed_002_refusal_keeps_the_drf_shape(tenant: Tenant) -> None:
    response = tenant.call("POST", "/campaigns", "x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "text/plain" in body_of(response)["detail"]
