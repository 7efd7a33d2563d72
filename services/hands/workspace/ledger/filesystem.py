"""Filesystem CallLedger: one JSON file per finished call at ROOT/<run_id>/<call_id>.json.

A result is written to a temporary file, then linked into place; linking fails when the name exists,
so the first result recorded for a call is the one that stays, and a crash never leaves a partial
file under a valid name. Every worker that shares ROOT shares the ledger.

Entries are not flushed to disk before the call returns (a process crash keeps them; only a crash of
the whole host can lose one). The ledger only spares a finished call from running again: a lost
entry makes the retry run the call again from the snapshot it started from, so its effect on the
workspace still lands once. Snapshots, which that guarantee rests on, are flushed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from services.hands.contract.api import ExecuteResult
from services.hands.workspace.ledger import decode, encode, entry_name


class FilesystemLedger:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_of(self, run_id: str, call_id: str) -> Path:
        return self._root / entry_name(run_id, call_id)

    async def get(self, run_id: str, call_id: str) -> ExecuteResult | None:
        return await asyncio.to_thread(self._read, self.path_of(run_id, call_id))

    async def put(self, run_id: str, call_id: str, result: ExecuteResult) -> ExecuteResult:
        return await asyncio.to_thread(self._put, self.path_of(run_id, call_id), result)

    async def snapshots(self) -> set[str]:
        return await asyncio.to_thread(self._snapshots)

    def _snapshots(self) -> set[str]:
        found = set()
        for path in self._root.glob("*/*.json"):
            try:
                recorded = self._read(path)
            except ValueError:
                continue  # not a result this version can read: it names nothing it knows of
            if recorded is not None and recorded.snapshot_after:
                found.add(recorded.snapshot_after)
        return found

    def _read(self, path: Path) -> ExecuteResult | None:
        try:
            return decode(path.read_bytes())
        except FileNotFoundError:
            return None

    def _put(self, target: Path, result: ExecuteResult) -> ExecuteResult:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(encode(result))
            os.link(temp_name, target)
        except FileExistsError:
            recorded = self._read(target)
            if recorded is None:
                raise RuntimeError(f"{target} vanished while recording a result") from None
            return recorded
        finally:
            Path(temp_name).unlink(missing_ok=True)
        return result
