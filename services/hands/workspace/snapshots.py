"""Content-addressed, incremental snapshots of a sandbox's /workspace in the artifact store.

A snapshot is a manifest blob (contract/manifest.py) whose sha256 is the snapshot id; each file's content
is a blob of its own, written only when the store does not hold it yet. Taking a snapshot asks the driver
to scan /workspace (the sandbox hashes only files whose stat changed) and copies in only the contents the
host has not yet seen in that sandbox, checking each one's sha256, so its cost follows what changed.
Restoring builds an archive from the store, then clears /workspace and unpacks it. The empty workspace is
EMPTY_SNAPSHOT and needs no blob at all.

A workspace whose files add up to more than the run's storage budget, or that holds a file above the
worker's file limit, is refused from its listing alone (SnapshotRefused), before anything is read:
a sparse file counts its full size, as its restore would write it whole. Contents a snapshot names
without copying them (seen before) are touched in the store, so its collector keeps them. An entry
the sandbox cannot read (a path longer than the kernel takes, a file that vanished while the snapshot
was taken) is left out, and the snapshot says which.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from services.core.artifacts import ArtifactStore, BlobRef
from services.core.errors import InfrastructureError, LoopdError, NotFound
from services.core.metrics import SNAPSHOT_BYTES
from services.core.text import escape_name
from services.hands.contract.api import SnapshotMissing
from services.hands.contract.manifest import EMPTY_SNAPSHOT, Entry, FileEntry, Manifest, decode
from services.hands.contract.tools import WORKSPACE
from services.hands.sandbox import SandboxDriver, SandboxRefused
from services.hands.workspace.archive import END_OF_ARCHIVE, header, padding

# Contents up to this size move through memory; larger ones through a scratch file or a stream.
_INLINE = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
# Scans to try when a file changes between being listed and being read (a background process writing).
_ATTEMPTS = 3
# Entries left out that a snapshot names; the rest are counted.
_SHOWN = 20
# Files up to this size are copied in batches: one request to the sandbox and one store write for
# up to _BATCH_FILES of them or _BATCH_BYTES, whichever comes first.
_BATCH_FILE = 1024 * 1024
_BATCH_FILES = 1000
_BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """A snapshot taken, and the entries it left out (how many, and the first few as (path, why))."""

    snapshot_id: str
    skipped: int = 0
    skipped_shown: tuple[tuple[str, str], ...] = ()


@dataclass
class _Stored:
    """What storing the unseen files found on a settling attempt: files changed since the scan, kept
    as read, and files gone (their paths)."""

    as_read: dict[str, FileEntry] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)


class SnapshotRefused(LoopdError):
    """The workspace is too large to snapshot; the message says why, for the model to act on."""

    code = "snapshot_refused"
    retryable = False


class Snapshots:
    def __init__(
        self,
        driver: SandboxDriver,
        artifacts: ArtifactStore,
        *,
        owner: str,
        file_limit: int | None = None,
        touch_every: float = 0.0,
    ) -> None:
        """`owner` ("uid:gid") owns every restored entry: the sandbox user. `file_limit`: the largest
        file a snapshot takes, in bytes. `touch_every`: how long a content touched in the store stays
        young enough not to be touched again (well under the collector's grace period)."""
        self._driver = driver
        self._artifacts = artifacts
        self._owner = owner
        self._file_limit = file_limit
        self._touched = _Touched(touch_every)

    async def take(self, sandbox_id: str, *, budget: int | None = None) -> str:
        """Snapshot the sandbox's /workspace and return the snapshot id.

        `budget` is the most bytes its files may add up to. Raises SnapshotRefused, SandboxLost.
        """
        return (await self.capture(sandbox_id, budget=budget)).snapshot_id

    async def capture(self, sandbox_id: str, *, budget: int | None = None) -> Snapshot:
        """`take`, with the entries left out because they could not be read.

        A file that changes or vanishes between the listing and the read makes the scan start again;
        on the last attempt a changed file is kept as it was read, and a vanished one is left out.
        """
        limits = [limit for limit in (self._file_limit, budget) if limit is not None]
        for attempt in range(1, _ATTEMPTS + 1):
            scanned = await self._driver.scan(sandbox_id, WORKSPACE, limit=min(limits, default=None))
            _check_size(scanned.entries, budget, self._file_limit)
            manifest = _manifest(scanned.entries)
            unstored = await self._unstored(manifest, scanned.unseen)
            stored = await self._store_unseen(sandbox_id, unstored, settle=attempt == _ATTEMPTS)
            if stored is None:
                continue
            if stored.as_read or stored.gone:
                manifest = _manifest(
                    [stored.as_read.get(e.path, e) for e in scanned.entries if e.path not in stored.gone]
                )
            snapshot_id = manifest.snapshot_id()
            if await self._artifacts.touch([snapshot_id]):
                encoded = manifest.encode()
                await self._artifacts.put(encoded)
                SNAPSHOT_BYTES.inc(len(encoded))
            gone = tuple((path, "it vanished while the snapshot was taken") for path in sorted(stored.gone))
            shown = (scanned.skipped_shown + gone)[:_SHOWN]
            return Snapshot(snapshot_id, scanned.skipped + len(gone), shown)
        raise AssertionError("the last attempt settles")

    async def _unstored(self, manifest: Manifest, unseen: tuple[FileEntry, ...]) -> tuple[FileEntry, ...]:
        """The files to copy: those not seen yet, and seen ones whose blob the store no longer has."""
        copying = {entry.sha256 for entry in unseen}
        seen = {entry.sha256: entry for entry in manifest.files() if entry.sha256 not in copying}
        stale = self._touched.stale(seen)
        missing = await self._artifacts.touch(stale) if stale else set()
        self._touched.mark(set(stale) - missing)
        return unseen + tuple(seen[sha256] for sha256 in missing)

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
                # Every content came from the store, so the sandbox holds nothing unseen.
                self._driver.trust(sandbox_id, (entry.sha256 for entry in manifest.files()))
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _store_unseen(
        self, sandbox_id: str, files: tuple[FileEntry, ...], *, settle: bool
    ) -> _Stored | None:
        """Read, check and store each content the host has not seen in this sandbox.

        None if one changed or vanished since the scan, unless `settle`: then every file is read on
        its own, a changed one is kept as read and a vanished one is left out.
        """
        stored = _Stored()
        verified: dict[str, BlobRef] = {}
        todo = files if settle else tuple({entry.sha256: entry for entry in files}.values())
        one_by_one = [entry for entry in todo if entry.size > _BATCH_FILE]
        for batch in _batches([entry for entry in todo if entry.size <= _BATCH_FILE]):
            missed = await self._store_batch(sandbox_id, batch, verified)
            if missed and not settle:
                return None
            one_by_one += missed
        for entry in one_by_one:
            if entry.sha256 in verified:
                continue
            try:
                ref = await self._store_content(sandbox_id, entry)
            except SandboxRefused:
                if not settle:
                    return None
                stored.gone.add(entry.path)
                continue
            if ref.sha256 == entry.sha256:
                verified[ref.sha256] = ref
            elif settle:
                stored.as_read[entry.path] = replace(entry, size=ref.size, sha256=ref.sha256)
            else:
                return None
        contents = [*verified, *(entry.sha256 for entry in stored.as_read.values())]
        self._driver.trust(sandbox_id, contents)
        self._touched.mark(contents)
        return stored

    async def _store_batch(
        self, sandbox_id: str, batch: list[FileEntry], verified: dict[str, BlobRef]
    ) -> list[FileEntry]:
        """Copy a batch of small files in one request and one store write; adds the contents that
        check out to `verified` and returns the files that did not (vanished or changed)."""
        contents: list[bytes | None] = [None] * len(batch)
        files = [(f"{WORKSPACE}/{entry.path}", entry.size) for entry in batch]
        async with aclosing(self._driver.read_many(sandbox_id, files)) as items:
            async for index, content in items:
                contents[index] = content
        read = [
            (entry, content) for entry, content in zip(batch, contents, strict=True) if content is not None
        ]
        refs = await self._artifacts.put_many([content for _, content in read])
        SNAPSHOT_BYTES.inc(sum(ref.size for ref in refs))
        missed = [entry for entry, content in zip(batch, contents, strict=True) if content is None]
        for (entry, _), ref in zip(read, refs, strict=True):
            if ref.sha256 == entry.sha256:
                verified[ref.sha256] = ref
            else:
                missed.append(entry)
        return missed

    async def _store_content(self, sandbox_id: str, entry: FileEntry) -> BlobRef:
        """Copy one file's content from the sandbox into the store; returns the blob of what was read."""
        chunks = self._driver.read(sandbox_id, f"{WORKSPACE}/{entry.path}")
        if entry.size <= _INLINE:
            async with aclosing(chunks):
                data = b"".join([chunk async for chunk in chunks])
            SNAPSHOT_BYTES.inc(len(data))
            return await self._artifacts.put(data)
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="loopd-snapshot-"))
        try:
            part = scratch / "content.part"
            out = await asyncio.to_thread(part.open, "wb")
            try:
                async with aclosing(chunks):
                    async for chunk in chunks:
                        await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
            ref = await self._artifacts.put_file(part)
            SNAPSHOT_BYTES.inc(ref.size)
            return ref
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _write_archive(self, manifest: Manifest, dest: Path) -> None:
        """Write the manifest's tar: small members in batches, large contents streamed from the store."""
        out = await asyncio.to_thread(dest.open, "wb")
        mtime = time.time()
        batch = _Batch(out)
        try:
            small: dict[str, bytes] = {}
            for index, entry in enumerate(manifest.entries):
                if isinstance(entry, FileEntry) and entry.size <= _BATCH_FILE and entry.sha256 not in small:
                    small = await self._blobs(manifest.entries[index:])
                batch.add(header(entry, self._owner, mtime))
                if isinstance(entry, FileEntry) and entry.sha256 in small:
                    batch.add(small[entry.sha256])
                elif isinstance(entry, FileEntry) and entry.size <= _INLINE:
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

    async def _blobs(self, entries: Iterable[Entry]) -> dict[str, bytes]:
        """The contents of the next batch of small files among `entries`, read from the store at once."""
        files = (entry for entry in entries if isinstance(entry, FileEntry) and entry.size <= _BATCH_FILE)
        batch = next(_batches(list(itertools.islice(files, _BATCH_FILES))), [])
        try:
            contents = await self._artifacts.get_many([entry.sha256 for entry in batch])
        except NotFound:
            # Read one by one to name the file whose content is missing.
            return {entry.sha256: await self._blob(entry) for entry in batch}
        for entry, data in zip(batch, contents, strict=True):
            if len(data) != entry.size:
                raise SnapshotMissing(f"the blob of {entry.path} has {len(data)} bytes, not {entry.size}")
        return {entry.sha256: data for entry, data in zip(batch, contents, strict=True)}

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


