"""Docker backend of the sandbox driver, over the Docker Engine API (the `docker` package).

A sandbox is a container idling under a tiny init (programs.INIT) with no network, no capabilities,
a read-only root, a tmpfs /tmp, and an anonymous volume on /workspace. The volume (not a tmpfs) is
what the engine's archive API can read and write, it survives the restart used to recover from a
runaway process tree, its pages do not count against the sandbox's memory, and removing the
container with v=True removes it too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import docker
from docker.errors import APIError, NotFound
from docker.types import Mount

from services.core.errors import InfrastructureError, LoopdError, SandboxLost
from services.hands.sandbox import CreateSandbox, ExecExit, ExecOutput, ExecRequest, PutFile, SandboxSpec
from services.hands.sandbox.docker_io import drained, engine_errors, pump, single_file_tar
from services.hands.sandbox.programs import CLEAR, INIT, RELAY

_T = TypeVar("_T")
# Run as the sandbox user, this kills every process of the sandbox but PID 1 and itself in one
# kernel pass, so it also stops a fork bomb, or a tree that escaped its process group with setsid.
_KILL_ALL = ("python3", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)")
_KILL_GRACE = 3.0
_KILL_ATTEMPTS = 3


class DockerDriver:
    def __init__(self, spec: SandboxSpec, *, base_url: str, max_connections: int = 32) -> None:
        self._spec = spec
        self._base_url = base_url
        self._max_connections = max_connections
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()

    async def create(self, request: CreateSandbox) -> str:
        return await self._call(self._create, {**self._spec.labels, **request.labels})

    async def destroy(self, sandbox_id: str) -> None:
        await self._call(self._destroy, sandbox_id)

    async def alive(self, sandbox_id: str) -> bool:
        return await self._call(self._alive, sandbox_id)

    async def exec(
        self, sandbox_id: str, request: ExecRequest
    ) -> AsyncGenerator[ExecOutput | ExecExit, None]:
        argv = ("python3", "-c", RELAY, *request.argv)
        try:
            exec_id, stream = await self._call(self._start_exec, sandbox_id, argv)
        except SandboxLost:
            yield ExecExit(exit_code=None, lost=True)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ExecOutput | None] = asyncio.Queue()
        # A thread of its own, not the shared pool: the stream may stay open for the whole timeout.
        reader = threading.Thread(target=pump, args=(stream, loop, queue), daemon=True)
        reader.start()
        deadline = loop.time() + request.timeout
        finished = timed_out = False
        try:
            while True:
                # The deadline guards only the wait, never a yield: firing while the consumer holds
                # an item would cancel the consumer's own await instead of this loop.
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await queue.get()
                except TimeoutError:
                    timed_out = True
                    break
                if item is None:
                    break
                yield item
            finished = True
            if timed_out:
                recovered = await self._stop_all(sandbox_id, queue)
                yield ExecExit(exit_code=None, timed_out=True, lost=not recovered)
            else:
                yield await self._exit(sandbox_id, exec_id)
        finally:
            stream.close()
            if not finished:
                # The caller went away mid-call: leave nothing of it running in the sandbox.
                await self._kill_all(sandbox_id)

    async def put_file(self, sandbox_id: str, request: PutFile) -> None:
        await self._call(self._put_file, sandbox_id, request)

    async def export(self, sandbox_id: str, path: str, dest: Path) -> None:
        await self._call(self._export, sandbox_id, path, dest)

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        await self._call(self._import, sandbox_id, path, source)

    async def clear(self, sandbox_id: str, path: str) -> None:
        if not await self._call(self._run_to_end, sandbox_id, ("python3", "-c", CLEAR, path)):
            raise InfrastructureError(
                f"could not clear {path} in sandbox {sandbox_id[:12]}", code="sandbox_clear_failed"
            )

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        return await self._call(self._find, labels)

    async def aclose(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., _T], *args: Any) -> _T:
        with engine_errors():
            return fn(*args)

    def _api(self) -> docker.APIClient:
        # Built on first use, in a worker thread: the client asks the engine for its API version.
        with self._client_lock:
            if self._client is None:
                self._client = docker.APIClient(base_url=self._base_url, max_pool_size=self._max_connections)
            return self._client

    def _create(self, labels: dict[str, str]) -> str:
        api, spec = self._api(), self._spec
        host_config = api.create_host_config(
            network_mode=spec.network_mode,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=spec.read_only_root,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={spec.tmp_size}"},
            mounts=[Mount(spec.workdir, None, type="volume", labels=labels)],
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=spec.pids_limit,
        )
        container = api.create_container(
            spec.image,
            command=["python3", "-c", INIT],
            user=spec.user,
            working_dir=spec.workdir,
            environment={"HOME": "/tmp", "TMPDIR": "/tmp"},
            labels=labels,
            host_config=host_config,
        )
        try:
            api.start(container["Id"])
        except BaseException:
            self._destroy(container["Id"])
            raise
        return str(container["Id"])

    def _destroy(self, sandbox_id: str) -> None:
        try:
            self._api().remove_container(sandbox_id, v=True, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                raise

    def _alive(self, sandbox_id: str) -> bool:
        try:
            return bool(self._api().inspect_container(sandbox_id)["State"]["Running"])
        except NotFound:
            return False

    def _start_exec(self, sandbox_id: str, argv: tuple[str, ...]) -> tuple[str, Any]:
        api, spec = self._api(), self._spec
        try:
            exec_id = api.exec_create(sandbox_id, list(argv), user=spec.user, workdir=spec.workdir)["Id"]
            return exec_id, api.exec_start(exec_id, stream=True, demux=True)
        except APIError as exc:
            if isinstance(exc, NotFound) or exc.status_code == 409:  # gone, or not running
                raise SandboxLost(f"sandbox {sandbox_id[:12]} is gone") from exc
            raise

    async def _exit(self, sandbox_id: str, exec_id: str) -> ExecExit:
        code = await self._call(self._exit_code, exec_id)
        # A signal-sized code may mean the whole sandbox died (killed, OOM, removed), not just the command.
        # The engine may still call a dying container running, so ask it to start a process instead.
        if (code is None or code >= 128) and not await self._responds(sandbox_id):
            return ExecExit(exit_code=code, lost=True)
        return ExecExit(exit_code=code)

    async def _responds(self, sandbox_id: str) -> bool:
        try:
            return await self._call(self._run_quick, sandbox_id, ("true",))
        except LoopdError:
            return False

    def _exit_code(self, exec_id: str) -> int | None:
        # The stream can close a moment before the engine records the exit code.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                state = self._api().exec_inspect(exec_id)
            except NotFound:
                return None
            if not state["Running"] or time.monotonic() > deadline:
                code = state["ExitCode"]
                return None if code is None else int(code)
            time.sleep(0.02)

    async def _stop_all(self, sandbox_id: str, queue: asyncio.Queue[ExecOutput | None]) -> bool:
        """Kill every process of the call, restarting the sandbox if that fails; False if it is lost."""
        if await self._kill_all(sandbox_id) and await drained(queue, _KILL_GRACE):
            return True
        try:
            # Stopping a container kills its whole pid namespace; the /workspace volume survives.
            await self._call(lambda: self._api().restart(sandbox_id, timeout=0))
        except LoopdError:  # gone, or the engine failed: either way the sandbox cannot be trusted
            return False
        return await self.alive(sandbox_id)

    async def _kill_all(self, sandbox_id: str) -> bool:
        for _ in range(_KILL_ATTEMPTS):
            try:
                if await self._call(self._run_quick, sandbox_id, _KILL_ALL):
                    return True
            except LoopdError:  # the sandbox is gone or the engine is down: nothing left to kill here
                return False
        return False

    def _run_quick(self, sandbox_id: str, argv: tuple[str, ...]) -> bool:
        """Run a short command to its end; False if it could not start or failed."""
        api = self._api()
        exec_id = api.exec_create(sandbox_id, list(argv), user=self._spec.user)["Id"]
        api.exec_start(exec_id)
        # A start that failed (dying sandbox, pids exhausted) is exit 126 plus the engine's message.
        return self._exit_code(exec_id) == 0

    def _put_file(self, sandbox_id: str, request: PutFile) -> None:
        directory, _, name = request.path.rpartition("/")
        archive = single_file_tar(name, request.data, request.mode, self._spec.user)
        self._archive_call(sandbox_id, lambda api: api.put_archive(sandbox_id, directory or "/", archive))

    def _export(self, sandbox_id: str, path: str, dest: Path) -> None:
        def write(api: docker.APIClient) -> None:
            chunks, _ = api.get_archive(sandbox_id, path)
            with dest.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)

        self._archive_call(sandbox_id, write)

    def _import(self, sandbox_id: str, path: str, source: Path) -> None:
        def upload(api: docker.APIClient) -> None:
            # A file object makes the client stream the archive instead of loading it.
            with source.open("rb") as data:
                api.put_archive(sandbox_id, path, data)

        self._archive_call(sandbox_id, upload)

    def _run_to_end(self, sandbox_id: str, argv: tuple[str, ...]) -> bool:
        try:
            return self._run_quick(sandbox_id, argv)
        except APIError as exc:
            if isinstance(exc, NotFound) or exc.status_code == 409:  # gone, or not running
                raise SandboxLost(f"sandbox {sandbox_id[:12]} is gone") from exc
            raise

    def _archive_call(self, sandbox_id: str, fn: Callable[[docker.APIClient], object]) -> None:
        try:
            fn(self._api())
        except NotFound as exc:
            if not self._alive(sandbox_id):
                raise SandboxLost(f"sandbox {sandbox_id[:12]} is gone") from exc
            raise

    def _find(self, labels: Mapping[str, str]) -> list[str]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        return [str(c["Id"]) for c in self._api().containers(all=True, filters=filters)]
