"""The artifact store's collector against a real worker: the snapshots its ledger names, and their
contents, survive a collection (the run restores from them afterwards), while an old blob nothing names
goes and a young one stays."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.artifacts.gc import Collector
from services.hands.contract.client import HandsClient, ReleaseRequest
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from services.hands.workspace.references import snapshot_contents
from tests.integration.hands.calls import bash, new_run

pytestmark = pytest.mark.docker
GRACE = 3600.0


def blobs(store: FilesystemArtifactStore, root: Path) -> set[str]:
    return {p.name for p in root.glob("??/*") if not p.name.startswith(".")}


async def test_a_collection_keeps_the_runs_snapshots_and_removes_an_old_orphan(
    hands: HandsClient, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    store = FilesystemArtifactStore(root)
    run_id = new_run()
    written = await bash(
        hands, run_id, "mkdir src && echo hi > src/a.txt && head -c 100000 /dev/urandom > b.bin"
    )
    orphan = (await store.put(b"the content of a snapshot that failed")).sha256
    long_ago = time.time() - 10 * GRACE
    for sha256 in blobs(store, root):
        os.utime(store.path_of(sha256), (long_ago, long_ago))
    young = (await store.put(b"the content of a snapshot being taken")).sha256
    collector = Collector(
        store,
        [FilesystemLedger(root / "ledger").snapshots],
        refers=functools.partial(snapshot_contents, store),
        grace_seconds=GRACE,
    )

    swept = await collector.collect()
    await hands.release(ReleaseRequest(run_id))
    restored = await bash(hands, run_id, "cat src/a.txt; wc -c < b.bin")

    assert written.ok and written.snapshot_after in blobs(store, root)
    assert swept.blobs == 1
    assert orphan not in blobs(store, root) and young in blobs(store, root)
    assert restored.ok and restored.sandbox_created
    assert restored.output == "hi\n100000\n"
