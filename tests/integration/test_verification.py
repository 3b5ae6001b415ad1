"""Address verification on the real sender: statuses from the stub resolver (no network),
only acceptable statuses sent, skips counted as ``verification``, results cached per
address for ``age_threshold`` days, fresh verifications bounded by ``max_budget``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.verification import DomainRecords, classify
from chalicelib.local.poller import drain
from chalicelib.store.counters import read_counts
from chalicelib.store.verifications import cached_verdicts
from tests.conftest import Tenant
from tests.feedback_kit import Shop
from tests.send_kit import recipients_of, sent_mail

ADDRESSES = {
    "ada@example.com": "valid",
    "info@example.com": "risky",  # a role account
    "someone@mailinator.com": "risky",  # a disposable domain
    "ghost@nomx.example.net": "invalid",  # no MX, no A
    "lost@dnsfail.example.net": "unknown",  # the lookup failed
}


@pytest.fixture(autouse=True)
def fast(herald_env: Callable[..., None]) -> None:
    herald_env(ses_max_send_rate="1000000")


def verified_campaign(shop: Shop, **rule: Any) -> str:
    return shop.campaign(verification={"active": True, **rule})


def test_only_acceptable_statuses_are_sent_and_the_rest_counted(tenant: Tenant) -> None:
    shop = Shop(tenant)
    shop.contacts(ADDRESSES)
    campaign_id = verified_campaign(shop)
    shop.send(campaign_id)

    assert set(recipients_of(sent_mail())) == {"ada@example.com"}
    detail = shop.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert detail["sent"] == 1 and detail["skipped"] == {"verification": 4}
    cached = cached_verdicts(tenant.id, list(ADDRESSES))
    assert {address: c.status for address, c in cached.items()} == ADDRESSES
    assert read_counts(tenant.id, campaign_id)["verifications"] == 5

    # A second campaign accepting risky addresses re-uses the cache: no new verification.
    second = verified_campaign(shop, acceptable_statuses=["valid", "risky"])
    shop.send(second)
    assert sorted(recipients_of(sent_mail()[1:])) == [
        "ada@example.com",
        "info@example.com",
        "someone@mailinator.com",
    ]
    assert read_counts(tenant.id, second).get("verifications", 0) == 0


def test_a_spent_budget_leaves_addresses_unknown(tenant: Tenant) -> None:
    shop = Shop(tenant)
    shop.contacts(["ada@example.com", "bob@example.com"])
    campaign_id = verified_campaign(shop, max_budget=0, acceptable_statuses=["valid"])
    shop.send(campaign_id)
    assert sent_mail() == []
    assert shop.ok("GET", f"/v1/campaigns/{campaign_id}")["skipped"] == {"verification": 2}
    assert cached_verdicts(tenant.id, ["ada@example.com"]) == {}  # unknown: not cached

    lenient = verified_campaign(shop, max_budget=0, acceptable_statuses=["valid", "unknown"])
    shop.send(lenient)
    assert len(sent_mail()) == 2


def test_an_inactive_rule_verifies_nothing(tenant: Tenant) -> None:
    shop = Shop(tenant)
    shop.contacts(ADDRESSES)
    campaign_id = shop.campaign(verification={"active": False})
    shop.send(campaign_id)
    drain()
    assert len(sent_mail()) == 5
    assert cached_verdicts(tenant.id, list(ADDRESSES)) == {}


def test_classify_without_the_network() -> None:
    mx = DomainRecords(mx=True, a=False)
    assert classify("not an address", mx).status == "invalid"
    assert classify("a@b.example", DomainRecords(mx=False, a=True)).status == "valid"
    assert classify("support+x@b.example", mx).reason == "role_account"
    assert classify("a@yopmail.com", mx).reason == "disposable_domain"
    assert classify("a@b.example", None).status == "unknown"
