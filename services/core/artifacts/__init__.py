"""The artifact store boundary: a content-addressed (sha256) blob store.

Large tool outputs and workspace files live here; events only hold `BlobRef`s.
Backends: filesystem.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


class ArtifactStore(Protocol):
    async def put(self, data: bytes) -> BlobRef:
        """Store bytes; storing the same bytes twice costs nothing the second time."""
        ...

    async def put_file(self, path: Path) -> BlobRef:
        """Store a file's content without loading it whole into memory."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def get(self, sha256: str) -> bytes:
        """Read a whole blob. Raises NotFound."""
        ...

    def stream(self, sha256: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Stream a blob back in chunks. Raises NotFound."""
        ...


def build_artifact_store(root: Path) -> ArtifactStore:
    from services.core.artifacts.filesystem import FilesystemArtifactStore

    return FilesystemArtifactStore(root)