class _Touched:
    """When this worker last stored or touched each content, so a snapshot of many unchanged files
    does not touch them all every time."""

    _MOST = 1_000_000

    def __init__(self, every: float) -> None:
        self._every = every
        self._at: dict[str, float] = {}

    def stale(self, sha256s: Iterable[str]) -> list[str]:
        cutoff = time.monotonic() - self._every
        return [sha256 for sha256 in sha256s if self._at.get(sha256, -math.inf) <= cutoff]

    def mark(self, sha256s: Iterable[str]) -> None:
        if len(self._at) > self._MOST:
            self._at.clear()  # forgetting only costs touches
        now = time.monotonic()
        self._at.update(dict.fromkeys(sha256s, now))


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


def _check_size(entries: tuple[Entry, ...], budget: int | None, file_limit: int | None) -> None:
    files = [entry for entry in entries if isinstance(entry, FileEntry)]
    largest = max(files, key=lambda entry: entry.size, default=None)
    if largest is not None and file_limit is not None and largest.size > file_limit:
        raise SnapshotRefused(
            f"/workspace/{escape_name(largest.path)} is {_size(largest.size)} (a sparse file counts its "
            f"full size), above the {_size(file_limit)} a snapshot takes of one file"
        )
    total = sum(entry.size for entry in files)
    if budget is not None and total > budget:
        raise SnapshotRefused(
            f"the files in /workspace add up to {_size(total)} (sparse files count their full size), "
            f"above the run's storage budget of {_size(budget)}"
        )
    if any(not entry.sha256 for entry in files):
        raise InfrastructureError("the sandbox listed a file without its sha256")


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _missing(entry: FileEntry) -> SnapshotMissing:
    return SnapshotMissing(f"the content of {entry.path} (blob {entry.sha256}) is not in the artifact store")


def _manifest(entries: Iterable[Entry]) -> Manifest:
    try:
        return Manifest.of(list(entries))
    except ValueError as exc:
        raise InfrastructureError(f"the sandbox reported a bad workspace listing: {exc}") from None


def _batches(files: list[FileEntry]) -> Iterator[list[FileEntry]]:
    batch: list[FileEntry] = []
    size = 0
    for entry in files:
        if batch and (len(batch) == _BATCH_FILES or size + entry.size > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch
