"""Filesystem artifact store: blobs live at ROOT/ab/abcdef... named by their sha256.

Writes go to a temporary file and are renamed into place, so a crash never leaves a partial blob
under a valid name, and concurrent writers of the same content are harmless. A blob's mtime is when it
was last written or touched: the sweep removes only blobs older than its cutoff, and it renames one
aside before its last look at that time, so a touch that comes in between either lands (and the blob
is put back) or finds the blob gone (and the toucher writes it again). `put_many` writes its blobs
first and makes them durable with one flush of the store's filesystem, before any gets its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from pathlib import Path

from services.core.artifacts import BlobRef, Swept
from services.core.errors import NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FANOUT = re.compile(r"^[0-9a-f]{2}$")
_INCOMING = ".incoming-"
_DOOMED = ".doomed-"


class FilesystemArtifactStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_of(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise NotFound(f"no blob {sha256!r}", code="artifact_not_found")
        return self._root / sha256[:2] / sha256

    async def put(self, data: bytes) -> BlobRef:
        return await asyncio.to_thread(self._put_bytes, data)

    async def put_many(self, contents: Sequence[bytes]) -> list[BlobRef]:
        return await asyncio.to_thread(self._put_all, contents)

    async def get_many(self, sha256s: Sequence[str]) -> list[bytes]:
        return await asyncio.to_thread(self._get_all, sha256s)

    async def put_file(self, path: Path) -> BlobRef:
        return await asyncio.to_thread(self._put_file, path)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path_of(sha256).exists)

    async def get(self, sha256: str) -> bytes:
        path = self.path_of(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"no blob {sha256}", code="artifact_not_found") from None

    async def stream(self, sha256: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        path = self.path_of(sha256)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {sha256}", code="artifact_not_found") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def touch(self, sha256s: Iterable[str]) -> set[str]:
        return await asyncio.to_thread(self._touch_all, list(sha256s))

    async def sweep(self, live: Collection[str], older_than: float) -> Swept:
        return await asyncio.to_thread(self._sweep, live, older_than)

    def _touch_all(self, sha256s: list[str]) -> set[str]:
        missing = set()
        for sha256 in sha256s:
            if not _SHA256.match(sha256) or not _touch(self.path_of(sha256)):
                missing.add(sha256)
        return missing

    def _put_bytes(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not _touch(target):
            self._write_atomically(target, [data])
        return BlobRef(sha256=digest, size=len(data))

    def _put_all(self, contents: Sequence[bytes]) -> list[BlobRef]:
        # Plain os calls: a snapshot's batch writes a thousand small files, and pathlib and mkstemp
        # cost as much as the writes.
        refs, written, folders = [], {}, set()
        try:
            for data in contents:
                digest = hashlib.sha256(data).hexdigest()
                refs.append(BlobRef(sha256=digest, size=len(data)))
                folder = os.path.join(self._root, digest[:2])
                target = os.path.join(folder, digest)
                if target in written or _touch(target):
                    continue
                if folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                temp_name = os.path.join(folder, _INCOMING + secrets.token_hex(8))
                fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                written[target] = temp_name
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            _flush(self._root, written.values())
            for target, temp_name in written.items():
                os.replace(temp_name, target)
        except BaseException:
            for temp_name in written.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp_name)
            raise
        return refs

    def _get_all(self, sha256s: Sequence[str]) -> list[bytes]:
        contents = []
        for sha256 in sha256s:
            try:
                contents.append(self.path_of(sha256).read_bytes())
            except FileNotFoundError:
                raise NotFound(f"no blob {sha256}", code="artifact_not_found") from None
        return contents

    def _put_file(self, source: Path) -> BlobRef:
        hasher = hashlib.sha256()
        size = 0
        with source.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                hasher.update(chunk)
                size += len(chunk)
        digest = hasher.hexdigest()
        target = self.path_of(digest)
        if not _touch(target):
            with source.open("rb") as handle:
                self._write_atomically(target, iter(lambda: handle.read(1024 * 1024), b""))
        return BlobRef(sha256=digest, size=size)

    def _write_atomically(self, target: Path, chunks: Iterable[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=_INCOMING)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def _sweep(self, live: Collection[str], older_than: float) -> Swept:
        blobs = size = leftovers = 0
        fanouts = [
            d for d in _listing(self._root) if _FANOUT.match(d.name) and d.is_dir(follow_symlinks=False)
        ]
        for fanout in fanouts:
            for entry in _listing(Path(fanout.path)):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.st_mtime >= older_than:
                    continue
                if entry.name.startswith((_INCOMING, _DOOMED)):
                    # Left by a write or a sweep that was interrupted.
                    Path(entry.path).unlink(missing_ok=True)
                    leftovers += 1
                elif (
                    _SHA256.match(entry.name)
                    and entry.name not in live
                    and _condemn(Path(entry.path), older_than)
                ):
                    blobs += 1
                    size += stat.st_size
        return Swept(blobs=blobs, bytes=size, leftovers=leftovers)


def _touch(path: str | Path) -> bool:
    """Make the blob at `path` young; False if there is none."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _condemn(path: Path, older_than: float) -> bool:
    """Remove an old blob unless it is touched meanwhile; True if it was removed."""
    doomed = path.with_name(_DOOMED + path.name)
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return False
    if os.stat(doomed).st_mtime < older_than:
        doomed.unlink()
        return True
    # Touched between the listing and the rename: put it back, unless a writer already has.
    with contextlib.suppress(FileExistsError):
        os.link(doomed, path)
    doomed.unlink()
    return False


def _listing(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _flush(root: Path, paths: Iterable[str]) -> None:
    """Make the files at `paths` durable: one flush of the whole filesystem where the system has one
    (Linux's syncfs), else one fsync per file."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None
