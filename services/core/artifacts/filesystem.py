"""Filesystem artifact store: blobs live at ROOT/ab/abcdef... named by their sha256.

Writes go to a temporary file and are renamed into place, so a crash never leaves a partial blob
under a valid name, and concurrent writers of the same content are harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from services.core.artifacts import BlobRef
from services.core.errors import NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FilesystemArtifactStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_of(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise NotFound(f"no blob {sha256!r}", code="artifact_not_found")
        return self._root / sha256[:2] / sha256

    async def put(self, data: bytes) -> BlobRef:
        return await asyncio.to_thread(self._put_bytes, data)

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

    def _put_bytes(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            self._write_atomically(target, [data])
        return BlobRef(sha256=digest, size=len(data))

    def _put_file(self, source: Path) -> BlobRef:
        hasher = hashlib.sha256()
        size = 0
        with source.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                hasher.update(chunk)
                size += len(chunk)
        digest = hasher.hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            with source.open("rb") as handle:
                self._write_atomically(target, iter(lambda: handle.read(1024 * 1024), b""))
        return BlobRef(sha256=digest, size=size)

    def _write_atomically(self, target: Path, chunks: Iterable[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
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
