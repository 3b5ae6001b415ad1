"""Which URLs Herald may call back, and which network addresses it may connect to.

Tenants give Herald URLs (campaign ``event_callback``, webhook endpoints) that Herald then
POSTs to from inside its AWS account: without a policy, a tenant could aim them at the
instance metadata service, at a VPC-internal host or at localhost (SSRF). The rules here
are pure; ``chalicelib.channels.http`` resolves names, checks every address with
``address_refusal`` and connects only to an address it checked.

Policy: http(s) only, no credentials in the URL, and every address a name resolves to
must be publicly routable unicast. Addresses are unwrapped first (IPv4-mapped,
IPv4-compatible, 6to4, Teredo, NAT64 forms embed an IPv4 address that is checked too),
so ``::ffff:127.0.0.1`` is refused like ``127.0.0.1``. ``allow_loopback`` (the embedded
stack only) lets loopback through, and nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from chalicelib.domain.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


@dataclass(frozen=True)
class TargetUrl:
    """A checked URL, split into what a connection needs.

    ``request_target`` is the path and query string exactly as the tenant wrote them: a
    callback URL's own query parameters are forwarded unchanged.
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
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationFailed("URL has no host", field=field)
    if port == 0:
        raise ValidationFailed("URL port must be 1-65535", field=field)
    return TargetUrl(
        url=url,
        scheme=scheme,
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        request_target=_request_target(parts),
    )


def _request_target(parts: SplitResult) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


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
