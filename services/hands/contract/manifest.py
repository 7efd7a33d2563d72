"""The manifest of a workspace snapshot: what /workspace held, in one canonical JSON document.

A manifest lists directories (path, mode), regular files (path, mode, size, sha256 of the content)
and symlinks (path, target), sorted by path. Its bytes are canonical (sorted keys, no whitespace,
ASCII with escapes), so the sha256 of those bytes, the snapshot id, names the workspace's content:
equal workspaces get equal ids whatever the order the files were found in. Owners and times are not
recorded: every restored entry belongs to the sandbox user and carries the time of the restore.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

FORMAT = "loopd.workspace/1"
# The id of the empty workspace: Manifest(()).snapshot_id(), spelled out so importing costs nothing.
EMPTY_SNAPSHOT = "a1f6ab4d9fc4e3ebc62eba0cd97e86c4849dd238651ab9c257db81904a228b0c"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DirEntry:
    path: str
    mode: int


@dataclass(frozen=True)
class FileEntry:
    path: str
    mode: int
    size: int
    sha256: str


@dataclass(frozen=True)
class SymlinkEntry:
    path: str
    target: str


Entry = DirEntry | FileEntry | SymlinkEntry


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, entries: list[Entry]) -> Manifest:
        """The manifest of these entries, in canonical (path) order; paths must be unique and safe."""
        ordered = tuple(sorted(entries, key=lambda entry: entry.path))
        for before, after in itertools.pairwise(ordered):
            if before.path == after.path:
                raise ValueError(f"duplicate manifest path {after.path!r}")
        for entry in ordered:
            check_path(entry.path)
        return cls(ordered)

    def files(self) -> tuple[FileEntry, ...]:
        return tuple(entry for entry in self.entries if isinstance(entry, FileEntry))

    def encode(self) -> bytes:
        document = {"format": FORMAT, "entries": [_entry_to_json(entry) for entry in self.entries]}
        # ensure_ascii keeps names that are not valid UTF-8 (surrogate escapes) representable.
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def snapshot_id(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()


def decode(data: bytes) -> Manifest:
    """Parse manifest bytes; raises ValueError for anything this format does not allow."""
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a workspace manifest")
    return Manifest.of([_entry_from_json(item) for item in document["entries"]])


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def check_path(path: str) -> None:
    """A manifest path is relative, normalised and stays inside the workspace."""
    if not path or path.startswith("/") or "\x00" in path or posixpath.normpath(path) != path:
        raise ValueError(f"unsafe manifest path {path!r}")
    if path == ".." or path.startswith("../"):
        raise ValueError(f"unsafe manifest path {path!r}")


def _entry_to_json(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, FileEntry):
        return {
            "type": "file",
            "path": entry.path,
            "mode": entry.mode,
            "size": entry.size,
            "sha256": entry.sha256,
        }
    if isinstance(entry, DirEntry):
        return {"type": "dir", "path": entry.path, "mode": entry.mode}
    return {"type": "symlink", "path": entry.path, "target": entry.target}


def _entry_from_json(item: dict[str, Any]) -> Entry:
    kind = item.get("type")
    if kind == "file":
        sha256 = str(item["sha256"])
        if not is_sha256(sha256):
            raise ValueError(f"bad sha256 {sha256!r}")
        return FileEntry(str(item["path"]), int(item["mode"]), int(item["size"]), sha256)
    if kind == "dir":
        return DirEntry(str(item["path"]), int(item["mode"]))
    if kind == "symlink":
        return SymlinkEntry(str(item["path"]), str(item["target"]))
    raise ValueError(f"unknown manifest entry type {kind!r}")
