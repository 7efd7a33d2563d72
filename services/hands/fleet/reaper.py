"""The reaper: destroys sandboxes idle longer than the configured time, and the least recently used
idle ones beyond the pool's limits (which busy sandboxes can keep it over for a while)."""

from __future__ import annotations

import logging

from services.hands.fleet.pool import SandboxPool

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, pool: SandboxPool, *, idle_seconds: float) -> None:
        self._pool = pool
        self._idle_seconds = idle_seconds
        # Checking a few times per idle period keeps a sandbox's lifetime within ~25% of the setting.
        self.every = min(max(idle_seconds / 4, 0.2), 30.0)

    async def reap(self) -> None:
        reaped = await self._pool.reap(self._idle_seconds) + await self._pool.trim()
        if reaped:
            log.info("reaped idle sandboxes of runs %s", ", ".join(reaped))
