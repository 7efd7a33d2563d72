"""Hands' side of egress: a socket per networked sandbox, relayed to the worker's proxy, and its decisions.

Which sandbox a connection comes from is known from the socket it arrived on (each lives in that
sandbox's own channel directory), never from anything the sandbox says. Each connection is relayed
to the proxy only after the proxy has bound its local port to that sandbox's policy. Bytes are
counted here, both ways, against the run's byte budget; past it the connection is cut.
Decisions are kept in memory until the sandbox's next call result takes them: they are observations
for the run's log, and a worker that dies before a result loses only what it could not report anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.errors import InfrastructureError
from services.core.settings import Settings
from services.hands.contract.profile import EgressDecision, NetworkPolicy
from services.hands.egress.ca import EgressCA
from services.hands.egress.environment import BUNDLE_NAME, SOCKET_NAME
from services.hands.egress.supervisor import ProxyProcess, ProxyUnavailable, default_python, proxy_arguments

BUDGET_EXHAUSTED = "budget_exhausted"
_CHUNK = 65536
log = logging.getLogger(__name__)


@dataclass
class _Connection:
    number: int
    host: str = ""
    port: int = 0
    allowed: bool = False
    sent: int = 0
    received: int = 0
    # What earlier decisions of this connection already reported.
    reported: tuple[int, int] = (0, 0)


@dataclass
class _Sandbox:
    policy: dict[str, Any]
    budget: int | None
    server: asyncio.AbstractServer | None = None
    decisions: list[EgressDecision] = field(default_factory=list)
    connections: dict[int, _Connection] = field(default_factory=dict)
    relays: set[asyncio.Task[Any]] = field(default_factory=set)


class Egress:
    """The worker's egress: its proxy, started on first need, and every networked sandbox's socket."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ca: EgressCA | None = None
        self._bundle = b""
        self._proxy: ProxyProcess | None = None
        self._starting = asyncio.Lock()
        self._sandboxes: dict[str, _Sandbox] = {}
        self._by_number: dict[int, tuple[str, _Connection]] = {}
        self._numbers = itertools.count(1)

    @property
    def proxy_pid(self) -> int | None:
        """The running proxy's process id, if one runs."""
        return self._proxy.pid if self._proxy is not None and self._proxy.running else None

    @property
    def proxy_port(self) -> int | None:
        """The port of hands' loopback the running proxy listens on, if one runs."""
        return self._proxy.port if self._proxy is not None and self._proxy.running else None

    async def attach(self, sandbox_id: str, directory: Path, policy: NetworkPolicy) -> None:
        """Give a sandbox its socket and CA bundle in its channel directory; raises ProxyUnavailable."""
        message = {
            "op": "policy",
            "key": sandbox_id,
            "mode": policy.mode,
            "allow": [{"pattern": rule.pattern, "ports": list(rule.ports)} for rule in policy.allow],
            "inject": self._opened(policy),
        }
        sandbox = self._sandboxes[sandbox_id] = _Sandbox(message, policy.byte_budget)
        proxy = await self._running()
        proxy.send(message)
        await asyncio.to_thread(_write, directory / BUNDLE_NAME, self._bundle)
        path = directory / SOCKET_NAME
        sandbox.server = await asyncio.start_unix_server(
            lambda r, w: self._relay(sandbox_id, r, w), path=str(path)
        )
        await asyncio.to_thread(os.chmod, path, 0o666)

    def _opened(self, policy: NetworkPolicy) -> list[dict[str, str]]:
        """The policy's headers with their secrets opened: only the proxy ever gets them."""
        from services.core.secret_box import SecretBox, SecretUnreadable

        if not policy.inject:
            return []
        box = SecretBox.from_settings(self._settings)
        headers = []
        for item in policy.inject:
            try:
                secret = box.open(item.sealed_value)
            except SecretUnreadable as exc:
                raise InfrastructureError(
                    f"the secret {item.secret_name!r} cannot be opened: {exc}",
                    code="secret_unreadable",
                    retryable=False,
                ) from None
            value = item.value_template.replace("{secret}", secret)
            if any(c in value for c in "\r\n\0") or not item.header.isascii():
                # A line break would end the header early and start another that nobody chose.
                raise InfrastructureError(
                    f"the secret {item.secret_name!r} does not fit in a header",
                    code="secret_unusable",
                    retryable=False,
                )
            headers.append({"host": item.host, "header": item.header, "value": value})
        return headers

    def set_budget(self, sandbox_id: str, budget: int | None) -> None:
        """The bytes the run may still move, as its latest call says, less what moved since the
        decisions its caller has seen (traffic between calls is reported with this call)."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        if budget is None:
            sandbox.budget = None
            return
        unseen = sum(d.bytes_sent + d.bytes_received for d in sandbox.decisions)
        for connection in sandbox.connections.values():
            unseen += connection.sent + connection.received - sum(connection.reported)
        sandbox.budget = budget - unseen

    async def drain(self, sandbox_id: str) -> tuple[EgressDecision, ...]:
        """The sandbox's decisions since the last drain, bytes of open connections included so far."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            return ()
        if self._proxy is not None and self._proxy.running:
            # Every verdict the proxy sent before this ack has been read.
            with contextlib.suppress(ProxyUnavailable):
                await self._proxy.ask({"op": "sync"})
        for connection in sandbox.connections.values():
            self._report(sandbox, connection)
        decisions, sandbox.decisions = tuple(sandbox.decisions), []
        return decisions

    async def detach(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        if sandbox.server is not None:
            sandbox.server.close()
        for task in sandbox.relays:
            task.cancel()
        await asyncio.gather(*sandbox.relays, return_exceptions=True)
        if self._proxy is not None and self._proxy.running:
            with contextlib.suppress(ProxyUnavailable):
                self._proxy.send({"op": "forget", "key": sandbox_id})

    async def aclose(self) -> None:
        for sandbox_id in list(self._sandboxes):
            await self.detach(sandbox_id)
        if self._proxy is not None:
            await self._proxy.stop()
            self._proxy = None

    async def _running(self) -> ProxyProcess:
        """The proxy, started (again, with every policy) if it is not running."""
        async with self._starting:
            if self._proxy is not None and self._proxy.running:
                return self._proxy
            if self._proxy is not None:
                await self._proxy.stop()
            settings = self._settings
            if self._ca is None:
                self._ca = await asyncio.to_thread(EgressCA.from_settings, settings)
                self._bundle = await asyncio.to_thread(self._ca.sandbox_bundle)
            arguments = proxy_arguments(
                self._ca.cert,
                self._ca.key,
                settings.egress_nameservers,
                settings.egress_reachable_networks,
                settings.egress_upstream_ca,
            )
            proxy = ProxyProcess(settings.egress_python or default_python(), arguments, self._verdict)
            await proxy.start()
            for sandbox in self._sandboxes.values():
                proxy.send(sandbox.policy)
            self._proxy = proxy
            return proxy

    async def _relay(
        self, sandbox_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            writer.close()
            return
        connection = _Connection(next(self._numbers))
        if sandbox.budget is not None and sandbox.budget <= 0:
            sandbox.decisions.append(_decision(connection, BUDGET_EXHAUSTED))
            writer.close()
            return
        relay = asyncio.current_task()
        if relay is not None:
            sandbox.relays.add(relay)
        upstream: asyncio.StreamWriter | None = None
        try:
            proxy = await self._running()
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", proxy.port)
            local = upstream.get_extra_info("sockname")
            peer = {"address": str(local[0]), "port": int(local[1]), "conn": connection.number}
            self._by_number[connection.number] = (sandbox_id, connection)
            sandbox.connections[connection.number] = connection
            await proxy.ask({"op": "bind", "key": sandbox_id, **peer})
            cut = asyncio.Event()
            await _until_both_or_cut(
                cut,
                self._pipe(sandbox, connection, reader, upstream, cut, sending=True),
                self._pipe(sandbox, connection, up_reader, writer, cut, sending=False),
            )
            with contextlib.suppress(ProxyUnavailable):
                if proxy.running:
                    proxy.send({"op": "unbind", **peer})
        except (ProxyUnavailable, OSError) as exc:
            log.warning("egress of sandbox %s: %s", sandbox_id[:12], exc)
        finally:
            if relay is not None:
                sandbox.relays.discard(relay)
            for end in (writer, upstream):
                if end is not None:
                    end.close()
            self._by_number.pop(connection.number, None)
            if sandbox.connections.pop(connection.number, None) is not None:
                self._report(sandbox, connection)

    async def _pipe(
        self,
        sandbox: _Sandbox,
        connection: _Connection,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        cut: asyncio.Event,
        *,
        sending: bool,
    ) -> None:
        """Copy one direction until its end (passed on as a half-close) or the budget's."""
        with contextlib.suppress(OSError):
            while data := await source.read(_CHUNK):
                if sandbox.budget is not None:
                    data = data[: max(sandbox.budget, 0)]
                    sandbox.budget -= len(data)
                if sending:
                    connection.sent += len(data)
                else:
                    connection.received += len(data)
                target.write(data)
                await target.drain()
                if sandbox.budget is not None and sandbox.budget <= 0:
                    if not cut.is_set():
                        cut.set()
                        self._report(sandbox, connection)
                        sandbox.decisions.append(_decision(connection, BUDGET_EXHAUSTED))
                    return
            if target.can_write_eof():
                target.write_eof()

    def _verdict(self, message: dict[str, Any]) -> None:
        found = self._by_number.get(int(message["conn"]))
        if found is None:
            return
        sandbox = self._sandboxes.get(found[0])
        if sandbox is None:
            return
        connection = found[1]
        host, port, reason = str(message["host"]), int(message["port"]), str(message["reason"])
        if message["allowed"]:
            if connection.allowed and (connection.host, connection.port) != (host, port):
                self._report(sandbox, connection)
            connection.host, connection.port, connection.allowed = host, port, True
        else:
            sandbox.decisions.append(
                EgressDecision(allowed=False, host=host, port=port, reason=reason, at=time.time())
            )

    def _report(self, sandbox: _Sandbox, connection: _Connection) -> None:
        """An allowed connection's bytes since it was last reported, as a decision of its own."""
        sent, received = connection.reported
        if connection.allowed and (connection.sent > sent or connection.received > received):
            sandbox.decisions.append(
                EgressDecision(
                    allowed=True,
                    host=connection.host,
                    port=connection.port,
                    bytes_sent=connection.sent - sent,
                    bytes_received=connection.received - received,
                    at=time.time(),
                )
            )
            connection.reported = (connection.sent, connection.received)


async def _until_both_or_cut(cut: asyncio.Event, *pipes: Coroutine[Any, Any, None]) -> None:
    tasks = [asyncio.ensure_future(pipe) for pipe in pipes]
    cutting = asyncio.ensure_future(cut.wait())
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending and not cut.is_set():
            _, pending = await asyncio.wait({*pending, cutting}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(cutting)
    finally:
        for task in (*tasks, cutting):
            task.cancel()
        await asyncio.gather(*tasks, cutting, return_exceptions=True)


def _decision(connection: _Connection, reason: str) -> EgressDecision:
    return EgressDecision(
        allowed=False, host=connection.host, port=connection.port, reason=reason, at=time.time()
    )


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)
