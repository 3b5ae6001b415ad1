"""Outgoing HTTP to tenant-supplied URLs (event callbacks, webhooks), safe from SSRF.

Every request resolves the host itself, refuses the URL if ANY resolved address (or the
port) is not allowed (``chalicelib.domain.net``), and then connects to an address it
checked, sending the name in the Host header and as TLS SNI (certificates are verified
against the name). Connecting by name after checking would let a DNS answer change in
between (rebinding); pinning closes that gap. Redirects are never followed (a 3xx is a
failed delivery), and the response body of a tenant's URL is never read back into Herald:
a caller learns the status code and nothing else, so a tenant cannot use Herald to read an
internal page. Only a provider whose base URL the operator configures (the Telegram Bot
API, ``Settings.telegram_api_url``) has its answer read (``read_limit``), bounded in size
and by the same deadline.

One deadline per attempt (``Settings.callback_deadline_seconds``) covers everything: the
DNS lookup, connecting to each address in turn, the TLS handshake, sending, and reading
the status line and headers. A per-operation timeout would not do: a receiver dripping a
byte every second never lets one socket read time out, and held a request for minutes.
Every socket read and write re-arms the socket's timeout to what is left of the deadline.

``check_url`` is the registration-time check (HTTP 422 on refusal). A name that does not
resolve yet is accepted there, because DNS may be set up after the URL is registered and
every delivery checks again; an address that resolves to a refused range is not.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.net import (
    IPAddress,
    TargetUrl,
    address_refusal,
    parse_target_url,
    port_refusal,
)
from chalicelib.settings import get_settings

USER_AGENT = "Herald-Notifications/1.0"


class RefusedTarget(Exception):
    """The URL may not be called now: a refused address or port, or a name that does not
    resolve."""


class Unresolvable(RefusedTarget):
    """The host name has no address (yet)."""


class DeadlineExceeded(Exception):
    """The attempt's one deadline passed (in DNS, connecting, TLS, sending or reading)."""


