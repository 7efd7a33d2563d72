"""The proxy's own name resolution, through the nameservers the operator configured (dnspython)."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

TIMEOUT = 5.0


class Resolver:
    def __init__(self, nameservers: list[str]) -> None:
        """`nameservers` are `address` or `address:port` ("[v6]:port"); empty: the system's."""
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = [_nameserver(value) for value in nameservers]
        self._resolver.lifetime = TIMEOUT

    async def addresses(self, host: str) -> list[str]:
        """The host's IPv4 addresses, else its IPv6 ones; empty when it has none or cannot be resolved."""
        for kind in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
                return []
            except (dns.resolver.NoAnswer, dns.exception.Timeout):
                continue
            return [record.address for record in answer]
        return []


def _nameserver(value: str) -> dns.nameserver.Nameserver:
    host, port = value, 53
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif value.count(":") == 1:
        host, _, number = value.partition(":")
        port = int(number)
    return dns.nameserver.Do53Nameserver(host, port)
