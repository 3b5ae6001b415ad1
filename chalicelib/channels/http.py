"""Outgoing HTTP to tenant-supplied URLs (event callbacks, webhooks), safe from SSRF.

Every request resolves the host itself, refuses the URL if ANY resolved address is not
allowed (``chalicelib.domain.net.address_refusal``), and then connects to an address it
checked, sending the name in the Host header and as TLS SNI (certificates are verified
against the name). Connecting by name after checking would let a DNS answer change in
between (rebinding); pinning closes that gap. Redirects are never followed (a 3xx is a
failed delivery), timeouts are short, and the response body is never read back into
Herald: a caller learns the status code and nothing else, so a tenant cannot use Herald
to read an internal page.

``check_url`` is the registration-time check (HTTP 422 on refusal). A name that does not
resolve yet is accepted there, because DNS may be set up after the URL is registered and
every delivery checks again; an address that resolves to a refused range is not.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.net import IPAddress, TargetUrl, address_refusal, parse_target_url
from chalicelib.settings import get_settings

TIMEOUT_SECONDS = 5.0
USER_AGENT = "Herald-Notifications/1.0"


class RefusedTarget(Exception):
    """The URL may not be called now: a refused address, or a name that does not resolve."""


class Unresolvable(RefusedTarget):
    """The host name has no address (yet)."""


@dataclass(frozen=True)
class HttpOutcome:
    """What a delivery attempt learned: a status code, or why there was none."""

    status: int | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _resolve(target: TargetUrl) -> list[IPAddress]:
    literal = target.literal_address
    if literal is not None:
        return [literal]
    try:
        answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Unresolvable(f"host {target.host!r} does not resolve") from error
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"host {target.host!r} does not resolve")
    return addresses


def checked_addresses(target: TargetUrl) -> list[IPAddress]:
    """Every address ``target`` resolves to, all allowed; RefusedTarget if any is not."""
    allow_loopback = get_settings().allow_loopback_callbacks
    addresses = _resolve(target)
    for address in addresses:
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason:
            raise RefusedTarget(f"{target.host} resolves to {reason}")
    return addresses


def check_url(url: str, *, field: str) -> TargetUrl:
    """Registration check: ValidationFailed (→ 422) for a URL Herald must never call."""
    target = parse_target_url(url, field=field)
    try:
        checked_addresses(target)
    except Unresolvable:
        pass  # accepted for now: every delivery resolves and checks again
    except RefusedTarget as refused:
        raise ValidationFailed(f"URL is not allowed: {refused}", field=field) from None
    return target


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address, whatever the Host header says."""

    def __init__(self, target: TargetUrl, address: IPAddress, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, verifying the certificate against the URL's name."""

    def __init__(self, target: TargetUrl, address: IPAddress, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = TIMEOUT_SECONDS,
) -> HttpOutcome:
    """POST ``body`` to ``url`` under the SSRF policy; never raises for network trouble.

    Raises ``RefusedTarget`` when the URL may not be called at all (that will not get
    better by retrying); any other failure comes back as an outcome without a status.
    """
    target = parse_target_url(url, field="url")
    addresses = checked_addresses(target)
    sent = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Content-Length": str(len(body)),
        **headers,
    }
    last_error = "no address to connect to"
    for address in addresses:
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, address, timeout)
            if target.scheme == "https"
            else _PinnedHTTPConnection(target, address, timeout)
        )
        try:
            connection.request("POST", target.request_target, body=body, headers=sent)
            response = connection.getresponse()
            return HttpOutcome(status=response.status)  # the body is never read
        except ssl.SSLError as error:
            return HttpOutcome(status=None, error=f"TLS failure: {error.reason or 'handshake'}")
        except (OSError, http.client.HTTPException) as error:
            last_error = f"{type(error).__name__} connecting to {target.host}"
        finally:
            connection.close()
    return HttpOutcome(status=None, error=last_error)
