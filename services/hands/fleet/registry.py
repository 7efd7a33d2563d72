"""Keeps a hands worker in the bus's hands registry: a heartbeat while it runs, unregistered at exit.

`nudge()` makes the next beat happen at once: a run that just got a sandbox (a warm one is claimed in
milliseconds) is then listed before its first call ends, so the run's next call finds its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from services.core.bus import Bus, HandsInfo
from services.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Registration:
    def __init__(self, bus: Bus, info: Callable[[], HandsInfo], *, every: float, ttl: float) -> None:
        self._bus = bus
        self._info = info
        self._every = every
        self._ttl = ttl
        self._task: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        self._nudged.set()

    async def __aenter__(self) -> Registration:
        await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="hands-heartbeat")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._task)
        try:
            await self._bus.unregister_hands(self._info().hands_id)
        except Exception:
            log.warning("could not unregister from the bus; the entry expires after %.0fs", self._ttl)

    async def beat(self) -> None:
        """Publish the worker's current state now; a bus outage only delays discovery, so it is logged."""
        try:
            await self._bus.register_hands(self._info(), ttl=self._ttl)
        except Exception as exc:
            log.warning("hands heartbeat failed: %s", exc)

    async def _beat_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every):  # not wait_for: it can swallow a cancellation
                    await self._nudged.wait()
            self._nudged.clear()
            await self.beat()
