"""Runs the egress proxy (proxy/main.py) as a child of the hands worker, and speaks to it.

The child gets one end of a socketpair as its control channel: JSON lines both ways (see proxy/main.py).
If the proxy dies, the worker starts a new one on next need and tells it every policy again; the
child stops when the channel closes, so it never outlives the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import services
from services.core.errors import InfrastructureError

# Imports loopd's `services` package from its folder without putting that folder on the path, where
# loopd's own dependencies could shadow the proxy venv's.
_BOOT = """
import importlib.util, sys
root = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location(
    "services", root + "/services/__init__.py", submodule_search_locations=[root + "/services"]
)
package = sys.modules["services"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package)
from services.hands.egress.proxy.main import main
main(sys.argv[1:])
"""
_START_TIMEOUT = 60.0
_ANSWER_TIMEOUT = 10.0
log = logging.getLogger(__name__)


def source_root() -> Path:
    """The folder holding loopd's `services` package."""
    return Path(services.__file__).resolve().parent.parent


def default_python() -> Path:
    return source_root() / ".venv-egress" / "bin" / "python"


class ProxyUnavailable(InfrastructureError):
    code = "egress_unavailable"
    retryable = True


class ProxyProcess:
    def __init__(
        self, python: Path, arguments: Sequence[str], on_verdict: Callable[[dict[str, Any]], None]
    ) -> None:
        self._python = python
        self._arguments = tuple(arguments)
        self._on_verdict = on_verdict
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[int] | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._writer is not None

    async def start(self) -> None:
        """Start the proxy and wait until it listens; raises ProxyUnavailable."""
        if not self._python.exists():
            raise ProxyUnavailable(
                f"no egress proxy interpreter at {self._python}: `make install` makes .venv-egress "
                "(or set LOOPD_EGRESS_PYTHON)",
                retryable=False,
            )
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(self._python),
                "-s",
                "-c",
                _BOOT,
                str(source_root()),
                "--control-fd",
                str(theirs.fileno()),
                *self._arguments,
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours, limit=1 << 24)
        assert self._process.stderr is not None
        self._tasks = [
            asyncio.create_task(self._read(reader), name="egress-control"),
            asyncio.create_task(self._log(self._process.stderr), name="egress-log"),
        ]
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                self.port = await self._ready
        except (TimeoutError, ConnectionError) as exc:
            await self.stop()
            raise ProxyUnavailable(f"the egress proxy did not start: {exc or 'timed out'}") from None
        log.info("egress proxy %d listening on 127.0.0.1:%d", self._process.pid, self.port)

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ProxyUnavailable("the egress proxy is not running")
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def ask(self, message: dict[str, Any]) -> None:
        """Send a message the proxy acknowledges (bind, sync), and wait for its ack."""
        ask_id = next(self._ids)
        answer = self._waiting[ask_id] = asyncio.get_running_loop().create_future()
        try:
            self.send({**message, "id": ask_id})
            async with asyncio.timeout(_ANSWER_TIMEOUT):
                await answer
        except (TimeoutError, ConnectionError) as exc:
            raise ProxyUnavailable(f"the egress proxy did not answer: {exc or 'timed out'}") from None
        finally:
            self._waiting.pop(ask_id, None)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            # Closing the channel stops it; a proxy that does not stop is killed.
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                kind = message.get("t")
                if kind == "verdict":
                    self._on_verdict(message)
                elif kind == "ack" and (answer := self._waiting.get(int(message["id"]))) is not None:
                    if not answer.done():
                        answer.set_result(None)
                elif kind == "ready" and self._ready is not None and not self._ready.done():
                    self._ready.set_result(int(message["port"]))
        except (ConnectionError, ValueError) as exc:
            log.warning("egress proxy control channel failed: %s", exc)
        finally:
            self._closed()

    def _closed(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        gone = ConnectionError("the egress proxy exited")
        answers: list[asyncio.Future[Any]] = [*self._waiting.values()]
        if self._ready is not None:
            answers.append(self._ready)
        for answer in answers:
            if not answer.done():
                answer.set_exception(gone)
        if self._process is not None:
            log.warning("egress proxy %d exited", self._process.pid)

    async def _log(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            log.warning("egress proxy: %s", line.decode(errors="replace").rstrip())


def proxy_arguments(
    ca_cert: Path, ca_key: Path, nameservers: Sequence[str], networks: Sequence[str], upstream_ca: Path | None
) -> list[str]:
    arguments = ["--ca-cert", str(ca_cert), "--ca-key", str(ca_key)]
    for nameserver in nameservers:
        arguments += ["--nameserver", nameserver]
    for network in networks:
        arguments += ["--reachable", network]
    if upstream_ca is not None:
        arguments += ["--upstream-ca", str(upstream_ca)]
    if sys.flags.dev_mode:
        arguments += ["--log-level", "INFO"]
    return arguments
