"""Suppression addresses: the fast path for stored emails answers exactly as the full check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.contacts import normalize_email
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.suppression import (
    _NORMALIZED_EMAIL,
    is_normalized_email,
    normalize_address,
)

FAST = [
    "ann@example.com",
    "ann.smith+news@mail.example.co.uk",
    "o'brien@example.ie",
    "x_y-z!#$%&'*+/=?^`{|}~@a-b.example.org",
    "1234@123.example.com",
    "info@example.com",
    "a@" + "b" * 63 + ".com",
    "a-b@a-b-c.de",
]
SLOW = [
    "Ann@example.com",  # upper case: lower-cased by the full check
    "ann@Example.COM",
    " ann@example.com",  # blanks: stripped by the full check
    "ann@example.com ",
    "ann @example.com",
    '"ann smith"@example.com',  # quoted local part: refused
    '"ann"@example.com',
    "ann@bücher.de",  # an international domain: kept in Unicode
    "ann@xn--bcher-kva.de",  # Punycode: decoded to Unicode
    "josé@example.com",  # an international local part
    "ann@xy--z.example.com",  # a double hyphen where Punycode could start: refused
    "ann@ab--cd.com",
    "ann@example.test",  # special-use names: refused
    "ann@printer.local",
    "ann@localhost",
    "ann@example.invalid",
    "ann@onion",
    "ann@10.in-addr.arpa",
    "ann@example",  # no dot in the domain: refused
    "ann@example.c0m",  # a top-level domain that does not end in a letter: refused
    "ann@example.123",
    "ann..smith@example.com",  # an empty atom: refused
    ".ann@example.com",
    "ann.@example.com",
    "ann@-example.com",  # a label starting or ending with a hyphen: refused
    "ann@example-.com",
    "ann@" + "b" * 64 + ".com",  # a label longer than 63: refused
    "a" * 245 + "@example.com",  # longer than 254 in all: refused
    "ann@@example.com",
    "ann@[192.0.2.1]",
    "ann(comment)@example.com",
    "Ann Smith <ann@example.com>",
    "ann@example.com\n",
]


def full_check(value: str) -> tuple[str, str] | str:
    """What normalize_address answered before it had a fast path: the email, or the error."""
    try:
        return "email", normalize_email(value)
    except ValidationFailed as error:
        return f"refused: {error.message}"


def answer(value: str) -> tuple[str, str] | str:
    try:
        return normalize_address(value)
    except ValidationFailed as error:
        assert error.field == "address"
        return f"refused: {error.message}"


@pytest.mark.parametrize("value", FAST)
def test_stored_addresses_take_the_fast_path_and_come_back_unchanged(value: str) -> None:
    assert is_normalized_email(value)
    assert answer(value) == full_check(value) == ("email", value)


@pytest.mark.parametrize("value", SLOW)
def test_anything_unusual_takes_the_full_check_and_gets_its_answer(value: str) -> None:
    assert not is_normalized_email(value)
    assert answer(value) == full_check(value)


def test_phones_are_unaffected() -> None:
    assert normalize_address("+49 151 12345678") == ("phone", "+4915112345678")


@settings(max_examples=400, deadline=None)
@given(st.from_regex(_NORMALIZED_EMAIL, fullmatch=True))
def test_whatever_the_fast_path_accepts_the_full_check_returns_unchanged(value: str) -> None:
    if is_normalized_email(value):
        assert full_check(value) == ("email", value)
