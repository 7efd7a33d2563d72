"""A manifest has one canonical form, so a workspace's snapshot id depends on its content only."""

from __future__ import annotations

import hashlib

import pytest

from services.hands.contract.manifest import (
    EMPTY_SNAPSHOT,
    DirEntry,
    Entry,
    FileEntry,
    Manifest,
    SymlinkEntry,
    decode,
)

SHA_A = hashlib.sha256(b"a").hexdigest()
ENTRIES: list[Entry] = [
    FileEntry("src/main.py", 0o755, 1, SHA_A),
    DirEntry("src", 0o755),
    SymlinkEntry("latest", "src/main.py"),
    FileEntry("empty", 0o644, 0, hashlib.sha256(b"").hexdigest()),
]


def test_the_canonical_form_is_sorted_compact_json() -> None:
    manifest = Manifest.of([DirEntry("b", 0o700), SymlinkEntry("a", "b"), FileEntry("b/c", 0o644, 1, SHA_A)])

    assert manifest.encode() == (
        b'{"entries":[{"path":"a","target":"b","type":"symlink"},{"mode":448,"path":"b","type":"dir"},'
        b'{"mode":420,"path":"b/c","sha256":"' + SHA_A.encode() + b'","size":1,"type":"file"}],'
        b'"format":"loopd.workspace/1"}'
    )


def test_the_snapshot_id_ignores_the_order_entries_were_found_in() -> None:
    forwards, backwards = Manifest.of(ENTRIES), Manifest.of(list(reversed(ENTRIES)))

    assert forwards.encode() == backwards.encode()
    assert forwards.snapshot_id() == backwards.snapshot_id() == hashlib.sha256(forwards.encode()).hexdigest()


def test_the_snapshot_id_changes_with_content_mode_or_link_target() -> None:
    base = Manifest.of(ENTRIES).snapshot_id()
    changed = [
        [FileEntry("src/main.py", 0o755, 1, hashlib.sha256(b"b").hexdigest()), *ENTRIES[1:]],
        [FileEntry("src/main.py", 0o644, 1, SHA_A), *ENTRIES[1:]],
        [*ENTRIES[:2], SymlinkEntry("latest", "src"), ENTRIES[3]],
    ]

    assert len({base, *(Manifest.of(entries).snapshot_id() for entries in changed)}) == 4


def test_the_empty_workspace_has_a_fixed_id() -> None:
    assert Manifest(()).snapshot_id() == EMPTY_SNAPSHOT


def test_manifests_round_trip_including_names_that_are_not_utf8() -> None:
    odd = FileEntry("caf\udce9.txt", 0o600, 1, SHA_A)
    manifest = Manifest.of([*ENTRIES, odd])

    assert decode(manifest.encode()) == manifest
    assert manifest.encode().isascii()


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../up", "a/../../b", "a//b", "./a", "a/"])
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        Manifest.of([DirEntry(path, 0o755)])


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Manifest.of([DirEntry("a", 0o755), FileEntry("a", 0o644, 1, SHA_A)])


def test_decoding_refuses_other_documents() -> None:
    with pytest.raises(ValueError):
        decode(b'{"format":"something-else","entries":[]}')
    with pytest.raises(ValueError):
        decode(
            b'{"format":"loopd.workspace/1","entries":[{"type":"file","path":"a","mode":1,"size":1,"sha256":"x"}]}'
        )
