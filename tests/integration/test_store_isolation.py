"""The store layer, not the routes, is what keeps tenants apart: prove it at that level."""

from __future__ import annotations

import pytest

from chalicelib.aws import client
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.tenants import new_tenant_id
from chalicelib.settings import get_settings
from chalicelib.store.table import Condition, ConditionFailed, tenant_table


def _raw_keys() -> list[tuple[str, str]]:
    items = client("dynamodb").scan(TableName=get_settings().table_name)["Items"]
    return [(item["pk"]["S"], item["sk"]["S"]) for item in items]


def test_every_key_a_tenant_writes_starts_with_its_id(aws: None) -> None:
    tenant = new_tenant_id()
    table = tenant_table(tenant)
    table.put("THINGS", "a", {"n": 1}, index_keys={"gsi1": ("BY_NAME", "a")})
    table.batch_put(("THINGS", f"b{i}", {"n": i}) for i in range(30))
    table.update("THINGS", "a", add_values={"n": 1})

    keys = _raw_keys()
    assert len(keys) == 31
    assert all(pk.startswith(f"T#{tenant}#") for pk, _ in keys)
    gsi = client("dynamodb").get_item(
        TableName=get_settings().table_name,
        Key={"pk": {"S": f"T#{tenant}#THINGS"}, "sk": {"S": "a"}},
    )["Item"]
    assert gsi["gsi1pk"]["S"] == f"T#{tenant}#BY_NAME"


def test_one_tenant_cannot_read_or_change_anothers_items(aws: None) -> None:
    owner, intruder = tenant_table(new_tenant_id()), tenant_table(new_tenant_id())
    owner.put("THINGS", "secret", {"value": "owner's"})

    assert intruder.get("THINGS", "secret") is None
    assert intruder.query("THINGS").items == []
    assert intruder.batch_get([("THINGS", "secret")]) == {}
    with pytest.raises(ConditionFailed):
        intruder.update(
            "THINGS", "secret", set_values={"value": "stolen"}, condition=Condition.present()
        )
    assert owner.get("THINGS", "secret") == {"value": "owner's"}


def test_a_cursor_from_another_tenant_is_refused(aws: None) -> None:
    owner, intruder = tenant_table(new_tenant_id()), tenant_table(new_tenant_id())
    owner.batch_put(("THINGS", f"{i:03}", {"n": i}) for i in range(5))
    cursor = owner.query("THINGS", limit=2).cursor
    assert cursor is not None

    with pytest.raises(ValidationFailed) as refused:
        intruder.query("THINGS", cursor=cursor)
    assert refused.value.field == "cursor"
    with pytest.raises(ValidationFailed):
        owner.query("OTHER_THINGS", cursor=cursor)
    assert [i["n"] for i in owner.query("THINGS", cursor=cursor).items] == [2, 3, 4]


def test_a_tenant_scope_needs_a_real_tenant_id(aws: None) -> None:
    for forged in ("", "SYS", "abc#T#other", "../x", "0" * 31):
        with pytest.raises(ValueError):
            tenant_table(forged)


def test_batch_put_respects_the_25_item_limit_and_batch_get_reads_back(aws: None) -> None:
    table = tenant_table(new_tenant_id())
    written = table.batch_put(("THINGS", f"{i:04}", {"n": i}) for i in range(260))
    found = table.batch_get([("THINGS", f"{i:04}") for i in range(0, 260, 2)] + [("THINGS", "x")])

    assert written == 260
    assert len(found) == 130
    assert found[("THINGS", "0042")] == {"n": 42}
