"""An in-memory SandboxDriver for testing the worker's bookkeeping without a container engine.

`scan` and `read` work on what `export` gives (a subclass supplies it), the way a driver without an
executor would: the whole archive, every time.
"""

from __future__ import annotations

import io
import itertools
import tarfile
import tempfile
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path

from services.hands.contract.manifest import FileEntry
from services.hands.sandbox import (
    CreateSandbox,
    ExecExit,
    ExecOutput,
    ExecRequest,
    Labelled,
    PutFile,
    WorkspaceScan,
)
from services.hands.workspace.archive import scan


class FakeDriver:
    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self.base_labels = dict(labels or {})
        self.labels: dict[str, dict[str, str]] = {}
        self.dead: set[str] = set()
        self.trusted: dict[str, set[str]] = {}
        self.reads: list[str] = []
        self._exported: dict[str, bytes] = {}
        self._ids = itertools.count(1)

    async def create(self, request: CreateSandbox) -> str:
        sandbox_id = f"sb-{next(self._ids)}"
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

    async def export(self, sandbox_id: str, path: str, dest: Path) -> None:
        raise NotImplementedError

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        raise NotImplementedError

    async def clear(self, sandbox_id: str, path: str) -> None:
        raise NotImplementedError

    async def scan(self, sandbox_id: str, path: str) -> WorkspaceScan:
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "workspace.tar"
            await self.export(sandbox_id, path, archive)
            self._exported[sandbox_id] = archive.read_bytes()
            entries = scan(archive).manifest.entries
        seen = self.trusted.get(sandbox_id, set())
        unseen = tuple(e for e in entries if isinstance(e, FileEntry) and e.sha256 not in seen)
        return WorkspaceScan(entries, unseen, hashed=len(unseen))

    async def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        self.reads.append(path)
        with tarfile.open(fileobj=io.BytesIO(self._exported[sandbox_id])) as tar:
            member = tar.extractfile(path.lstrip("/"))
            assert member is not None
            yield member.read()

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
