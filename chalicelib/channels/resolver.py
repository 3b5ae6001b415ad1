"""Domain records for address verification: DNS in AWS, a stub on the embedded stack.

``resolver_for(settings)`` gives the one ``DomainResolver`` the sender uses
(``settings.verification_resolver``). The DNS resolver asks for MX, then A, records with
dnspython (already a dependency: email-validator's), with a short timeout: a domain
that does not answer in time is ``None`` (status ``unknown``), never a stalled batch.

The stub answers without a network (the embedded stack and the tests): a domain whose
first label is ``nomx`` (``nomx.example.net``) has no records, one whose first label is
``dnsfail`` cannot be looked up, every other domain has an MX record.
"""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.verification import DomainRecords
from chalicelib.settings import Settings


class DomainResolver(Protocol):
    def records(self, domain: str) -> DomainRecords | None:
        """The domain's MX / A records; None when they could not be looked up."""
        ...


class DnsResolver:
    """dnspython is imported when the first DNS resolver is made, not with the send
    worker: it is about 6 % of importing app.py, and only a send that verifies addresses
    in AWS asks DNS anything."""

    def __init__(self, timeout_seconds: float) -> None:
        import dns.resolver

        self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout_seconds

    def _has(self, domain: str, kind: str) -> bool:
        import dns.resolver

        try:
            return bool(self._resolver.resolve(domain, kind))
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return False

    def records(self, domain: str) -> DomainRecords | None:
        import dns.exception

        try:
            if self._has(domain, "MX"):
                return DomainRecords(mx=True, a=False)
            return DomainRecords(mx=False, a=self._has(domain, "A"))
        except dns.exception.DNSException:  # timeout, no nameservers, a bad name
            return None


class StubResolver:
    def records(self, domain: str) -> DomainRecords | None:
        label = domain.split(".", 1)[0]
        if label == "dnsfail":
            return None
        if label == "nomx":
            return DomainRecords(mx=False, a=False)
        return DomainRecords(mx=True, a=True)


def resolver_for(settings: Settings) -> DomainResolver:
    if settings.verification_resolver == "stub":
        return StubResolver()
    return DnsResolver(settings.verification_dns_timeout_seconds)
