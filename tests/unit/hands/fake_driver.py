"""An in-memory SandboxDriver for testing the worker's bookkeeping without a container engine.

`scan` and `read` work on the tar of the workspace that `tar_of` gives (a subclass supplies it), shaped
as Docker's archive API would give it (under a "workspace/" root): the whole archive, every time.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import tarfile
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from pathlib import Path

from services.hands.contract.manifest import DirEntry, Entry, FileEntry, Manifest, SymlinkEntry
from services.hands.sandbox import (
    CreateSandbox,
    ExecExit,
    ExecOutput,
    ExecRequest,
    Labelled,
    PutFile,
    SandboxRefused,
    WorkspaceScan,
)


class FakeDriver:
    def __init__(self, labels: Mapping[str, str] | None = None, *, prefix: str = "sb") -> None:
        """Sandbox ids are `prefix`-1, -2...: give each driver of a test its own, as engines do."""
        self.base_labels = dict(labels or {})
        self.labels: dict[str, dict[str, str]] = {}
        self.dead: set[str] = set()
        self.trusted: dict[str, set[str]] = {}
        self.reads: list[str] = []
        self._tars: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self._prefix = prefix

    async def create(self, request: CreateSandbox) -> str:
        sandbox_id = f"{self._prefix}-{next(self._ids)}"
        self.labels[sandbox_id] = {**self.base_labels, **request.labels}
        return sandbox_id

    async def destroy(self, sandbox_id: str) -> None:
        self.labels.pop(sandbox_id, None)

    async def alive(self, sandbox_id: str) -> bool:
        return sandbox_id in self.labels and sandbox_id not in self.dead

    async def exec(
        self, sandbox_id: str, request: ExecRequest
    ) -> AsyncGenerator[ExecOutput | ExecExit, None]:
        yield ExecOutput("stdout", " ".join(request.argv).encode())
        yield ExecExit(exit_code=0)

    async def put_file(self, sandbox_id: str, request: PutFile) -> None:
        raise NotImplementedError

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        raise NotImplementedError

    async def clear(self, sandbox_id: str, path: str) -> None:
        raise NotImplementedError

    async def tar_of(self, sandbox_id: str) -> bytes:
        """The tar of the sandbox's /workspace."""
        raise NotImplementedError

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        self._tars[sandbox_id] = archive = await self.tar_of(sandbox_id)
        entries = tuple(_unhashed_above(limit, Manifest.of(_entries(archive)).entries))
        seen = self.trusted.get(sandbox_id, set())
        unseen = tuple(e for e in entries if isinstance(e, FileEntry) and e.sha256 and e.sha256 not in seen)
        return WorkspaceScan(entries, unseen, hashed=len(unseen))

    async def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        self.reads.append(path)
        with tarfile.open(fileobj=io.BytesIO(self._tars[sandbox_id])) as tar:
            member = tar.extractfile(path.lstrip("/"))
            assert member is not None
            yield member.read()

    async def read_many(
        self, sandbox_id: str, files: Sequence[tuple[str, int]]
    ) -> AsyncGenerator[tuple[int, bytes | None], None]:
        for index, (path, size) in enumerate(files):
            try:
                content = b"".join([chunk async for chunk in self.read(sandbox_id, path)])
            except SandboxRefused:
                yield index, None
                continue
            yield index, content[: size + 1]

    def trust(self, sandbox_id: str, sha256s: Iterable[str]) -> None:
        self.trusted.setdefault(sandbox_id, set()).update(sha256s)

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        return [sid for sid, have in self.labels.items() if labels.items() <= have.items()]

    async def labelled(self, key: str, among: Mapping[str, str]) -> list[Labelled]:
        return [
            Labelled(sid, have[key], 0.0)
            for sid, have in self.labels.items()
            if key in have and among.items() <= have.items()
        ]

    async def aclose(self) -> None:
        pass


def _entries(archive: bytes) -> list[Entry]:
    """The manifest entries of a workspace tar; a hard link is a file with its target's content."""
    entries: list[Entry] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            _, _, relative = member.name.partition("/")
            if not relative:
                continue
            if member.isdir():
                entries.append(DirEntry(relative, member.mode & 0o7777))
            elif member.issym():
                entries.append(SymlinkEntry(relative, member.linkname))
            elif member.isfile() or member.islnk():
                source = tar.extractfile(member)
                assert source is not None
                data = source.read()
                entries.append(
                    FileEntry(relative, member.mode & 0o7777, len(data), hashlib.sha256(data).hexdigest())
                )
    return entries


def _unhashed_above(limit: int | None, entries: Iterable[Entry]) -> Iterable[Entry]:
    """As the executor lists them: files above the limit without their sha256."""
    for entry in entries:
        if isinstance(entry, FileEntry) and limit is not None and entry.size > limit:
            yield FileEntry(entry.path, entry.mode, entry.size, "")
        else:
            yield entry
