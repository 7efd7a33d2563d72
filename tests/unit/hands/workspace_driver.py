"""A fake SandboxDriver whose sandboxes keep a /workspace in memory, so the whole call path (tools,
snapshots, restores) runs without a container engine.

Nothing runs bash. A small interpreter understands `echo WORDS [> FILE]`, `cat FILE`, `exit N`,
`sleep SECONDS` and `kill 1` (which kills the sandbox during the call, as killing a container's init
would); the file tools' helper program is answered from the in-memory tree. Tests can also make a
command lose its sandbox mid-call a number of times (`lose_during`), or leave its sandbox dead once the
call is over (`dies_after`), as a sandbox that dies while idle is found by the next liveness check.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import shlex
import tarfile
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.core.errors import SandboxLost
from services.hands.contract.tools import WORKSPACE
from services.hands.sandbox import ExecExit, ExecOutput, ExecRequest, PutFile, WorkspaceScan
from tests.unit.hands.fake_driver import FakeDriver

Events = AsyncGenerator[ExecOutput | ExecExit, None]


@dataclass
class Workspace:
    """One sandbox's /workspace: files by path relative to it, and the directories made explicitly."""

    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def all_dirs(self) -> set[str]:
        found = set(self.dirs)
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent:
                found.add(parent)
                parent = posixpath.dirname(parent)
        return found


class _Failed(Exception):
    def __init__(self, message: str, exit_code: int = 3) -> None:
        self.message, self.exit_code = message, exit_code


class WorkspaceDriver(FakeDriver):
    def __init__(self, *, prefix: str = "sb") -> None:
        super().__init__(prefix=prefix)
        self.workspaces: dict[str, Workspace] = {}
        self.commands: list[str] = []
        self._losses: dict[str, int] = {}
        self._fatal: set[str] = set()
        self._dying: set[str] = set()

    def lose_during(self, command: str, times: int = 1) -> None:
        """The next `times` runs of `command` lose their sandbox before they finish."""
        self._losses[command] = times

    def dies_after(self, command: str) -> None:
        """A sandbox that ran `command` is dead by the time it is next checked for a call."""
        self._fatal.add(command)

    async def alive(self, sandbox_id: str) -> bool:
        if sandbox_id in self._dying:
            self._dying.discard(sandbox_id)
            self.dead.add(sandbox_id)
        return await super().alive(sandbox_id)

    async def exec(self, sandbox_id: str, request: ExecRequest) -> Events:
        if not await super().alive(sandbox_id):
            yield ExecExit(exit_code=None, lost=True)
            return
        workspace = self.workspaces.setdefault(sandbox_id, Workspace())
        if request.argv[:2] == ("python3", "-c"):
            async for event in _file_helper(workspace, request.argv[3:]):
                yield event
            return
        command = request.argv[2]
        self.commands.append(command)
        if self._losses.get(command, 0) > 0:
            self._losses[command] -= 1
            self.dead.add(sandbox_id)
            yield ExecExit(exit_code=None, lost=True)
            return
        if command in self._fatal:
            self._dying.add(sandbox_id)
        async for event in self._bash(sandbox_id, workspace, command, request.timeout):
            yield event

    async def _bash(self, sandbox_id: str, workspace: Workspace, command: str, timeout: float) -> Events:
        words = shlex.split(command)
        name, args = (words[0], words[1:]) if words else ("", [])
        if name == "echo":
            target = args[args.index(">") + 1] if ">" in args[:-1] else None
            text = " ".join(args[: args.index(">")] if target else args)
            if target:
                workspace.files[_relative(target)] = (text + "\n").encode()
            else:
                yield ExecOutput("stdout", (text + "\n").encode())
            yield ExecExit(exit_code=0)
        elif name == "cat" and args:
            content = workspace.files.get(_relative(args[0]))
            if content is None:
                yield ExecOutput("stderr", f"cat: {args[0]}: No such file or directory\n".encode())
            else:
                yield ExecOutput("stdout", content)
            yield ExecExit(exit_code=0 if content is not None else 1)
        elif name == "exit":
            yield ExecExit(exit_code=int(args[0]) if args else 0)
        elif name == "sleep":
            seconds = float(args[0])
            await asyncio.sleep(min(seconds, timeout))
            yield ExecExit(exit_code=None, timed_out=True) if seconds > timeout else ExecExit(exit_code=0)
        elif words == ["kill", "1"]:
            self.dead.add(sandbox_id)
            yield ExecExit(exit_code=None, lost=True)
        else:
            yield ExecOutput("stderr", f"bash: {name}: command not found\n".encode())
            yield ExecExit(exit_code=127)

    async def put_file(self, sandbox_id: str, request: PutFile) -> None:
        self.workspaces.setdefault(sandbox_id, Workspace()).files[_relative(request.path)] = request.data

    async def tar_of(self, sandbox_id: str) -> bytes:
        if not await super().alive(sandbox_id):
            raise SandboxLost(f"sandbox {sandbox_id} is gone")
        return _archive(self.workspaces.setdefault(sandbox_id, Workspace()))

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        if not await super().alive(sandbox_id):
            raise SandboxLost(f"sandbox {sandbox_id} is gone")
        return await super().scan(sandbox_id, path, limit=limit)

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        workspace = self.workspaces.setdefault(sandbox_id, Workspace())
        # Restores unpack members named relative to the directory, as snapshots.py writes them.
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isdir():
                    workspace.dirs.add(member.name.rstrip("/"))
                elif member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    workspace.files[member.name] = handle.read()

    async def clear(self, sandbox_id: str, path: str) -> None:
        self.workspaces[sandbox_id] = Workspace()

    async def destroy(self, sandbox_id: str) -> None:
        await super().destroy(sandbox_id)
        self.workspaces.pop(sandbox_id, None)


