"""The rules for outgoing notifications: SSRF address policy, URL checks, Standard Webhooks
signatures, retry schedule and the seed-003 callback form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from chalicelib.domain.callbacks import callback_form, in_posts, window_start
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.net import REFUSED_RANGES, address_refusal, parse_target_url, port_refusal
from chalicelib.domain.webhooks import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE_SECONDS,
    new_secret,
    secret_key,
    sign,
    signed_headers,
    verdict,
)

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "169.254.169.254",  # EC2/ECS instance metadata
    "fd00:ec2::254",  # EC2 metadata over IPv6
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "fc00::1",
    "fdff::1",
    "fe80::1",
    "224.0.0.251",
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "192.0.2.10",  # documentation range
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215), even around a public IPv4
    "64:ff9b:1:ffff::1",
    "::ffff:0:808:808",  # SIIT IPv4-translated form (is_global says True on 3.11.7)
    "::ffff:0:7f00:1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_allow_loopback_lets_only_loopback_through():
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert address_refusal(ipaddress.ip_address(address), allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "2002:7f00:1::1", "fc00::1"):
        assert address_refusal(ipaddress.ip_address(address), allow_loopback=True) is not None


def test_metadata_refusal_says_why():
    reason = address_refusal(ipaddress.ip_address("169.254.169.254"))
    assert reason is not None and "link-local" in reason


def test_target_url_keeps_path_and_query_exactly():
    target = parse_target_url("https://hooks.example.com:8443/cb/x?token=a%20b&x=1", field="url")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 8443)
    assert target.request_target == "/cb/x?token=a%20b&x=1"
    assert target.host_header == "hooks.example.com:8443"
    bare = parse_target_url("http://[::1]", field="url")
    assert (bare.host, bare.port, bare.request_target, bare.host_header) == (
        "::1",
        80,
        "/",
        "[::1]",
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com", "http or https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com@127.0.0.1/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://example.com:0/", "port"),
        ("https://example.com:99999/", "not valid"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\r\nX-Injected: 1", "whitespace"),
        ("https://example.com/" + "a" * 3000, "longer"),
    ],
)
def test_bad_urls_are_refused_naming_the_field(url, reason):
    with pytest.raises(ValidationFailed) as refused:
        parse_target_url(url, field="event_callback")
    assert refused.value.field == "event_callback"
    assert reason in refused.value.message


def test_signature_matches_the_standard_webhooks_test_vector():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_whsec_base64_of_32_random_bytes():
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32
    with pytest.raises(ValueError):
        secret_key("whsec_not base64!")


def test_signed_headers_verify_with_an_independent_hmac():
    secret = new_secret()
    body = b'{"type":"message.delivered"}'
    headers = signed_headers(secret, "msg_1", 1700000000, body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == "1700000000"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + expected.decode()


def test_retry_schedule_spans_hours_and_410_stops():
    assert RETRY_SCHEDULE_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert sum(RETRY_SCHEDULE_SECONDS) > 24 * 3600
    assert verdict(204, 1) == "delivered"
    assert verdict(410, 1) == "gone"
    for status in (None, 301, 302, 400, 429, 500, 503):
        assert verdict(status, 1) == "retry"
        assert verdict(status, MAX_ATTEMPTS) == "give_up"


def test_callback_form_has_the_seed_fields_in_order():
    body = callback_form("delivered", 1700000000, "email", ["a@example.com", "b+x@example.com"])
    assert parse_qsl(body.decode()) == [
        ("event", "delivered"),
        ("when", "1700000000"),
        ("email[0]", "a@example.com"),
        ("email[1]", "b+x@example.com"),
    ]
    sms = callback_form("bounced", 1700000000, "sms", ["+15555550100"])
    assert parse_qsl(sms.decode()) == [
        ("event", "bounced"),
        ("when", "1700000000"),
        ("telephone[0]", "+15555550100"),
    ]


def test_windows_and_post_sizes():
    at = datetime(2026, 1, 1, 12, 0, 59, tzinfo=UTC)
    assert window_start(at, 60) == int(datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp())
    assert [len(p) for p in in_posts([str(i) for i in range(1201)], 500)] == [500, 500, 201]


def test_nat64_local_use_and_siit_are_refused_by_explicit_range_not_is_global():
    """Python patch releases disagree on ``is_global`` for these: the policy names them."""
    named = {str(network) for network, _ in REFUSED_RANGES}
    assert {"64:ff9b:1::/48", "::ffff:0:0:0/96"} <= named
    reason = address_refusal(ipaddress.ip_address("::ffff:0:808:808"))
    assert reason is not None and "SIIT" in reason
    reason = address_refusal(ipaddress.ip_address("64:ff9b:1::808:808"))
    assert reason is not None and "NAT64" in reason


def test_only_ports_80_and_443_unless_widened():
    assert port_refusal(443, [80, 443]) is None and port_refusal(80, [80, 443]) is None
    for port in (22, 25, 6379, 8080, 8443):
        reason = port_refusal(port, [80, 443])
        assert reason is not None and str(port) in reason
    assert port_refusal(8443, [80, 443, 8443]) is None


def test_non_ascii_urls_are_normalised_to_what_goes_on_the_wire():
    target = parse_target_url(
        "https://B\u00fccher.example/caf\u00e9/%41?q=\u00fc&x[]=1", field="url"
    )
    assert target.host == "xn--bcher-kva.example"
    assert target.request_target == "/caf%C3%A9/%41?q=%C3%BC&x[]=1"  # escapes kept as written
    assert target.url == "https://xn--bcher-kva.example/caf%C3%A9/%41?q=%C3%BC&x[]=1"
    assert target.host_header.isascii()
    ascii_url = "https://hooks.example.com:8443/cb?a=1"
    assert parse_target_url(ascii_url, field="url").url == ascii_url  # unchanged
    with pytest.raises(ValidationFailed) as refused:
        parse_target_url("https://a..b\u00fc/", field="url")
    assert refused.value.field == "url" and "domain name" in refused.value.message
