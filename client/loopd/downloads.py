"""Safe artifact downloads: where a server-supplied path may land, and checking what arrived.

Artifact paths come from the server and, through it, from whatever ran in the sandbox, so they are
treated as untrusted: nothing is written outside the chosen directory, and nothing is kept unless
its size and sha256 match the listing.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from types import TracebackType
from urllib.parse import quote

from loopd.errors import ChecksumMismatchError, UnsafePathError

# A drive letter ("C:x") is relative on POSIX but absolute on Windows.
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_join(root: str | Path, relative: str) -> Path:
    """Return `root/relative`, refusing any path that is absolute or would escape `root`."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePathError(f"refusing artifact path {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or _DRIVE.match(relative):
        raise UnsafePathError(f"refusing artifact path {relative!r}: it would escape the download directory")
    parts = [part for part in pure.parts if part != "."]
    if not parts:
        raise UnsafePathError(f"refusing artifact path {relative!r}: it names no file")
    base = Path(root).resolve()
    target = base.joinpath(*parts)
    # A symlink already inside the directory could still point elsewhere.
    if not target.resolve().is_relative_to(base):
        raise UnsafePathError(
            f"refusing artifact path {relative!r}: it resolves outside the download directory"
        )
    return target


def quote_artifact_path(path: str) -> str:
    """Percent-encode each segment of an artifact path for use in a URL."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


class VerifiedFile:
    """Writes a download beside its destination and moves it into place only if it checks out.

    Use as a context manager: `write` chunks, and on a clean exit the file is verified and renamed;
    on an exception or a mismatch the partial file is removed.
    """

    def __init__(self, destination: Path, sha256: str | None, size: int | None = None) -> None:
        self.destination = destination
        self._expected_sha256 = sha256.lower() if sha256 else None
        self._expected_size = size
        self._partial = destination.with_name(f".{destination.name}.part")
        self._digest = hashlib.sha256()
        self._written = 0

    def __enter__(self) -> VerifiedFile:
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._partial.open("wb")
        return self

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._digest.update(chunk)
        self._written += len(chunk)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
        if exc_type is not None:
            self._partial.unlink(missing_ok=True)
            return
        try:
            self._verify()
        except ChecksumMismatchError:
            self._partial.unlink(missing_ok=True)
            raise
        os.replace(self._partial, self.destination)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def _verify(self) -> None:
        if self._expected_size is not None and self._written != self._expected_size:
            raise ChecksumMismatchError(
                f"{self.destination.name}: expected {self._expected_size} bytes, received {self._written}"
            )
        if self._expected_sha256 is not None and self.sha256 != self._expected_sha256:
            raise ChecksumMismatchError(
                f"{self.destination.name}: sha256 {self.sha256} does not match "
                f"the listed {self._expected_sha256}"
            )
