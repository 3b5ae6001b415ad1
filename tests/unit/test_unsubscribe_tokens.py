"""Unsubscribe tokens: round trips, forgeries, key rotation, and the headers built from them."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.unsubscribe import (
    BadToken,
    SigningKey,
    UnsubscribeClaim,
    sign,
    unsubscribe_headers,
    verify,
)
from chalicelib.settings import Settings

TENANT = "a" * 32
OTHER_TENANT = "b" * 32
KEY = SigningKey(1, b"k" * 32)
NEW_KEY = SigningKey(2, b"n" * 32)
KEYS = {KEY.id: KEY.secret, NEW_KEY.id: NEW_KEY.secret}
CLAIM = UnsubscribeClaim(
    tenant_id=TENANT,
    contact_id="c_0123456789abcdef0123456789abcdef",
    channel="email",
    campaign_id="cmp_fedcba9876543210fedcba9876543210",
    message_ref="",
)


def decode(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(data)).decode().rstrip("=")


def test_a_signed_token_reads_back_its_claim():
    token = sign(CLAIM, KEY)
    assert verify(token, KEYS.get) == CLAIM


def test_tokens_are_url_safe_and_short_enough_for_an_sms():
    token = sign(CLAIM, KEY)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(token) <= 110


ids = st.one_of(
    st.just(""),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
    st.builds(
        lambda p, h: p + h,
        st.from_regex(r"[a-z_]{0,6}", fullmatch=True),
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    ),
)


@given(
    contact_id=ids.filter(bool),
    campaign_id=ids,
    message_ref=ids,
    channel=st.sampled_from(["email", "sms"]),
)
def test_any_ids_round_trip(contact_id, campaign_id, message_ref, channel):
    claim = UnsubscribeClaim(TENANT, contact_id, channel, campaign_id, message_ref)
    assert verify(sign(claim, KEY), KEYS.get) == claim


def test_every_flipped_bit_is_detected():
    data = decode(sign(CLAIM, KEY))
    for index in range(len(data)):
        forged = bytearray(data)
        forged[index] ^= 0x01
        with pytest.raises(BadToken):
            verify(encode(forged), KEYS.get)


def test_a_token_rewritten_for_another_tenant_is_refused():
    data = decode(sign(CLAIM, KEY))
    data[4:20] = bytes.fromhex(OTHER_TENANT)
    with pytest.raises(BadToken):
        verify(encode(data), KEYS.get)


def test_a_token_signed_with_an_unknown_or_other_key_is_refused():
    token = sign(CLAIM, SigningKey(1, b"x" * 32))
    with pytest.raises(BadToken):
        verify(token, KEYS.get)
    with pytest.raises(BadToken):
        verify(sign(CLAIM, SigningKey(9, b"k" * 32)), KEYS.get)


@pytest.mark.parametrize(
    "garbage", ["", "x", "not a token", "a" * 600, "////", "AAAA", "é", sign(CLAIM, KEY)[:-3]]
)
def test_garbage_is_refused_without_crashing(garbage):
    with pytest.raises(BadToken):
        verify(garbage, KEYS.get)


def test_old_tokens_keep_working_after_rotation():
    old = sign(CLAIM, KEY)
    new = sign(CLAIM, NEW_KEY)
    assert old != new
    assert verify(old, KEYS.get) == verify(new, KEYS.get) == CLAIM


def test_headers_carry_the_one_click_link():
    settings = Settings(public_base_url="https://mail.example.com/")
    headers = unsubscribe_headers("TOKEN", settings)
    assert headers == {
        "List-Unsubscribe": "<https://mail.example.com/u/TOKEN>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_signing_refuses_a_claim_that_is_not_a_tenant():
    with pytest.raises(ValueError, match="tenant"):
        sign(UnsubscribeClaim("nope", "c_1", "email"), KEY)
