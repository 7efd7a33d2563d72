"""Snapshots store each distinct content once, and restore rebuilds the archive they were taken from.

The driver here serves a tar built in the test as its workspace and keeps what it is asked to unpack,
so the snapshot code runs against the real artifact store without a container engine.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from services.core.artifacts import ArtifactStore, BlobRef
from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.metrics import REGISTRY
from services.hands.contract.api import SnapshotMissing
from services.hands.contract.manifest import EMPTY_SNAPSHOT, FileEntry
from services.hands.sandbox import SandboxRefused, WorkspaceScan
from services.hands.workspace.snapshots import SnapshotRefused, Snapshots
from tests.unit.hands.fake_driver import FakeDriver

Tree = Mapping[str, bytes | str | None]  # bytes: a file, str: a symlink's target, None: a directory
OWNER = "64000:64000"


class ArchiveDriver(FakeDriver):
    """Serves `archive` (a tar shaped as Docker's, under a "workspace/" root); keeps what it unpacks."""

    def __init__(self) -> None:
        super().__init__()
        self.archive = workspace_tar({})
        self.unpacked: list[bytes] = []
        self.cleared = 0

    async def tar_of(self, sandbox_id: str) -> bytes:
        return self.archive

    async def import_archive(self, sandbox_id: str, path: str, source: Path) -> None:
        self.unpacked.append(await asyncio.to_thread(source.read_bytes))

    async def clear(self, sandbox_id: str, path: str) -> None:
        self.cleared += 1


class CountingStore:
    """The filesystem store, counting the writes it is asked for."""

    def __init__(self, inner: FilesystemArtifactStore) -> None:
        self.inner = inner
        self.writes = 0

    async def put(self, data: bytes) -> BlobRef:
        self.writes += 1
        return await self.inner.put(data)

    async def put_file(self, path: Path) -> BlobRef:
        self.writes += 1
        return await self.inner.put_file(path)

    async def put_many(self, contents: Sequence[bytes]) -> list[BlobRef]:
        self.writes += len(contents)
        return await self.inner.put_many(contents)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def workspace_tar(tree: Tree, mtime: int = 1_700_000_000) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        root = tarfile.TarInfo("workspace")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
        for path, content in tree.items():
            info = tarfile.TarInfo(f"workspace/{path}")
            info.mtime = mtime
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755 if path.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def read_tree(archive: bytes, root: str = "") -> dict[str, tuple[str, bytes | str | None, int]]:
    """Every member as (kind, content, mode), with `root` stripped from the names."""
    found: dict[str, tuple[str, bytes | str | None, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            name = member.name.removeprefix(root)
            if not name or name == root.rstrip("/"):
                continue
            if member.isdir():
                found[name] = ("dir", None, member.mode)
            elif member.issym():
                found[name] = ("symlink", member.linkname, 0)
            else:
                handle = tar.extractfile(member)
                assert handle is not None
                found[name] = ("file", handle.read(), member.mode)
    return found


def count_blobs(root: Path) -> int:
    return sum(1 for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


TREE: Tree = {
    "src": None,
    "src/lib": None,
    "src/lib/util.py": b"def util(): ...\n",
    "src/copy.py": b"def util(): ...\n",
    "run.sh": b"#!/bin/sh\necho hi\n",
    "empty.txt": b"",
    "link": "src/lib/util.py",
}


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(FilesystemArtifactStore(tmp_path / "blobs"))


@pytest.fixture
def driver() -> ArchiveDriver:
    return ArchiveDriver()


def snapshots(driver: ArchiveDriver, store: ArtifactStore | CountingStore) -> Snapshots:
    return Snapshots(driver, store, owner=OWNER)  # type: ignore[arg-type]


async def test_each_distinct_content_is_stored_once(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar(TREE)

    first = await snapshots(driver, store).take("sb")

    # Three distinct contents (util.py and copy.py are equal) plus the manifest.
    assert count_blobs(tmp_path / "blobs") == 4
    assert store.writes == 4
    assert first != EMPTY_SNAPSHOT


async def test_an_unchanged_workspace_costs_no_write_and_keeps_its_id(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar(TREE)
    first = await snapshots(driver, store).take("sb")
    writes = store.writes

    again = await snapshots(driver, store).take("sb")

    assert again == first
    assert store.writes == writes
    assert count_blobs(tmp_path / "blobs") == 4


async def test_a_changed_file_adds_its_new_content_and_a_manifest_only(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar(TREE)
    first = await snapshots(driver, store).take("sb")
    writes = store.writes

    driver.archive = workspace_tar({**TREE, "empty.txt": b"not any more\n"})
    second = await snapshots(driver, store).take("sb")

    assert second != first
    assert store.writes == writes + 2
    assert count_blobs(tmp_path / "blobs") == 6


async def test_the_id_does_not_depend_on_file_times(driver: ArchiveDriver, store: CountingStore) -> None:
    driver.archive = workspace_tar(TREE)
    first = await snapshots(driver, store).take("sb")
    driver.archive = workspace_tar(TREE, mtime=1)

    assert await snapshots(driver, store).take("sb") == first


async def test_a_hard_link_is_kept_as_a_file_with_the_same_content(
    driver: ArchiveDriver, store: CountingStore
) -> None:
    driver.archive = _with_hard_link()

    manifest = await snapshots(driver, store).load(await snapshots(driver, store).take("sb"))

    assert [(e.path, e.size) for e in manifest.files()] == [("a.txt", 7), ("b.txt", 7)]
    assert len({e.sha256 for e in manifest.files()}) == 1


def _with_hard_link() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("workspace/a.txt")
        info.size = 7
        tar.addfile(info, io.BytesIO(b"shared\n"))
        link = tarfile.TarInfo("workspace/b.txt")
        link.type, link.linkname = tarfile.LNKTYPE, "workspace/a.txt"
        tar.addfile(link)
    return buffer.getvalue()


async def test_restore_unpacks_exactly_what_was_taken(driver: ArchiveDriver, store: CountingStore) -> None:
    driver.archive = workspace_tar(TREE)
    snapshot_id = await snapshots(driver, store).take("sb")

    await snapshots(driver, store).restore("sb", snapshot_id)

    assert driver.cleared == 1
    (unpacked,) = driver.unpacked
    assert read_tree(unpacked) == read_tree(workspace_tar(TREE), root="workspace/")
    with tarfile.open(fileobj=io.BytesIO(unpacked)) as tar:
        assert {(m.uid, m.gid) for m in tar} == {(64000, 64000)}


async def test_restoring_the_empty_workspace_only_clears(driver: ArchiveDriver, store: CountingStore) -> None:
    await snapshots(driver, store).restore("sb", EMPTY_SNAPSHOT)

    assert driver.cleared == 1 and driver.unpacked == []


async def test_a_missing_blob_fails_before_the_sandbox_is_touched(
    driver: ArchiveDriver, store: CountingStore
) -> None:
    driver.archive = workspace_tar(TREE)
    snapshot_id = await snapshots(driver, store).take("sb")
    manifest = await snapshots(driver, store).load(snapshot_id)
    victim = next(e for e in manifest.entries if isinstance(e, FileEntry) and e.size)
    store.inner.path_of(victim.sha256).unlink()

    with pytest.raises(SnapshotMissing) as caught:
        await snapshots(driver, store).restore("sb", snapshot_id)

    assert caught.value.code == "snapshot_missing" and not caught.value.retryable
    assert driver.cleared == 0 and driver.unpacked == []


async def test_an_unknown_snapshot_is_missing(driver: ArchiveDriver, store: CountingStore) -> None:
    with pytest.raises(SnapshotMissing):
        await snapshots(driver, store).restore("sb", "0" * 64)


async def test_large_contents_go_through_files_and_streams(
    driver: ArchiveDriver, store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.hands.workspace.snapshots._INLINE", 4)
    monkeypatch.setattr("services.hands.workspace.snapshots._CHUNK", 3)
    driver.archive = workspace_tar(TREE)

    snapshot_id = await snapshots(driver, store).take("sb")
    await snapshots(driver, store).restore("sb", snapshot_id)

    (unpacked,) = driver.unpacked
    assert read_tree(unpacked) == read_tree(workspace_tar(TREE), root="workspace/")


async def test_the_bytes_a_snapshot_copies_are_counted(driver: ArchiveDriver, store: CountingStore) -> None:
    before = REGISTRY.get_sample_value("loopd_hands_snapshot_bytes_total") or 0.0
    driver.archive = workspace_tar(TREE)

    await snapshots(driver, store).take("sb")
    first = REGISTRY.get_sample_value("loopd_hands_snapshot_bytes_total") or 0.0
    await snapshots(driver, store).take("sb")  # nothing changed: nothing is copied

    contents = {content for content in TREE.values() if isinstance(content, bytes)}
    assert first - before > sum(len(content) for content in contents)  # the manifest too
    assert REGISTRY.get_sample_value("loopd_hands_snapshot_bytes_total") == first


async def test_a_file_above_the_file_limit_is_refused_unread(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar({**TREE, "big.bin": b"\0" * 5000})
    limited = Snapshots(driver, store, owner=OWNER, file_limit=4096)  # type: ignore[arg-type]

    with pytest.raises(SnapshotRefused, match=r"/workspace/big\.bin is 4\.9 KiB .* above the 4\.0 KiB"):
        await limited.take("sb")

    assert driver.reads == [] and count_blobs(tmp_path / "blobs") == 0


async def test_a_workspace_above_the_runs_storage_budget_is_refused_unread(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar({"a.bin": b"a" * 600, "b.bin": b"b" * 600})

    with pytest.raises(SnapshotRefused, match=r"add up to 1\.2 KiB .* storage budget of 1000 bytes"):
        await snapshots(driver, store).take("sb", budget=1000)

    assert driver.reads == [] and count_blobs(tmp_path / "blobs") == 0
    assert await snapshots(driver, store).take("sb", budget=1200) != EMPTY_SNAPSHOT


async def test_a_seen_content_the_store_lost_is_copied_again(
    driver: ArchiveDriver, store: CountingStore, tmp_path: Path
) -> None:
    driver.archive = workspace_tar(TREE)
    taken = snapshots(driver, store)
    first = await taken.load(await taken.take("sb"))
    util = next(entry for entry in first.files() if entry.path == "src/lib/util.py")
    FilesystemArtifactStore(tmp_path / "blobs").path_of(util.sha256).unlink()  # collected meanwhile
    driver.reads.clear()

    driver.archive = workspace_tar({**TREE, "new.txt": b"new\n"})
    await taken.take("sb")

    # util.py's content (which copy.py shares) is read once more, from either file, and new.txt once.
    new, again = sorted(driver.reads)
    assert new == "/workspace/new.txt" and again in ("/workspace/src/copy.py", "/workspace/src/lib/util.py")
    assert await store.inner.exists(util.sha256)


async def test_contents_touched_lately_are_not_touched_again(
    driver: ArchiveDriver, store: CountingStore
) -> None:
    driver.archive = workspace_tar(TREE)
    touched: list[str] = []
    real_touch = store.inner.touch

    async def counting_touch(sha256s: Iterable[str]) -> set[str]:
        listed = list(sha256s)
        touched.extend(listed)
        return await real_touch(listed)

    store.inner.touch = counting_touch  # type: ignore[method-assign]
    taken = Snapshots(driver, store, owner=OWNER, touch_every=3600.0)  # type: ignore[arg-type]
    first = await taken.take("sb")
    touched.clear()

    assert await taken.take("sb") == first
    assert touched == [first]  # the manifest only: its contents were stored a moment ago


class ChurningDriver(ArchiveDriver):
    """A workspace where a background process is busy: `vanishing` is listed but gone when read, and
    `rewritten` has new content by the time it is read, on every scan."""

    def __init__(self, vanishing: str, rewritten: str) -> None:
        super().__init__()
        self.vanishing, self.rewritten = f"/workspace/{vanishing}", f"/workspace/{rewritten}"
        self.scans = 0

    async def scan(self, sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        self.scans += 1
        return await super().scan(sandbox_id, path, limit=limit)

    async def read(self, sandbox_id: str, path: str) -> AsyncGenerator[bytes, None]:
        if path == self.vanishing:
            raise SandboxRefused(f"FileNotFoundError: [Errno 2] No such file or directory: '{path}'")
        if path == self.rewritten:
            yield f"rewritten at scan {self.scans}\n".encode()
            return
        async for chunk in super().read(sandbox_id, path):
            yield chunk


async def test_a_file_that_keeps_vanishing_is_left_out_and_one_that_keeps_changing_is_kept_as_read(
    store: CountingStore,
) -> None:
    driver = ChurningDriver(vanishing="tmp.lock", rewritten="app.log")
    driver.archive = workspace_tar({**TREE, "tmp.lock": b"lock\n", "app.log": b"started\n"})

    taken = await snapshots(driver, store).capture("sb")

    assert driver.scans == 3
    assert (taken.skipped, taken.skipped_shown) == (
        1,
        (("tmp.lock", "it vanished while the snapshot was taken"),),
    )
    files = {e.path: e for e in (await snapshots(driver, store).load(taken.snapshot_id)).files()}
    assert "tmp.lock" not in files and "src/lib/util.py" in files
    log = files["app.log"]
    assert await store.inner.get(log.sha256) == b"rewritten at scan 3\n" and log.size == 20


async def test_a_file_that_vanished_once_is_only_scanned_again(store: CountingStore) -> None:
    driver = ChurningDriver(vanishing="tmp.lock", rewritten="none")
    driver.archive = workspace_tar({**TREE, "tmp.lock": b"lock\n"})
    original_scan = driver.scan

    async def scan_then_settle(sandbox_id: str, path: str, *, limit: int | None = None) -> WorkspaceScan:
        scanned = await original_scan(sandbox_id, path, limit=limit)
        driver.archive = workspace_tar(TREE)  # the background process is done
        return scanned

    driver.scan = scan_then_settle  # type: ignore[method-assign]

    taken = await snapshots(driver, store).capture("sb")

    plain = ArchiveDriver()
    plain.archive = workspace_tar(TREE)
    assert driver.scans == 2 and taken.skipped == 0
    assert taken.snapshot_id == await snapshots(plain, store).take("sb")