class Deadline:
    """The end of one attempt, on the monotonic clock (immune to wall-clock changes)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; DeadlineExceeded once there are none."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no answer within the {self.seconds:g} s deadline")
        return left


@dataclass(frozen=True)
class HttpOutcome:
    """What a delivery attempt learned: a status code, or why there was none."""

    status: int | None
    error: str | None = None
    body: bytes = b""

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _lookup(target: TargetUrl, deadline: Deadline) -> list[Any]:
    """``getaddrinfo`` bounded by the deadline: it has no timeout of its own, so it runs in
    a daemon thread that is abandoned (and ends with the resolver's own timeout) if late."""
    answers: list[Any] = []

    def lookup() -> None:
        try:
            answers.append(socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as error:
            answers.append(error)

    worker = threading.Thread(target=lookup, name="herald-dns", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if not answers:
        raise DeadlineExceeded(f"DNS lookup of {target.host} outlasted the deadline")
    if isinstance(answers[0], Exception):
        raise Unresolvable(f"host {target.host!r} does not resolve") from answers[0]
    return list(answers[0])


def _resolve(target: TargetUrl, deadline: Deadline) -> list[IPAddress]:
    literal = target.literal_address
    if literal is not None:
        return [literal]
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in _lookup(target, deadline):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"host {target.host!r} does not resolve")
    return addresses


def checked_addresses(target: TargetUrl, deadline: Deadline | None = None) -> list[IPAddress]:
    """Every address ``target`` resolves to, all allowed, and an allowed port; RefusedTarget
    if any is not. Loopback (allowed on the embedded stack only) may use any port."""
    settings = get_settings()
    deadline = deadline or Deadline(settings.callback_deadline_seconds)
    addresses = _resolve(target, deadline)
    for address in addresses:
        reason = address_refusal(address, allow_loopback=settings.allow_loopback_callbacks)
        if reason:
            raise RefusedTarget(f"{target.host} resolves to {reason}")
    if not all(address.is_loopback for address in addresses):
        reason = port_refusal(target.port, settings.callback_ports)
        if reason:
            raise RefusedTarget(f"{target.host} is called on {reason}")
    return addresses


def check_url(url: str, *, field: str) -> TargetUrl:
    """Registration check: ValidationFailed (→ 422) for a URL Herald must never call.

    The returned target's ``url`` is the normalised form to store."""
    target = parse_target_url(url, field=field)
    try:
        checked_addresses(target)
    except (Unresolvable, DeadlineExceeded):
        if port_refusal(target.port, get_settings().callback_ports):  # known without DNS
            raise ValidationFailed(f"URL is not allowed: port {target.port}", field=field) from None
        # accepted for now: every delivery resolves and checks again
    except RefusedTarget as refused:
        raise ValidationFailed(f"URL is not allowed: {refused}", field=field) from None
    return target


# -- sockets that honour the deadline -----------------------------------------------------
if TYPE_CHECKING:
    _SocketBase = socket.socket
else:
    _SocketBase = object


class _DeadlineBound(_SocketBase):
    """Re-arms the socket timeout to what is left of the deadline before each read/write."""

    deadline: Deadline

    def _arm(self) -> None:
        try:
            left = self.deadline.remaining()
        except DeadlineExceeded:
            raise TimeoutError("deadline exceeded") from None
        self.settimeout(left)

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._arm()
        return super().recv(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._arm()
        super().sendall(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().send(*args, **kwargs)


class _DeadlineSocket(_DeadlineBound, socket.socket):
    """A plain TCP socket under the deadline."""


class _DeadlineSSLSocket(_DeadlineBound, ssl.SSLSocket):
    """A TLS socket under the deadline (the context creates it: ``sslsocket_class``)."""


def _connect(address: IPAddress, port: int, deadline: Deadline) -> _DeadlineSocket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.remaining())
        sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address, whatever the Host header says."""

    def __init__(self, target: TargetUrl, address: IPAddress, deadline: Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.seconds)
        self._address = address
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, verifying the certificate against the URL's name."""

    def __init__(self, target: TargetUrl, address: IPAddress, deadline: Deadline) -> None:
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(target.host, target.port, timeout=deadline.seconds, context=context)
        self._address = address
        self._deadline = deadline
        self._tls = context

    def connect(self) -> None:
        raw = _connect(self._address, self.port, self._deadline)
        try:
            tls = self._tls.wrap_socket(
                raw, server_hostname=self.host, do_handshake_on_connect=False
            )
        except BaseException:
            raw.close()
            raise
        assert isinstance(tls, _DeadlineSSLSocket)
        tls.deadline = self._deadline
        self.sock = tls
        tls.settimeout(self._deadline.remaining())
        tls.do_handshake()


def post(url: str, body: bytes, headers: Mapping[str, str], *, read_limit: int = 0) -> HttpOutcome:
    """POST ``body`` to ``url`` under the SSRF policy and one deadline; never raises for
    trouble on the way (network, TLS, a malformed answer, a URL that cannot be encoded).

    ``read_limit`` > 0 reads at most that many bytes of the answer (operator-configured
    providers only, never a tenant's URL: see the module docstring).

    Raises ``RefusedTarget`` when the URL may not be called at all (that will not get
    better by retrying); any other failure comes back as an outcome without a status.
    """
    deadline = Deadline(get_settings().callback_deadline_seconds)
    try:
        target = parse_target_url(url, field="url")
        addresses = checked_addresses(target, deadline)
    except ValidationFailed as invalid:
        raise RefusedTarget(invalid.message) from None
    except DeadlineExceeded as late:
        return HttpOutcome(status=None, error=str(late))
    sent = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Content-Length": str(len(body)),
        **headers,
    }
    last_error = "no address to connect to"
    for address in addresses:
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, address, deadline)
            if target.scheme == "https"
            else _PinnedHTTPConnection(target, address, deadline)
        )
        try:
            connection.request("POST", target.request_target, body=body, headers=sent)
            response = connection.getresponse()
            answer = response.read(read_limit) if read_limit > 0 else b""
            return HttpOutcome(status=response.status, body=answer)
        except ssl.SSLError as error:
            return HttpOutcome(status=None, error=f"TLS failure: {error.reason or 'handshake'}")
        except (OSError, http.client.HTTPException, DeadlineExceeded) as error:
            last_error = f"{type(error).__name__} connecting to {target.host}"
        except Exception as error:  # a delivery must end in an outcome, whatever went wrong
            return HttpOutcome(status=None, error=f"{type(error).__name__} calling {target.host}")
        finally:
            connection.close()
        try:
            deadline.remaining()
        except DeadlineExceeded as late:
            return HttpOutcome(status=None, error=f"{late} ({target.host})")
    return HttpOutcome(status=None, error=last_error)
