"""Herald ids are RFC 9562 UUIDs behind a kind prefix; campaign ids are UUIDv7."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import ids
from chalicelib.domain.campaigns import NewCampaign, is_campaign_id, new_campaign_id

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


def test_a_new_campaign_id_is_a_valid_uuid_v7_carrying_its_milliseconds():
    campaign_id = new_campaign_id(NOW)
    parsed = uuid.UUID(ids.dashed(campaign_id))
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert int(parsed.hex[:12], 16) == int(NOW.timestamp() * 1000)
    assert is_campaign_id(campaign_id) and campaign_id == "cmp_" + parsed.hex


@given(st.integers(min_value=0, max_value=10**6))
def test_campaign_ids_sort_by_creation_time_also_among_old_ids(millis: int):
    earlier = new_campaign_id(NOW + timedelta(milliseconds=millis))
    later = new_campaign_id(NOW + timedelta(milliseconds=millis + 1))
    old_style = f"cmp_{int(NOW.timestamp() * 1000) + millis:012x}" + "f" * 20
    assert earlier < later
    assert old_style < later  # an id made before the change sorts by its milliseconds


def test_every_other_generated_id_is_already_a_valid_uuid():
    from chalicelib.domain.contacts import new_contact_id
    from chalicelib.domain.lists import new_list_id
    from chalicelib.domain.tenants import new_tenant_id
    from chalicelib.domain.webhooks import new_endpoint_id
    from chalicelib.store.senders import new_sender_id
    from chalicelib.store.templates import new_template_id

    for made in (
        new_contact_id(),
        new_list_id(),
        new_tenant_id(),
        new_endpoint_id(),
        new_sender_id(),
        new_template_id(),
    ):
        assert uuid.UUID(ids.dashed(made)).variant == uuid.RFC_4122, made


def test_an_id_is_accepted_native_dashed_or_prefixed_dashed():
    native = new_campaign_id(NOW)
    shown = ids.dashed(native)
    assert ids.native(native, "cmp_") == native
    assert ids.native(shown, "cmp_") == native
    assert ids.native(shown.upper(), "cmp_") == native
    assert ids.native("cmp_" + shown, "cmp_") == native
    assert ids.native("tpl_" + shown, "cmp_") == "tpl_" + shown  # another kind: not found later
    assert ids.native("not-an-id", "cmp_") == "not-an-id"
    assert ids.native(shown, "") == native.removeprefix("cmp_")  # tenants have no prefix
    assert ids.native(native.removeprefix("cmp_"), "cmp_") == native  # bare UUID hex


def test_a_pool_of_ids_takes_prefixed_dashed_uuids():
    template = "tpl_" + uuid.uuid4().hex
    fields = NewCampaign.model_validate(
        {"name": "x", "channel": "email", "template_ids": ["tpl_" + ids.dashed(template)]}
    )
    assert fields.template_ids == [template]
