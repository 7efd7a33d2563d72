"""The mitmproxy addon that lets a connection through only where its sandbox's policy allows.

Hands binds each of its connections to the proxy (by the connection's local address and port, which
no other process can hold while it is open) to a sandbox's policy before relaying a byte of it; a
connection nobody bound is refused, so a local process dialling the proxy gets nothing through.
The CONNECT target, the TLS SNI and every request's Host must name the same host, which must be
allowed and a name, not an address; the proxy resolves it itself and connects to exactly the
address it checked, so a name that resolves elsewhere a moment later (DNS rebinding) changes
nothing. Secrets are set as headers only on requests to their exact host over TLS. Each decision
is reported, never with a header's value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from services.hands.egress.proxy import rules
from services.hands.egress.proxy.resolve import Resolver

log = logging.getLogger("loopd.egress")
Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Binding:
    key: str  # the sandbox
    conn: int  # hands' number for the connection, named in reports


@dataclass
class _Client:
    binding: Binding | None
    connect: tuple[str, int] | None = None
    sni_refused: bool = False
    reported: set[str] = field(default_factory=set)


class Gate:
    def __init__(self, report: Report, resolver: Resolver, listed: Sequence[rules.Network]) -> None:
        self._report = report
        self._resolver = resolver
        self._listed = tuple(listed)
        self._bindings: dict[tuple[str, int], Binding] = {}
        self._policies: dict[str, rules.Policy] = {}
        self._clients: dict[str, _Client] = {}

    # Hands' control messages.

    def set_policy(self, key: str, policy: rules.Policy) -> None:
        self._policies[key] = policy

    def forget(self, key: str) -> None:
        self._policies.pop(key, None)

    def bind(self, peer: tuple[str, int], binding: Binding) -> None:
        self._bindings[peer] = binding

    def unbind(self, peer: tuple[str, int], conn: int) -> None:
        if (bound := self._bindings.get(peer)) is not None and bound.conn == conn:
            del self._bindings[peer]

    # mitmproxy's hooks.

    def client_disconnected(self, client: connection.Client) -> None:
        self._clients.pop(client.id, None)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        state, policy = self._state(flow.client_conn)
        host, port = rules.normal_host(flow.request.host), flow.request.port
        reason = policy.refusal(host, port) if policy else rules.NOT_ALLOWED
        if reason:
            self._refuse(flow, state, reason, host, port)
        else:
            state.connect = (host, port)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        state, _ = self._state(data.context.client)
        if state.connect is None:
            return
        if rules.normal_host(data.client_hello.sni or "") != state.connect[0]:
            # The handshake goes on (with a certificate for the name it asked), but no request of
            # this connection will: requestheaders refuses them all.
            state.sni_refused = True
            self._verdict(state, rules.SNI_MISMATCH, *state.connect)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT":
            return
        state, policy = self._state(flow.client_conn)
        # Where mitmproxy will send it: an absolute-form request names its own host, even in a tunnel.
        target = rules.normal_host(flow.request.host), flow.request.port
        host, port = state.connect or target
        header = flow.request.host_header
        if state.sni_refused:
            reason: str | None = rules.SNI_MISMATCH
        elif header is None or rules.host_of(header) != host or target != (host, port):
            reason = rules.HOST_MISMATCH
        else:
            reason = policy.refusal(host, port) if policy else rules.NOT_ALLOWED
        if reason or policy is None:
            self._refuse(flow, state, reason or rules.NOT_ALLOWED, host, port)
            return
        if flow.request.scheme == "https":
            # Only over TLS, where the upstream's certificate was verified for this very host.
            for item in policy.injections(host):
                flow.request.headers[item.header] = item.value

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        state, policy = self._state(data.client)
        assert data.server.address is not None
        host, port = rules.normal_host(str(data.server.address[0])), int(data.server.address[1])
        reason = policy.refusal(host, port) if policy else rules.NOT_ALLOWED
        if state.connect is not None and (host, port) != state.connect:
            reason = rules.HOST_MISMATCH  # a tunnel leads to its own host only
        if reason is None:
            addresses = await self._resolver.addresses(host)
            kept = rules.reachable(addresses, self._listed)
            reason = rules.UNRESOLVABLE if not addresses else None if kept else rules.PRIVATE_ADDRESS
        if reason:
            data.server.error = f"refused by loopd egress: {reason}"
            self._verdict(state, reason, host, port)
            return
        # Verified against the name, connected to the address that was checked.
        data.server.sni = host
        data.server.address = (kept[0], port)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        if not data.server.tls:
            self._allowed(data.client, data.server)

    def tls_established_server(self, data: tls.TlsData) -> None:
        assert isinstance(data.conn, connection.Server)
        self._allowed(data.context.client, data.conn)

    def tls_failed_server(self, data: tls.TlsData) -> None:
        state, _ = self._state(data.context.client)
        assert isinstance(data.conn, connection.Server) and data.conn.address is not None
        self._verdict(state, rules.UPSTREAM_TLS, data.conn.sni or "", int(data.conn.address[1]))

    def _state(self, client: connection.Client) -> tuple[_Client, rules.Policy | None]:
        state = self._clients.get(client.id)
        if state is None:
            # Bound once, on the connection's first event: hands bound it before relaying a byte.
            peer = (str(client.peername[0]), int(client.peername[1])) if client.peername else None
            binding = self._bindings.get(peer) if peer else None
            state = self._clients[client.id] = _Client(binding)
        policy = self._policies.get(state.binding.key) if state.binding else None
        return state, policy

    def _allowed(self, client: connection.Client, server: connection.Server) -> None:
        state, _ = self._state(client)
        assert server.address is not None
        self._verdict(state, "", server.sni or "", int(server.address[1]))

    def _refuse(self, flow: http.HTTPFlow, state: _Client, reason: str, host: str, port: int) -> None:
        flow.response = http.Response.make(
            403,
            f"refused by loopd egress: {reason} ({host}:{port})\n",
            {"Content-Type": "text/plain", "X-Loopd-Egress": reason, "Connection": "close"},
        )
        self._verdict(state, reason, host, port)

    def _verdict(self, state: _Client, reason: str, host: str, port: int) -> None:
        if state.binding is None:
            log.warning("refused a connection hands did not bind (%s)", reason)
            return
        once = f"{reason}\n{host}:{port}"
        if once in state.reported:
            return
        state.reported.add(once)
        self._report(
            {
                "t": "verdict",
                "conn": state.binding.conn,
                "allowed": not reason,
                "host": host,
                "port": port,
                "reason": reason,
            }
        )
