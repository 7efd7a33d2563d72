"""The egress proxy's entry point: mitmproxy on hands' loopback, steered over one socket from hands.

Hands starts it (supervisor.py) with a socket of a socketpair as `--control-fd`; JSON lines go both
ways. From hands: `policy` and `forget` (a sandbox's policy, with its secrets already opened), `bind`
and `unbind` (which sandbox a connection from a local address and port belongs to; `bind` and `sync` are
answered with `ack`). To hands: `ready` with the port it listens on, then `verdict`s. When the socket
closes (hands stopped or died), the proxy stops: it never outlives its worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from mitmproxy import ctx, options
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from services.hands.egress.proxy import rules
from services.hands.egress.proxy.addon import Binding, Gate
from services.hands.egress.proxy.resolve import Resolver

log = logging.getLogger("loopd.egress")


class Control:
    """Hands' end of the proxy: reads its messages, writes reports."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self.gate: Gate | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def serve(self, master: Master) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self._sock, limit=1 << 24)
        try:
            while line := await reader.readline():
                self._handle(json.loads(line))
        finally:
            master.shutdown()

    def _handle(self, message: dict[str, Any]) -> None:
        gate, op = self.gate, message.get("op")
        assert gate is not None
        if op == "policy":
            gate.set_policy(str(message["key"]), rules.Policy.from_message(message))
        elif op == "forget":
            gate.forget(str(message["key"]))
        elif op == "bind":
            peer = (str(message["address"]), int(message["port"]))
            gate.bind(peer, Binding(str(message["key"]), int(message["conn"])))
            self.send({"t": "ack", "id": message["id"]})
        elif op == "unbind":
            gate.unbind((str(message["address"]), int(message["port"])), int(message["conn"]))
        elif op == "sync":
            self.send({"t": "ack", "id": message["id"]})


class Ready:
    """Tells hands the port once mitmproxy listens."""

    def __init__(self, control: Control) -> None:
        self._control = control

    def running(self) -> None:
        server = ctx.master.addons.get("proxyserver")
        port = next(addr[1] for addr in server.listen_addrs())
        self._control.send({"t": "ready", "port": port})


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="loopd-egress")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--ca-cert", type=Path, required=True)
    parser.add_argument("--ca-key", type=Path, required=True)
    parser.add_argument("--nameserver", action="append", default=[])
    parser.add_argument("--reachable", action="append", default=[], help="a private network (CIDR) allowed")
    parser.add_argument("--upstream-ca", type=Path, default=None)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def confdir(cert: Path, key: Path) -> Path:
    """A private folder with the CA as mitmproxy reads it (key and certificate in one file)."""
    folder = Path(tempfile.mkdtemp(prefix="loopd-egress-"))
    ca = folder / "mitmproxy-ca.pem"
    fd = os.open(ca, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        data = key.read_bytes().rstrip() + b"\n"
        out.write(data if key.resolve() == cert.resolve() else data + cert.read_bytes())
    return folder


async def serve(args: argparse.Namespace) -> None:
    control = Control(socket.socket(fileno=args.control_fd))
    folder = confdir(args.ca_cert, args.ca_key)
    try:
        opts = options.Options(listen_host="127.0.0.1", listen_port=0, mode=["regular"], confdir=str(folder))
        master = Master(opts)
        gate = control.gate = Gate(
            control.send, Resolver(args.nameserver), rules.parse_networks(args.reachable)
        )
        master.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            disable_h2c.DisableH2C(),
            gate,
            Ready(control),
        )
        upstream = args.upstream_ca or _system_bundle()
        opts.update(
            # Nothing reaches a server before its request was checked (no early upstream connection).
            connection_strategy="lazy",
            upstream_cert=False,
            http2=False,
            http3=False,
            rawtcp=False,
            stream_large_bodies="1m",
            ssl_insecure=False,
            **({"ssl_verify_upstream_trusted_ca": str(upstream)} if upstream else {}),
        )
        serving = asyncio.create_task(control.serve(master))
        await master.run()
        serving.cancel()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _system_bundle() -> Path | None:
    for path in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if os.path.exists(path):
            return Path(path)
    return None


def main(argv: list[str]) -> None:
    args = arguments(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
