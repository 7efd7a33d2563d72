"""Docker backend of the sandbox driver: containers from the Docker Engine, commands through an executor.

A sandbox is a container with no network, no capabilities, a read-only root, a tmpfs /tmp, and a
/workspace of bounded size: a loop-mounted disk of its own (disks.py), or where those cannot be made
an anonymous volume. Either one the engine's archive API can write, survives the restart used to
recover from a runaway tree, and is removed with the container. Its PID 1 is
the executor (inside/executor.py): it connects back to hands over a unix socket in a per-sandbox host
directory (channel.py) and runs every command, kill and workspace scan, so a call costs a fork and
an exec instead of a `docker exec`. The engine is only asked to create, restart, remove and to unpack
the archives of restores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from services.core.errors import InfrastructureError, LoopdError, SandboxLost
from services.hands.contract.manifest import FileEntry
from services.hands.egress.environment import networked, sandbox_environment
from services.hands.sandbox import (
    CreateSandbox,
    ExecExit,
    ExecOutput,
    ExecRequest,
    Labelled,
    PutFile,
    SandboxRefused,
    SandboxSpec,
    WorkspaceScan,
    executor_client,
)
from services.hands.sandbox.channel import ChannelClosed, ExecutorChannel
from services.hands.sandbox.docker_engine import Engine, Shape
from services.hands.sandbox.docker_errors import engine_errors

if TYPE_CHECKING:
    from services.hands.egress.gate import Egress

_T = TypeVar("_T")
# How long a started container's executor has to connect back.
_CONNECT_TIMEOUT = 20.0
log = logging.getLogger(__name__)


@dataclass
class _Session:
    channel: ExecutorChannel
    # Contents the host has read from this sandbox and verified, or put there itself (see WorkspaceScan).
    seen: set[str] = field(default_factory=set)


class DockerDriver:
    def __init__(
        self, spec: SandboxSpec, *, base_url: str, max_connections: int = 32, egress: Egress | None = None
    ) -> None:
        self._spec = spec
        self._egress = egress
        self._engine = Engine(spec, base_url=base_url, max_connections=max_connections)
        self._sessions: dict[str, _Session] = {}
        self._root: Path | None = None
        # The warm pool's first start and a run's first call can both be the first use.
        self._root_lock = asyncio.Lock()

    async def create(self, request: CreateSandbox) -> str:
        shape = self._shape(request)
        channel = ExecutorChannel(await self._channels_root() / secrets.token_hex(6))
        await channel.open()
        sandbox_id = ""
        try:
            labels = {**self._spec.labels, **request.labels}
            size = request.workspace_size or self._spec.workspace_size
            creating = self._call(self._engine.create, labels, channel.directory, size, shape)
            sandbox_id = await self._made(creating)
            if shape.forward and self._egress is not None and request.profile is not None:
                # Before the executor connects, so the socket is there before any tool runs.
                await self._egress.attach(sandbox_id, channel.directory, request.profile.network)
            if not await channel.wait_connected(_CONNECT_TIMEOUT):
                raise InfrastructureError(
                    f"the executor of sandbox {sandbox_id[:12]} did not connect", code="sandbox_unavailable"
                )
        except BaseException:
            with contextlib.suppress(LoopdError):
                if sandbox_id:
                    await self._call(self._engine.destroy, sandbox_id)
            if sandbox_id and self._egress is not None:
                await self._egress.detach(sandbox_id)
            await channel.close()
            raise
        self._sessions[sandbox_id] = _Session(channel)
        return sandbox_id

    def _shape(self, request: CreateSandbox) -> Shape:
        """The sandbox a request asks for; a network only through the egress proxy, if it has one."""
        spec = self._spec.within(request.profile)
        network = request.profile.network if request.profile is not None else None
        if network is None or not networked(network):
            return Shape(spec)
        if self._egress is None:
            raise InfrastructureError(
                "this hands worker has no egress proxy for a sandbox with a network",
                code="egress_unavailable",
                retryable=False,
            )
        return Shape(spec, sandbox_environment(network), forward=True)

    async def _made(self, creating: Awaitable[str]) -> str:
        """The id of the sandbox being made; cancelled meanwhile, remove it once the engine has made it.

        The engine's thread cannot be stopped: without this, what it makes (and its disk) would be left.
        """
        task = asyncio.ensure_future(creating)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._call(self._engine.destroy, await task)
            raise

    async def destroy(self, sandbox_id: str) -> None:
        await self._call(self._engine.destroy, sandbox_id)
        if self._egress is not None:
            await self._egress.detach(sandbox_id)
        session = self._sessions.pop(sandbox_id, None)
        if session is not None:
            await session.channel.close()

    async def alive(self, sandbox_id: str) -> bool:
        session = self._sessions.get(sandbox_id)
        if session is None:
            return await self._call(self._engine.alive, sandbox_id)
        try:
            # The executor is PID 1: while it answers, the container runs.
            await executor_client.ping(session.channel)
            return True
        except (ChannelClosed, TimeoutError):
            return False

    async def exec(
        self, sandbox_id: str, request: ExecRequest
    ) -> AsyncGenerator[ExecOutput | ExecExit, None]:
        session = self._sessions.get(sandbox_id)
        if session is None:
            yield ExecExit(exit_code=None, lost=True)
            return
        finished = False
        try:
            async for item in executor_client.run(session.channel, request, self._spec.workdir):
                if isinstance(item, ExecExit):
                    finished = True
                yield item
        except ChannelClosed:
            finished = True
            yield ExecExit(exit_code=None, lost=True)
        except TimeoutError:
            # The executor did not end the call in time: it is stuck, so start the sandbox afresh.
            finished = True
            yield ExecExit(exit_code=None, timed_out=True, lost=not await self._restart(sandbox_id))
        finally:
            if not finished:
                # The caller went away mid-call: leave nothing of it running in the sandbox.
                await self._kill_all(sandbox_id)

    async def put_file(self, sandbox_id: str, request: PutFile) -> None:
        await executor_client.write(
            self._session(sandbox_id).channel, request.path, request.data, request.mode
        )

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        await self._call(self._engine.import_archive, sandbox_id, path, source)

    async def clear(self, sandbox_id: str, path: str) -> None:
        try:
            await executor_client.clear(self._session(sandbox_id).channel, path)
        except SandboxRefused as exc:
            raise InfrastructureError(
                f"could not clear {path} in sandbox {sandbox_id[:12]}: {exc.message}",
                code="sandbox_clear_failed",
            ) from exc
        except (ChannelClosed, TimeoutError) as exc:
            raise SandboxLost(f"sandbox {sandbox_id[:12]} did not answer: {exc}") from exc

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        session = self._session(sandbox_id)
        try:
            scanned = await executor_client.scan(session.channel, path, limit)
        except (ChannelClosed, TimeoutError) as exc:
            raise SandboxLost(f"sandbox {sandbox_id[:12]} did not answer: {exc}") from exc
        unseen = [
            e
            for e in scanned.entries
            if isinstance(e, FileEntry) and e.sha256 and e.sha256 not in session.seen
        ]
        return replace(scanned, unseen=tuple(unseen))

    async def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in executor_client.read(self._session(sandbox_id).channel, path):
                yield chunk
        except (ChannelClosed, TimeoutError) as exc:
            raise SandboxLost(f"sandbox {sandbox_id[:12]} did not answer: {exc}") from exc

    async def read_many(
        self, sandbox_id: str, files: Sequence[tuple[str, int]]
    ) -> AsyncGenerator[tuple[int, bytes | None], None]:
        try:
            async for item in executor_client.read_many(self._session(sandbox_id).channel, files):
                yield item
        except (ChannelClosed, TimeoutError) as exc:
            raise SandboxLost(f"sandbox {sandbox_id[:12]} did not answer: {exc}") from exc

    def trust(self, sandbox_id: str, sha256s: Iterable[str]) -> None:
        session = self._sessions.get(sandbox_id)
        if session is not None:
            session.seen.update(sha256s)

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        return await self._call(self._engine.find, labels)

    async def labelled(self, key: str, among: Mapping[str, str]) -> list[Labelled]:
        return await self._call(self._engine.labelled, key, among)

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.channel.close()
        await asyncio.to_thread(self._engine.close)

    def _session(self, sandbox_id: str) -> _Session:
        session = self._sessions.get(sandbox_id)
        if session is None:
            raise SandboxLost(f"sandbox {sandbox_id[:12]} is not one of this worker's")
        return session

    async def _kill_all(self, sandbox_id: str) -> bool:
        session = self._sessions.get(sandbox_id)
        if session is None:
            return False
        try:
            if await executor_client.kill_all(session.channel):
                return True
        except (ChannelClosed, TimeoutError, SandboxRefused):
            pass
        return await self._restart(sandbox_id)

    async def _restart(self, sandbox_id: str) -> bool:
        """Restart a sandbox whose executor cannot stop what runs in it; False if it is lost."""
        session = self._sessions.get(sandbox_id)
        if session is None:
            return False
        log.warning("restarting sandbox %s: its executor did not stop the call", sandbox_id[:12])
        try:
            await self._call(self._engine.restart, sandbox_id)
        except LoopdError:  # gone, or the engine failed: either way the sandbox cannot be trusted
            return False
        # Only now, with every process of the old start gone, is the next connection the new executor's.
        session.channel.expect()
        session.seen.clear()
        return await session.channel.wait_connected(_CONNECT_TIMEOUT)

    async def _channels_root(self) -> Path:
        """This driver's directory of channel directories, emptied of a previous process's on first use."""
        async with self._root_lock:
            if self._root is None:
                base = self._spec.runtime_dir or _default_runtime_dir()
                key = "\n".join(f"{k}={v}" for k, v in sorted(self._spec.labels.items()))
                root = base / hashlib.sha256(key.encode()).hexdigest()[:12]
                await asyncio.to_thread(_fresh_directory, base, root)
                self._root = root
            return self._root

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., _T], *args: Any) -> _T:
        with engine_errors():
            return fn(*args)


def _default_runtime_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/loopd-hands")
    return Path(tempfile.gettempdir()) / f"loopd-hands-{os.geteuid()}"


def _fresh_directory(base: Path, root: Path) -> None:
    # Only hands (and the engine, as root) may look inside; each sandbox sees just its own directory.
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o700)
