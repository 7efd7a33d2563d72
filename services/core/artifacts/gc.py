"""The artifact store's collector: removes the blobs nothing references, once they are past a grace period.

A blob is live when a root names it (the event log, the call ledger) or a live blob refers to it (a
workspace manifest lists its contents). A young blob (written or touched within the grace period)
stays even when nothing names it yet: its reference may still be on its way, from a snapshot being
taken or a result not yet committed. The brain runs it as a background chore (brain/garbage.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from services.core.artifacts import ArtifactStore, Swept
from services.core.metrics import COLLECTED_BLOBS, COLLECTED_BYTES

# Every blob some root names.
Roots = Callable[[], Awaitable[Iterable[str]]]
# The blobs one live blob refers to (none for most).
Refers = Callable[[str], Awaitable[Iterable[str]]]
log = logging.getLogger(__name__)


class Collector:
    def __init__(
        self,
        store: ArtifactStore,
        roots: Sequence[Roots],
        *,
        refers: Refers,
        grace_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._roots = roots
        self._refers = refers
        self._grace = grace_seconds
        self._clock = clock

    async def collect(self) -> Swept:
        """One round: mark what is live, then sweep what is neither live nor young."""
        # Taken before marking, so a blob written while the roots are read counts as young.
        cutoff = self._clock() - self._grace
        named: set[str] = set()
        for roots in self._roots:
            named.update(await roots())
        live = set(named)
        for sha256 in named:
            live.update(await self._refers(sha256))
        swept = await self._store.sweep(live, cutoff)
        COLLECTED_BLOBS.inc(swept.blobs)
        COLLECTED_BYTES.inc(swept.bytes)
        if swept.blobs or swept.leftovers:
            log.info(
                "artifact store: removed %d unreferenced blobs (%d bytes) and %d leftovers; %d live",
                swept.blobs,
                swept.bytes,
                swept.leftovers,
                len(live),
            )
        return swept
