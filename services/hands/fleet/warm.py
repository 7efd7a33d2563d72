"""Warm sandboxes: a few started sandboxes a worker keeps ready, so a new run's first call skips the start.

A claimed sandbox is the run's from then on (the pool tracks it); a background task starts another in
its place, one at a time so that refilling never competes much with calls for the engine. Warm
sandboxes run nothing and hold no call slot; they carry the worker's labels (so a restarted worker
removes them as orphans) plus WARM_LABEL, and are destroyed when the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from services.core.errors import LoopdError
from services.core.tasks import cancel_and_wait
from services.hands.sandbox import CreateSandbox, SandboxDriver

WARM_LABEL = "loopd.warm"
# After a failed start, wait this long (doubling up to the maximum) before the next one.
_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
log = logging.getLogger(__name__)


class WarmSandboxes:
    def __init__(self, driver: SandboxDriver, size: int) -> None:
        self.size = size
        self._driver = driver
        self._ready: list[str] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._ready)

    async def __aenter__(self) -> WarmSandboxes:
        if self.size > 0:
            self._wanted.set()
            self._task = asyncio.create_task(self._refill_forever(), name="hands-warm-pool")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_refilling()
        ready, self._ready = self._ready, []
        for sandbox_id in ready:
            try:
                await self._driver.destroy(sandbox_id)
            except LoopdError:
                log.exception("could not destroy warm sandbox %s", sandbox_id[:12])

    async def stop_refilling(self) -> None:
        """Start no more sandboxes (a stopping worker); those ready stay until the exit."""
        await cancel_and_wait(self._task)
        self._task = None

    async def claim(self) -> str | None:
        """A started sandbox, now the caller's; None when none is ready."""
        while self._ready:
            sandbox_id = self._ready.pop(0)
            self._wanted.set()
            if await self._driver.alive(sandbox_id):
                return sandbox_id
            await self._driver.destroy(sandbox_id)
        self._wanted.set()
        return None

    async def _refill_forever(self) -> None:
        backoff = _BACKOFF
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while self._task is not None and len(self._ready) < self.size:
                try:
                    self._ready.append(await self._driver.create(CreateSandbox(labels={WARM_LABEL: "1"})))
                    backoff = _BACKOFF
                except LoopdError:
                    log.exception("could not start a warm sandbox; retrying in %.1fs", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