def _relative(path: str) -> str:
    return posixpath.relpath(posixpath.normpath(posixpath.join(WORKSPACE, path)), WORKSPACE)


def _archive(workspace: Workspace) -> bytes:
    """The workspace as Docker's archive API gives it: a tar rooted at "workspace/"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ["", *sorted(workspace.all_dirs())]:
            info = tarfile.TarInfo(posixpath.join("workspace", name).rstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, content in sorted(workspace.files.items()):
            info = tarfile.TarInfo(f"workspace/{name}")
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def _file_helper(workspace: Workspace, argv: tuple[str, ...]) -> Events:
    """Answer files.PROGRAM's operations the way it answers them inside a sandbox."""
    op, args = argv[0], argv[1:]
    try:
        output = _FILE_OPS[op](workspace, *args)
    except _Failed as failed:
        yield ExecOutput("stderr", failed.message.encode())
        yield ExecExit(exit_code=failed.exit_code)
        return
    yield ExecOutput("stdout", output)
    yield ExecExit(exit_code=0)


def _read(workspace: Workspace, path: str, limit: str) -> bytes:
    relative = _relative(path)
    if relative in workspace.all_dirs() or relative == ".":
        raise _Failed(f"{path} is a directory")
    if relative not in workspace.files:
        raise _Failed(f"no such file: {path}")
    return workspace.files[relative][: int(limit) + 1]


def _prepare(workspace: Workspace, path: str) -> bytes:
    relative = _relative(path)
    if relative in workspace.all_dirs() or relative == ".":
        raise _Failed(f"{path} is a directory")
    if posixpath.dirname(relative):
        workspace.dirs.add(posixpath.dirname(relative))
    return f"644 {posixpath.join(WORKSPACE, relative)}".encode()


def _edit(workspace: Workspace, path: str, old: str, new: str) -> bytes:
    relative = _relative(path)
    if relative not in workspace.files:
        raise _Failed(f"no such file: {path}")
    text = workspace.files[relative].decode()
    count = text.count(old)
    if count == 0:
        raise _Failed(f"old_string was not found in {path}")
    if count > 1:
        raise _Failed(f"old_string occurs {count} times in {path}; include more context to make it unique")
    workspace.files[relative] = text.replace(old, new, 1).encode()
    return f"edited {relative}: replaced 1 occurrence".encode()


def _list(workspace: Workspace, path: str) -> bytes:
    relative = _relative(path)
    prefix = "" if relative == "." else relative + "/"
    entries = sorted(
        [d + "/" for d in workspace.all_dirs() if d.startswith(prefix)]
        + [f for f in workspace.files if f.startswith(prefix)]
    )
    return ("\n".join(entries) if entries else "(empty directory)").encode() + b"\n"


# Each operation takes the workspace and its own string arguments, as the helper's argv gives them.
_FILE_OPS: dict[str, Callable[..., bytes]] = {
    "read": _read,
    "prepare": _prepare,
    "edit": _edit,
    "list": _list,
}
