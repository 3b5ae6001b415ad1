"""Which URLs Herald may call back, and which network addresses it may connect to.

Tenants give Herald URLs (campaign ``event_callback``, webhook endpoints) that Herald then
POSTs to from inside its AWS account: without a policy, a tenant could aim them at the
instance metadata service, at a VPC-internal host or at localhost (SSRF). The rules here
are pure; ``chalicelib.channels.http`` resolves names, checks every address with
``address_refusal`` and connects only to an address it checked.

Policy: http(s) only, no credentials in the URL, ports 80 and 443 only (an operator can
widen the list: ``Settings.callback_ports``), and every address a name resolves to must be
publicly routable unicast. Some ranges are refused by name (``REFUSED_RANGES``: the
local-use NAT64 prefix and the SIIT form), because whether Python's ``is_global`` counts
them as global differs between patch releases. Addresses are then unwrapped (IPv4-mapped,
IPv4-compatible, 6to4, Teredo, well-known NAT64 forms embed an IPv4 address that is
checked too), so ``::ffff:127.0.0.1`` is refused like ``127.0.0.1``. ``allow_loopback``
(the embedded stack only) lets loopback through, on any port (local receivers listen on
ephemeral ports), and nothing else.

A URL is normalised when parsed: an internationalised host becomes its IDNA (``xn--``)
form and any non-ASCII character of the path or query is percent-encoded (UTF-8), so what
is registered can always be written on the wire; a host IDNA refuses is refused here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from chalicelib.domain.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Refused outright, never left to ``is_global`` (its answer for these changed within 3.11).
REFUSED_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address (RFC 8215)"),
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), "an SIIT IPv4-translated address (RFC 6145)"),
)


@dataclass(frozen=True)
class TargetUrl:
    """A checked URL, split into what a connection needs.

    ``request_target`` is the path and query string as the tenant wrote them (non-ASCII
    characters percent-encoded): a callback URL's own query parameters are forwarded
    unchanged. ``url`` is the normalised URL, the one to store.
    """

    url: str
    scheme: str
    host: str  # a name, or an IP literal without brackets
    port: int
    request_target: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def literal_address(self) -> IPAddress | None:
        """The address when the host is an IP literal, else None (a name to resolve)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_target_url(url: str, *, field: str) -> TargetUrl:
    """``url`` as a ``TargetUrl``, or ``ValidationFailed`` naming ``field`` and the reason."""
    if len(url) > URL_MAX_LENGTH:
        raise ValidationFailed(f"URL is longer than {URL_MAX_LENGTH} characters", field=field)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationFailed("URL contains whitespace or control characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValidationFailed(f"URL is not valid: {error}", field=field) from error
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValidationFailed("URL must use http or https", field=field)
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("URL must not contain credentials", field=field)
    host = _ascii_host((parts.hostname or "").rstrip("."), field=field)
    if not host:
        raise ValidationFailed("URL has no host", field=field)
    if port == 0:
        raise ValidationFailed("URL port must be 1-65535", field=field)
    target = _request_target(parts)
    authority = f"[{host}]" if ":" in host else host
    authority = f"{authority}:{port}" if port is not None else authority
    normalised = f"{scheme}://{authority}{target if parts.path or parts.query else ''}"
    return TargetUrl(
        url=url if url.isascii() else normalised,
        scheme=scheme,
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        request_target=target,
    )


def _ascii_host(host: str, *, field: str) -> str:
    """``host`` in the ASCII form DNS, the Host header and TLS SNI take (IDNA for a name)."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValidationFailed(
            f"URL host is not a valid domain name: {error}", field=field
        ) from None


def _percent_encoded(text: str) -> str:
    """Non-ASCII characters as UTF-8 percent escapes; ASCII, escapes included, as it was."""
    return "".join(ch if ch.isascii() else quote(ch, safe="") for ch in text)


def _request_target(parts: SplitResult) -> str:
    path = _percent_encoded(parts.path or "/")
    return f"{path}?{_percent_encoded(parts.query)}" if parts.query else path


def port_refusal(port: int, allowed: tuple[int, ...] | list[int]) -> str | None:
    """Why Herald must not connect to ``port``, or None when it is an allowed one."""
    if port in allowed:
        return None
    return f"port {port} (allowed: {', '.join(str(p) for p in allowed)})"


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (``::ffff:a.b.c.d``) or -compatible IPv6 address is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _IPV4_COMPATIBLE and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a tunnelling IPv6 address (6to4, Teredo, NAT64) can be routed to."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why Herald must not connect to ``address``, or None when it may."""
    for network, named in REFUSED_RANGES:
        if address in network:
            return named
    address = _unwrapped(address)
    for inner in embedded_ipv4(address):  # a tunnel to loopback is never "loopback only"
        reason = address_refusal(inner)
        if reason:
            return f"{reason} (embedded in {address})"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address (e.g. the cloud metadata service)"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a publicly routable address"
    return None
