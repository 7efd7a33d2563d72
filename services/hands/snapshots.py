"""Content-addressed, incremental snapshots of a sandbox's /workspace in the artifact store.

A snapshot is a manifest blob (manifest.py) whose sha256 is the snapshot id; each file's content is a
blob of its own, written only when the store does not hold it yet, so an unchanged file costs one
hash per snapshot and is stored once. Taking a snapshot reads one archive of /workspace from the
driver; restoring builds the archive back from the store, then clears /workspace and unpacks it.
The empty workspace is EMPTY_SNAPSHOT and needs no blob at all.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

from services.core.artifacts import ArtifactStore
from services.core.errors import InfrastructureError, NotFound
from services.hands.api import SnapshotMissing
from services.hands.archive import (
    END_OF_ARCHIVE,
    ScannedArchive,
    Span,
    copy_span,
    header,
    padding,
    read_span,
    scan,
)
from services.hands.manifest import EMPTY_SNAPSHOT, FileEntry, Manifest, decode
from services.hands.sandbox import SandboxDriver
from services.hands.tools import WORKSPACE

# Contents up to this size move through memory; larger ones through a scratch file or a stream.
_INLINE = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


class Snapshots:
    def __init__(self, driver: SandboxDriver, artifacts: ArtifactStore, *, owner: str) -> None:
        """`owner` ("uid:gid") owns every restored entry: the sandbox user."""
        self._driver = driver
        self._artifacts = artifacts
        self._owner = owner

    async def take(self, sandbox_id: str) -> str:
        """Snapshot the sandbox's /workspace and return the snapshot id. Raises SandboxLost."""
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="loopd-snapshot-"))
        try:
            archive = scratch / "workspace.tar"
            await self._driver.export(sandbox_id, WORKSPACE, archive)
            scanned = await asyncio.to_thread(scan, archive)
            await self._store_new_contents(archive, scanned, scratch)
            snapshot_id = scanned.manifest.snapshot_id()
            if not await self._artifacts.exists(snapshot_id):
                await self._artifacts.put(scanned.manifest.encode())
            return snapshot_id
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def load(self, snapshot_id: str) -> Manifest:
        """The manifest of a snapshot. Raises SnapshotMissing."""
        if snapshot_id == EMPTY_SNAPSHOT:
            return Manifest(())
        try:
            data = await self._artifacts.get(snapshot_id)
        except NotFound:
            raise SnapshotMissing(f"snapshot {snapshot_id} is not in the artifact store") from None
        try:
            return decode(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotMissing(f"blob {snapshot_id} is not a workspace manifest: {exc}") from None

    async def restore(self, sandbox_id: str, snapshot_id: str, *, clear: bool = True) -> None:
        """Make the sandbox's /workspace equal the snapshot; `clear=False` trusts it to be empty.

        Every blob is read before anything in the sandbox changes, so a snapshot with a missing
        blob raises SnapshotMissing and leaves the workspace as it was.
        """
        manifest = await self.load(snapshot_id)
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="loopd-restore-"))
        try:
            archive = scratch / "workspace.tar"
            if manifest.entries:
                await self._write_archive(manifest, archive)
            if clear:
                await self._driver.clear(sandbox_id, WORKSPACE)
            if manifest.entries:
                await self._driver.import_archive(sandbox_id, WORKSPACE, archive)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _store_new_contents(self, archive: Path, scanned: ScannedArchive, scratch: Path) -> None:
        digests = list(scanned.sources)
        present = await asyncio.gather(*(self._artifacts.exists(sha256) for sha256 in digests))
        missing = [sha256 for sha256, there in zip(digests, present, strict=True) if not there]
        if not missing:
            return
        handle = await asyncio.to_thread(archive.open, "rb")
        try:
            for sha256 in missing:
                stored = await self._store_span(handle, scanned.sources[sha256], scratch)
                if stored != sha256:
                    raise InfrastructureError("the workspace archive changed while it was read")
        finally:
            await asyncio.to_thread(handle.close)

    async def _store_span(self, handle: IO[bytes], span: Span, scratch: Path) -> str:
        if span.size <= _INLINE:
            data = await asyncio.to_thread(read_span, handle, span)
            return (await self._artifacts.put(data)).sha256
        part = scratch / "content.part"
        await asyncio.to_thread(copy_span, handle, span, part)
        try:
            return (await self._artifacts.put_file(part)).sha256
        finally:
            await asyncio.to_thread(part.unlink, True)

    async def _write_archive(self, manifest: Manifest, dest: Path) -> None:
        """Write the manifest's tar: small members in batches, large contents streamed from the store."""
        out = await asyncio.to_thread(dest.open, "wb")
        mtime = time.time()
        batch = _Batch(out)
        try:
            for entry in manifest.entries:
                batch.add(header(entry, self._owner, mtime))
                if isinstance(entry, FileEntry) and entry.size <= _INLINE:
                    batch.add(await self._blob(entry))
                elif isinstance(entry, FileEntry):
                    await batch.flush()
                    await self._stream_blob(entry, out)
                if isinstance(entry, FileEntry):
                    batch.add(padding(entry.size))
                if batch.size > _CHUNK:
                    await batch.flush()
            batch.add(END_OF_ARCHIVE)
            await batch.flush()
        finally:
            await asyncio.to_thread(out.close)

    async def _blob(self, entry: FileEntry) -> bytes:
        try:
            data = await self._artifacts.get(entry.sha256)
        except NotFound:
            raise _missing(entry) from None
        if len(data) != entry.size:
            raise SnapshotMissing(f"the blob of {entry.path} has {len(data)} bytes, not {entry.size}")
        return data

    async def _stream_blob(self, entry: FileEntry, out: IO[bytes]) -> None:
        size = 0
        try:
            async for chunk in self._artifacts.stream(entry.sha256, _CHUNK):
                size += len(chunk)
                await asyncio.to_thread(out.write, chunk)
        except NotFound:
            raise _missing(entry) from None
        if size != entry.size:
            raise SnapshotMissing(f"the blob of {entry.path} has {size} bytes, not {entry.size}")


class _Batch:
    """Archive bytes gathered in memory, so that small members cost no thread hop each."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self.size += len(data)

    async def flush(self) -> None:
        parts, self._parts, self.size = self._parts, [], 0
        if parts:
            await asyncio.to_thread(self._out.writelines, parts)


def _missing(entry: FileEntry) -> SnapshotMissing:
    return SnapshotMissing(f"the content of {entry.path} (blob {entry.sha256}) is not in the artifact store")
