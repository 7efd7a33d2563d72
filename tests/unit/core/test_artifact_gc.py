"""The artifact store's collector removes old blobs nothing references and keeps everything else:
referenced blobs, the contents of referenced manifests, and young blobs whose reference may be on its way."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.artifacts.gc import Collector
from services.hands.contract.manifest import FileEntry, Manifest
from services.hands.workspace.references import snapshot_contents

GRACE = 3600.0
LONG_AGO = time.time() - 10 * GRACE


@pytest.fixture
def store(tmp_path: Path) -> FilesystemArtifactStore:
    return FilesystemArtifactStore(tmp_path / "artifacts")


def age(store: FilesystemArtifactStore, sha256: str, when: float = LONG_AGO) -> None:
    os.utime(store.path_of(sha256), (when, when))


def collector(store: FilesystemArtifactStore, *roots: set[str]) -> Collector:
    async def named(found: set[str]) -> set[str]:
        return found

    return Collector(
        store,
        [functools.partial(named, found) for found in roots],
        refers=functools.partial(snapshot_contents, store),
        grace_seconds=GRACE,
    )


async def test_an_old_unreferenced_blob_goes_and_a_referenced_one_stays(
    store: FilesystemArtifactStore,
) -> None:
    orphan = (await store.put(b"a failed snapshot's content")).sha256
    kept = (await store.put(b"an output the log names")).sha256
    age(store, orphan)
    age(store, kept)

    swept = await collector(store, {kept}).collect()

    assert swept.blobs == 1 and swept.bytes == len(b"a failed snapshot's content")
    assert not await store.exists(orphan)
    assert await store.get(kept) == b"an output the log names"


async def test_a_young_unreferenced_blob_stays(store: FilesystemArtifactStore) -> None:
    being_written = (await store.put(b"a snapshot being taken")).sha256

    swept = await collector(store, set()).collect()

    assert swept.blobs == 0
    assert await store.exists(being_written)


async def test_the_contents_of_a_referenced_manifest_stay_with_it(store: FilesystemArtifactStore) -> None:
    content = await store.put(b"print('hi')\n")
    other_root = (await store.put(b"x" * 100)).sha256
    manifest = Manifest.of([FileEntry("main.py", 0o644, content.size, content.sha256)]).encode()
    snapshot = (await store.put(manifest)).sha256
    unlisted = (await store.put(b"a content no manifest lists")).sha256
    for sha256 in (content.sha256, other_root, snapshot, unlisted):
        age(store, sha256)

    await collector(store, {snapshot}, {other_root}).collect()

    assert await store.exists(snapshot) and await store.exists(content.sha256)
    assert await store.exists(other_root)
    assert not await store.exists(unlisted)


async def test_storing_or_touching_an_old_blob_makes_it_young(store: FilesystemArtifactStore) -> None:
    stored_again = (await store.put(b"the same output twice")).sha256
    touched = (await store.put(b"a content a new snapshot names")).sha256
    age(store, stored_again)
    age(store, touched)

    await store.put(b"the same output twice")
    missing = await store.touch([touched, "0" * 64])
    await collector(store, set()).collect()

    assert missing == {"0" * 64}
    assert await store.exists(stored_again) and await store.exists(touched)


async def test_a_blob_touched_while_it_is_swept_is_put_back(
    store: FilesystemArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = (await store.put(b"named by a snapshot just now")).sha256
    age(store, sha256)
    real_rename = os.rename

    def touch_then_rename(source: str | Path, target: str | Path) -> None:
        # The sweep listed the blob as old; a snapshot touches it before the sweep moves it aside.
        os.utime(source)
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", touch_then_rename)
    swept = await collector(store, set()).collect()

    assert swept.blobs == 0
    assert await store.get(sha256) == b"named by a snapshot just now"
    assert [p.name for p in store.path_of(sha256).parent.iterdir()] == [sha256]


async def test_leftovers_of_interrupted_writes_go_once_old(
    store: FilesystemArtifactStore, tmp_path: Path
) -> None:
    sha256 = (await store.put(b"a blob")).sha256
    fanout = store.path_of(sha256).parent
    old, fresh = fanout / ".incoming-old", fanout / ".incoming-fresh"
    old.write_bytes(b"half a blob")
    fresh.write_bytes(b"a write under way")
    os.utime(old, (LONG_AGO, LONG_AGO))
    ledger = tmp_path / "artifacts" / "ledger" / "run-1"
    ledger.mkdir(parents=True)
    (ledger / "call.json").write_text("{}")
    os.utime(ledger / "call.json", (LONG_AGO, LONG_AGO))

    swept = await collector(store, {sha256}).collect()

    assert swept.leftovers == 1
    assert not old.exists() and fresh.exists()
    assert (ledger / "call.json").exists()  # not a blob: the ledger beside the store is left alone
