"""What one sandbox's /workspace is known to hold, and the restores and snapshots that change it.

A sandbox starts empty. From the moment a restore or a mutating call starts until its snapshot is
taken the workspace is dirty, so a call that never finished (a cancelled stream, a failed snapshot)
makes the next call restore its base rather than trust the sandbox. The pool keeps one per sandbox
(fleet/pool.py), so it is forgotten with the sandbox.
"""

from __future__ import annotations

from services.hands.contract.api import SnapshotMissing
from services.hands.contract.manifest import EMPTY_SNAPSHOT
from services.hands.workspace.snapshots import Snapshot, Snapshots


class Workspace:
    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self._snapshot = EMPTY_SNAPSHOT
        self._dirty = False

    def at(self, snapshot_id: str) -> bool:
        """Whether /workspace is known to equal the snapshot."""
        return not self._dirty and self._snapshot == snapshot_id

    async def restore(self, snapshots: Snapshots, snapshot_id: str) -> None:
        """Bring /workspace to the snapshot unless it is known to be there. Raises SnapshotMissing."""
        if self.at(snapshot_id):
            return
        clear = not self.at(EMPTY_SNAPSHOT)
        was_dirty, self._dirty = self._dirty, True
        try:
            await snapshots.restore(self.sandbox_id, snapshot_id, clear=clear)
        except SnapshotMissing:
            self._dirty = was_dirty  # refused before the sandbox was touched
            raise
        self._snapshot, self._dirty = snapshot_id, False

    def change(self) -> None:
        """A mutating call starts: what /workspace holds is unknown until its snapshot is taken."""
        self._dirty = True

    async def snapshot(self, snapshots: Snapshots, *, budget: int | None = None) -> str:
        """Snapshot /workspace, which from then on is known to equal it. Raises SnapshotRefused, SandboxLost.

        A refused snapshot leaves the workspace dirty: the next call restores its base.
        """
        snapshot_id = await snapshots.take(self.sandbox_id, budget=budget)
        self._snapshot, self._dirty = snapshot_id, False
        return snapshot_id

    async def capture(self, snapshots: Snapshots, *, budget: int | None = None) -> Snapshot:
        """`snapshot`, with the entries it left out: /workspace is known to equal the snapshot only
        when there are none."""
        taken = await snapshots.capture(self.sandbox_id, budget=budget)
        self._snapshot, self._dirty = taken.snapshot_id, taken.skipped > 0
        return taken
