"""The artifact store boundary: a content-addressed (sha256) blob store.

Large tool outputs and workspace files live here; events only hold `BlobRef`s. Blobs that nothing
references are removed by the collector (gc.py) once they are older than its grace period; writing or
touching a blob makes it young again. Backends: filesystem.py (the default, and the local stack's) and
s3.py (an object store, so that hands workers on other machines share it), picked by the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.core.settings import Settings


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


@dataclass(frozen=True)
class Swept:
    """What one collection removed: blobs nothing referenced, and leftovers of interrupted writes."""

    blobs: int = 0
    bytes: int = 0
    leftovers: int = 0


class ArtifactStore(Protocol):
    async def put(self, data: bytes) -> BlobRef:
        """Store bytes; storing the same bytes twice costs nothing the second time (but makes them young)."""
        ...

    async def put_many(self, contents: Sequence[bytes]) -> list[BlobRef]:
        """`put` for many small contents at once (a snapshot's), made durable together."""
        ...

    async def get_many(self, sha256s: Sequence[str]) -> list[bytes]:
        """`get` for many small blobs at once, in order. Raises NotFound."""
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

    async def touch(self, sha256s: Iterable[str]) -> set[str]:
        """Make these blobs young, as a reference to them is about to be written; returns those missing.

        A writer that refers to a blob it did not put itself (a snapshot naming contents an earlier one
        stored) touches it first, so a collection running meanwhile keeps it.
        """
        ...

    async def sweep(self, live: Collection[str], older_than: float) -> Swept:
        """Remove every blob not in `live` last written or touched before `older_than` (epoch seconds)."""
        ...


def build_artifact_store(settings: Settings) -> ArtifactStore:
    """The store every loopd process uses: the bucket at artifacts_url if set, else artifacts_dir."""
    if settings.artifacts_url is not None:
        from services.core.artifacts.bucket import Bucket
        from services.core.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore(Bucket(settings))
    from services.core.artifacts.filesystem import FilesystemArtifactStore

    return FilesystemArtifactStore(settings.artifacts_path)
