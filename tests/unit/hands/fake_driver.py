"""An in-memory SandboxDriver for testing the worker's bookkeeping without a container engine."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

from services.hands.sandbox import CreateSandbox, ExecExit, ExecOutput, ExecRequest, PutFile


class FakeDriver:
    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self.base_labels = dict(labels or {})
        self.labels: dict[str, dict[str, str]] = {}
        self.dead: set[str] = set()
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

    async def find(self, labels: Mapping[str, str]) -> list[str]:
        return [sid for sid, have in self.labels.items() if labels.items() <= have.items()]

    async def aclose(self) -> None:
        pass
