"""Artifact paths come from the sandbox: nothing may land outside the download directory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from loopd.downloads import VerifiedFile, quote_artifact_path, safe_join
from loopd.errors import ChecksumMismatchError, UnsafePathError


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../../x",
        "a/../b",
        "/etc/passwd",
        "//server/share",
        "",
        ".",
        "./",
        "a\\..\\x",
        "C:evil",
        "a\x00b",
    ],
)
def test_paths_that_could_escape_or_name_nothing_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, path)


def test_a_nested_relative_path_lands_under_the_directory(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "src/pkg/./mod.py") == tmp_path.resolve() / "src" / "pkg" / "mod.py"


def test_a_symlink_inside_the_directory_cannot_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(UnsafePathError):
        safe_join(root, "link/x")


def test_url_paths_are_encoded_segment_by_segment() -> None:
    assert quote_artifact_path("dir with space/a#b?.txt") == "dir%20with%20space/a%23b%3F.txt"


def test_a_download_that_matches_its_listing_is_moved_into_place(tmp_path: Path) -> None:
    data = b"hello\n"
    target = tmp_path / "out" / "hello.txt"
    with VerifiedFile(target, hashlib.sha256(data).hexdigest(), len(data)) as file:
        file.write(data[:3])
        file.write(data[3:])
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["hello.txt"]


@pytest.mark.parametrize(("sha256", "size"), [("0" * 64, 6), (None, 99)])
def test_a_download_that_does_not_match_leaves_nothing_behind(
    tmp_path: Path, sha256: str | None, size: int
) -> None:
    target = tmp_path / "hello.txt"
    with pytest.raises(ChecksumMismatchError), VerifiedFile(target, sha256, size) as file:
        file.write(b"hello\n")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_download_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), VerifiedFile(tmp_path / "a.bin", None) as file:
        file.write(b"partial")
        raise RuntimeError("connection lost")
    assert list(tmp_path.iterdir()) == []
