"""The tar members of a manifest's entries, which a restore unpacks inside /workspace.

Paths are the manifest's, relative to /workspace; PAX headers keep long and non-UTF-8 names exact.
"""

from __future__ import annotations

import tarfile
import time

from services.hands.contract.manifest import DirEntry, Entry, FileEntry

BLOCK = 512
# What ends a tar stream: two empty blocks.
END_OF_ARCHIVE = bytes(2 * BLOCK)


def header(entry: Entry, owner: str, mtime: float | None = None) -> bytes:
    """The tar header of one manifest entry, owned by `owner` ("uid:gid"), to unpack inside /workspace."""
    uid, _, gid = owner.partition(":")
    info = tarfile.TarInfo(entry.path)
    info.uid, info.gid = int(uid), int(gid or uid)
    info.mtime = int(time.time() if mtime is None else mtime)
    if isinstance(entry, FileEntry):
        info.type, info.mode, info.size = tarfile.REGTYPE, entry.mode, entry.size
    elif isinstance(entry, DirEntry):
        info.type, info.mode = tarfile.DIRTYPE, entry.mode
    else:
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
    # PAX keeps long names and names that are not valid UTF-8 (surrogate escapes) exactly.
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    """The zeros that round a member's data up to a whole block."""
    return bytes(-size % BLOCK)
