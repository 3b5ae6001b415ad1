"""Links in responses come from the configured public base URL, not from the request:
a client's ``Host`` or ``X-Forwarded-Proto`` never chooses where seed-002 pages point."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Tenant, body_of

SPOOFED = {"Host": "evil.example", "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "x.test"}


def test_seed002_page_links_use_the_public_base_url_whatever_host_is_sent(
    tenant: Tenant, herald_env: Callable[..., None]
) -> None:
    herald_env(public_base_url="https://mail.example.org/herald/")
    for name in ("a", "b", "c"):
        created = tenant.call("POST", "/campaigns/", {"name": name, "channel": "email"})
        assert created.status_code == 201, created.body
    first = body_of(tenant.call("GET", "/campaigns/?page_size=1&ordering=name", headers=SPOOFED))
    assert (
        first["next"]
        == "https://mail.example.org/herald/campaigns/?ordering=name&page=2&page_size=1"
    )
    last = body_of(tenant.call("GET", "/campaigns?page=last&page_size=1", headers=SPOOFED))
    assert last["previous"] == "https://mail.example.org/herald/campaigns?page=2&page_size=1"
    assert "evil" not in str(first) + str(last) and "gopher" not in str(first) + str(last)
