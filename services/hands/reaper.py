"""The reaper: a task that destroys sandboxes idle longer than the configured time."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from services.core.tasks import cancel_and_wait
from services.hands.pool import SandboxPool

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, pool: SandboxPool, *, idle_seconds: float) -> None:
        self._pool = pool
        self._idle_seconds = idle_seconds
        # Checking a few times per idle period keeps a sandbox's lifetime within ~25% of the setting.
        self._every = min(max(idle_seconds / 4, 0.2), 30.0)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reaper:
        self._task = asyncio.create_task(self._reap_forever(), name="hands-reaper")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._task)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                reaped = await self._pool.reap(self._idle_seconds)
            except Exception:
                log.exception("reaping idle sandboxes failed")
                continue
            if reaped:
                log.info("reaped idle sandboxes of runs %s", ", ".join(reaped))
