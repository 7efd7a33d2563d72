"""The brain's share of keeping the artifact store small: its collector, rooted in the log and the ledger.

Every brain runs it (it needs the database, and hands have none); rounds of two brains at once are
harmless, since a sweep only removes what both agree nothing references.
"""

from __future__ import annotations

import functools

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import events as event_log
from services.core.artifacts import ArtifactStore
from services.core.artifacts.gc import Collector
from services.core.db.engine import autocommit
from services.core.settings import Settings
from services.hands.workspace.ledger import build_ledger
from services.hands.workspace.references import snapshot_contents


def build_collector(settings: Settings, engine: AsyncEngine, artifacts: ArtifactStore) -> Collector:
    ledger = build_ledger(settings)

    async def logged() -> set[str]:
        async with autocommit(engine).connect() as conn:
            return await event_log.blob_references(conn)

    return Collector(
        artifacts,
        # The ledger is read after the log: a result committed in between is still in the ledger.
        (logged, ledger.snapshots),
        refers=functools.partial(snapshot_contents, artifacts),
        grace_seconds=settings.artifacts_gc_grace_seconds,
    )
