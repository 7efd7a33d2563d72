"""What a sandbox's policy lets through, decided by host name and port (standard library only).

Patterns are exact names or `*.suffix` (any name below the suffix, not the suffix itself). Addresses
are never chosen by the sandbox: an IP literal is refused, and a resolved address must be global
unless the operator listed its network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ALLOWLIST = "allowlist"
OPEN = "open"
DEFAULT_PORTS = (80, 443)
# The reasons of refusals, as hands.proto lists them.
NOT_ALLOWED = "not_allowed"
IP_LITERAL = "ip_literal"
PRIVATE_ADDRESS = "private_address"
SNI_MISMATCH = "sni_mismatch"
HOST_MISMATCH = "host_mismatch"
UNRESOLVABLE = "unresolvable"
UPSTREAM_TLS = "upstream_tls"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Rule:
    pattern: str
    ports: tuple[int, ...] = ()

    def matches(self, host: str, port: int) -> bool:
        if port not in (self.ports or DEFAULT_PORTS):
            return False
        pattern = self.pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
        return host == pattern


@dataclass(frozen=True)
class Injection:
    """A header to set on requests to one exact host; `value` holds the opened secret."""

    host: str
    header: str
    value: str


@dataclass(frozen=True)
class Policy:
    mode: str
    allow: tuple[Rule, ...] = ()
    inject: tuple[Injection, ...] = ()

    @classmethod
    def from_message(cls, message: dict[str, object]) -> Policy:
        allow = message.get("allow") or []
        inject = message.get("inject") or []
        assert isinstance(allow, list) and isinstance(inject, list)
        return cls(
            mode=str(message.get("mode")),
            allow=tuple(Rule(str(r["pattern"]), tuple(int(p) for p in r.get("ports") or ())) for r in allow),
            inject=tuple(
                Injection(normal_host(str(i["host"])), str(i["header"]), str(i["value"])) for i in inject
            ),
        )

    def refusal(self, host: str, port: int) -> str | None:
        """Why a connection to host:port is refused before any name is resolved; None if it may go."""
        if is_ip_literal(host):
            return IP_LITERAL
        if not host or not 0 < port < 65536:
            return NOT_ALLOWED
        if self.mode == OPEN:
            return None
        if self.mode == ALLOWLIST and any(rule.matches(host, port) for rule in self.allow):
            return None
        return NOT_ALLOWED

    def injections(self, host: str) -> list[Injection]:
        return [item for item in self.inject if item.host == host]


def normal_host(host: str) -> str:
    """A host name as compared: lower case, without brackets or a trailing dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_of(authority: str) -> str:
    """The host of a Host header or an authority (`name:port`, `[v6]:port`)."""
    value = authority.strip()
    if value.startswith("["):
        return normal_host(value.partition("]")[0])
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return normal_host(value)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(normal_host(host))
    except ValueError:
        pass
    else:
        return True
    # inet_aton's forms (`127.1`, `0x7f.1`, a bare number) name addresses too.
    parts = normal_host(host).split(".")
    return all(_numeric(part) for part in parts) and bool(parts)


def _numeric(part: str) -> bool:
    try:
        int(part, 0)
    except ValueError:
        return False
    return True


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def reachable(addresses: Sequence[str], listed: Sequence[Network]) -> list[str]:
    """The addresses a connection may go to: global ones, and those in networks the operator listed."""
    kept = []
    for value in addresses:
        address: Address = ipaddress.ip_address(value)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in listed) or address.is_global:
            kept.append(value)
    return kept
