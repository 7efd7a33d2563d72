"""The requests hands makes of a sandbox's executor (inside/executor.py), typed for the driver.

Timeouts and kills happen inside the sandbox; hands only keeps a safety margin over them, after which
the driver treats the executor as unresponsive. The executor's source is read on first use.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from services.hands.contract.manifest import DirEntry, Entry, FileEntry, SymlinkEntry
from services.hands.sandbox import ExecExit, ExecOutput, ExecRequest, SandboxRefused, WorkspaceScan
from services.hands.sandbox.channel import ExecutorChannel

# Where the sandbox sees its channel directory.
MOUNT = "/run/loopd"
# The port of the sandbox's own loopback its executor forwards to the egress socket, when it has one.
FORWARD_PORT = 3128
# Beyond a call's timeout: the executor's own kill (up to 5 s) and the relay of what was left.
MARGIN = 10.0
_QUICK = 30.0
# Only a stuck executor outlives this: hands gives every snapshot a deadline of its own (settings).
_SCAN = 24 * 3600.0


@functools.cache
def command(forward: bool = False) -> tuple[str, ...]:
    """The sandbox's command: the executor, without site packages or the environment's Python settings;
    `forward`: it also forwards FORWARD_PORT of its loopback to the egress socket."""
    source = (Path(__file__).parent / "inside" / "executor.py").read_text()
    extra = (str(FORWARD_PORT),) if forward else ()
    return ("python3", "-I", "-S", "-c", source, f"{MOUNT}/exec.sock", *extra)


async def run(
    channel: ExecutorChannel, request: ExecRequest, workdir: str
) -> AsyncGenerator[ExecOutput | ExecExit, None]:
    """Stream one command's output, then its ExecExit. Raises ChannelClosed, or TimeoutError past the margin.

    Closing the generator early leaves the command running: the caller kills it.
    """
    header = {
        "op": "exec",
        "argv": list(request.argv),
        "timeout": request.timeout,
        "cap": request.output_cap,
        "cwd": workdir,
    }
    async with channel.ask(header) as reply:
        while True:
            head, payload = await reply.next(request.timeout + MARGIN)
            kind = head["t"]
            if kind == "out":
                yield ExecOutput(cast(Literal["stdout", "stderr"], head["s"]), payload)
            elif kind == "exit":
                yield ExecExit(exit_code=head["code"], timed_out=bool(head["timed_out"]))
                return
            else:
                raise SandboxRefused(str(head.get("message", head)))


async def kill_all(channel: ExecutorChannel) -> bool:
    """Kill every process of the sandbox but the executor; False if some survived."""
    return bool((await checked(channel, {"op": "kill"})).get("ok"))


async def ping(channel: ExecutorChannel, timeout: float = 5.0) -> None:
    await checked(channel, {"op": "ping"}, timeout=timeout)


async def clear(channel: ExecutorChannel, path: str) -> None:
    await checked(channel, {"op": "clear", "path": path})


async def write(channel: ExecutorChannel, path: str, data: bytes, mode: int) -> None:
    await checked(channel, {"op": "write", "path": path, "mode": mode}, data)


async def scan(channel: ExecutorChannel, path: str, limit: int | None = None) -> WorkspaceScan:
    """The manifest entries of the directory, how many files were hashed anew (not from the cache),
    and the entries left out; `unseen` is left for the driver to fill.

    Files larger than `limit` are listed unhashed, with an empty sha256.
    """
    head = await checked(channel, {"op": "scan", "path": path, "limit": limit}, timeout=_SCAN)
    return WorkspaceScan(
        entries=tuple(_entry(item) for item in head["entries"]),
        unseen=(),
        hashed=int(head["hashed"]),
        skipped=int(head.get("skipped", 0)),
        skipped_shown=tuple((str(p), str(why)) for p, why in head.get("shown", ())),
    )


async def read(channel: ExecutorChannel, path: str) -> AsyncGenerator[bytes, None]:
    """The content of one regular file, in chunks."""
    async with channel.ask({"op": "read", "path": path}) as reply:
        while True:
            head, payload = await reply.next(_QUICK)
            if head["t"] == "data":
                yield payload
            elif head["t"] == "done":
                return
            else:
                raise SandboxRefused(str(head.get("message", head)))


async def read_many(
    channel: ExecutorChannel, files: Sequence[tuple[str, int]]
) -> AsyncGenerator[tuple[int, bytes | None], None]:
    """The contents of small regular files (path, size listed), as (index, content or None), in order."""
    async with channel.ask({"op": "read_many", "files": [list(f) for f in files]}) as reply:
        while True:
            head, payload = await reply.next(_QUICK)
            if head["t"] == "file":
                yield int(head["i"]), None if "error" in head else payload
            elif head["t"] == "done":
                return
            else:
                raise SandboxRefused(str(head.get("message", head)))


async def checked(
    channel: ExecutorChannel, header: dict[str, Any], payload: bytes = b"", timeout: float = _QUICK
) -> dict[str, Any]:
    head = await channel.call(header, payload, timeout)
    if head["t"] == "error":
        raise SandboxRefused(str(head.get("message")))
    return head


def _entry(item: list[Any]) -> Entry:
    kind, path = item[0], str(item[1])
    if kind == "f":
        return FileEntry(path, int(item[2]), int(item[3]), str(item[4]))
    if kind == "d":
        return DirEntry(path, int(item[2]))
    return SymlinkEntry(path, str(item[2]))
