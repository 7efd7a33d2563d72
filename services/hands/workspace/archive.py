"""Tar archives of /workspace and manifests: scan an exported archive, write the tar members of one.

Blocking code, meant for a worker thread. The archive's first path component is the exported
directory itself ("workspace/..."); manifests hold paths relative to it. Hard links become plain
files with the same content; fifos and device files are left out (the sandbox user cannot make
devices, and a fifo holds no data).
"""

from __future__ import annotations

import hashlib
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.hands.contract.manifest import DirEntry, Entry, FileEntry, Manifest, SymlinkEntry

BLOCK = 512
# What ends a tar stream: two empty blocks.
END_OF_ARCHIVE = bytes(2 * BLOCK)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Span:
    """Where a regular member's data lies in the archive file."""

    offset: int
    size: int


@dataclass(frozen=True)
class ScannedArchive:
    manifest: Manifest
    # For each distinct content, where one member holding it keeps its bytes.
    sources: dict[str, Span]


def scan(archive: Path) -> ScannedArchive:
    """Hash every file of an exported workspace archive and build its manifest."""
    entries: list[Entry] = []
    sources: dict[str, Span] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            _, _, relative = member.name.partition("/")
            if not relative:
                continue
            if member.isdir():
                entries.append(DirEntry(relative, member.mode & 0o7777))
            elif member.issym():
                entries.append(SymlinkEntry(relative, member.linkname))
            elif member.isfile() or member.islnk():
                sha256, size = _hash(tar, member)
                entries.append(FileEntry(relative, member.mode & 0o7777, size, sha256))
                # A hard link's content first appeared at its target, an earlier regular member.
                if member.isreg() and not member.issparse():
                    sources.setdefault(sha256, Span(member.offset_data, size))
    return ScannedArchive(Manifest.of(entries), sources)


def read_span(archive: IO[bytes], span: Span) -> bytes:
    archive.seek(span.offset)
    return archive.read(span.size)


def copy_span(archive: IO[bytes], span: Span, dest: Path) -> None:
    archive.seek(span.offset)
    left = span.size
    with dest.open("wb") as out:
        while left and (chunk := archive.read(min(left, _CHUNK))):
            out.write(chunk)
            left -= len(chunk)


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


def _hash(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, int]:
    source = tar.extractfile(member)
    if source is None:
        raise ValueError(f"cannot read {member.name} from the archive")
    hasher, size = hashlib.sha256(), 0
    with source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size
