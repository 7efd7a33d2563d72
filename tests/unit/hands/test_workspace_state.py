"""A sandbox's Workspace restores only when /workspace is not known to be at the base, and distrusts
itself from the moment a change starts until its snapshot is taken."""

from __future__ import annotations

import pytest

from services.core.errors import SandboxLost
from services.hands.contract.api import SnapshotMissing
from services.hands.contract.manifest import EMPTY_SNAPSHOT
from services.hands.workspace.snapshots import Snapshots
from services.hands.workspace.state import Workspace

BASE, AFTER = "b" * 64, "a" * 64


class RecordingSnapshots(Snapshots):
    """Records restores (with their `clear`) and hands out `taken` as the next snapshot."""

    def __init__(self) -> None:  # no store, no driver: nothing is read or written
        self.restores: list[tuple[str, bool]] = []
        self.taken = AFTER
        self.fail: Exception | None = None

    async def restore(self, sandbox_id: str, snapshot_id: str, *, clear: bool = True) -> None:
        if self.fail is not None:
            raise self.fail
        self.restores.append((snapshot_id, clear))

    async def take(self, sandbox_id: str, *, budget: int | None = None) -> str:
        if self.fail is not None:
            raise self.fail
        return self.taken


@pytest.fixture
def snapshots() -> RecordingSnapshots:
    return RecordingSnapshots()


async def test_a_new_sandbox_is_empty_and_restores_without_clearing(snapshots: RecordingSnapshots) -> None:
    workspace = Workspace("sb-1")
    assert workspace.at(EMPTY_SNAPSHOT)

    await workspace.restore(snapshots, EMPTY_SNAPSHOT)
    await workspace.restore(snapshots, BASE)
    await workspace.restore(snapshots, BASE)

    assert snapshots.restores == [(BASE, False)]
    assert workspace.at(BASE)


async def test_a_change_is_distrusted_until_its_snapshot(snapshots: RecordingSnapshots) -> None:
    workspace = Workspace("sb-1")
    await workspace.restore(snapshots, BASE)

    workspace.change()
    assert not workspace.at(BASE)
    await workspace.restore(snapshots, BASE)  # a call that never took its snapshot is undone
    workspace.change()
    assert await workspace.snapshot(snapshots) == AFTER

    assert snapshots.restores == [(BASE, False), (BASE, True)]
    assert workspace.at(AFTER)


async def test_a_lost_snapshot_leaves_the_workspace_distrusted(snapshots: RecordingSnapshots) -> None:
    workspace = Workspace("sb-1")
    workspace.change()
    snapshots.fail = SandboxLost("gone")

    with pytest.raises(SandboxLost):
        await workspace.snapshot(snapshots)

    assert not workspace.at(EMPTY_SNAPSHOT)


async def test_a_missing_snapshot_leaves_the_workspace_as_it_was(snapshots: RecordingSnapshots) -> None:
    workspace = Workspace("sb-1")
    snapshots.fail = SnapshotMissing("no such snapshot")

    with pytest.raises(SnapshotMissing):
        await workspace.restore(snapshots, BASE)

    assert workspace.at(EMPTY_SNAPSHOT)


async def test_a_failed_restore_leaves_the_workspace_distrusted(snapshots: RecordingSnapshots) -> None:
    workspace = Workspace("sb-1")
    snapshots.fail = SandboxLost("gone")

    with pytest.raises(SandboxLost):
        await workspace.restore(snapshots, BASE)

    assert not workspace.at(EMPTY_SNAPSHOT) and not workspace.at(BASE)
