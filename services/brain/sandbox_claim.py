"""A run's claim on one of its tenant's sandboxes (Quotas.max_sandboxes), taken for one drive.

The dispatcher takes it before the drive's first tool call; it ends when the brain lets go of the
run's lease (see core/sandbox_quota.py). A run whose tenant's runs hold every sandbox of the quota
waits here, holding nothing but its lease: it looks again whenever a brain says a claim of the tenant
was let go, and every few seconds in case that message was lost or its brain died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.brain.lease_keeper import LeaseKeeper
from services.core import metrics, sandbox_quota
from services.core.bus import Bus
from services.core.errors import LeaseLost

logger = logging.getLogger(__name__)

# A claim freed without a message (its brain died and the lease lapsed) is seen within this.
RECHECK_SECONDS = 2.0


class SandboxClaim:
    def __init__(
        self, engine: AsyncEngine, bus: Bus, lease: LeaseKeeper, tenant: str, limit: int | None
    ) -> None:
        """`limit` is the tenant's max_sandboxes; None: the run needs no claim."""
        self._engine = engine
        self._bus = bus
        self._lease = lease
        self.tenant = tenant
        self.limit = limit
        self.held = False

    @property
    def needed(self) -> bool:
        return self.limit is not None and not self.held

    async def try_now(self) -> bool:
        """Claim a sandbox if the tenant has one free; whether the run holds one. Raises LeaseLost if the
        run's lease is no longer ours."""
        return not self.needed or await self._try()

    async def wait(self, within: float) -> bool:
        """Claim a sandbox, waiting up to `within` seconds for one; whether the run holds one."""
        if not self.needed:
            return True
        started, outcome = time.monotonic(), "stopped"
        logger.info(
            "run %s waits for one of tenant %s's %s sandboxes", self._lease.run_id, self.tenant, self.limit
        )
        freed = asyncio.Event()
        try:
            async with self._bus.subscribe(sandbox_quota.freed_channel(self.tenant)) as messages:
                pump = asyncio.create_task(_each(messages, freed.set))
                try:
                    while not await self._try():
                        left = started + within - time.monotonic()
                        if left <= 0:
                            outcome = "timeout"
                            return False
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(min(left, RECHECK_SECONDS)):
                                await freed.wait()
                        freed.clear()
                    outcome = "claimed"
                    return True
                finally:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
        finally:
            metrics.SANDBOX_QUOTA_WAIT_SECONDS.labels(outcome).observe(time.monotonic() - started)

    async def announce_freed(self) -> None:
        """Once the run's lease is let go: tell the tenant's runs waiting for a sandbox (best effort)."""
        if not self.held:
            return
        self.held = False
        try:
            await self._bus.publish(sandbox_quota.freed_channel(self.tenant), {"run_id": self._lease.run_id})
        except Exception:
            logger.info(
                "could not announce the sandbox run %s freed; waiting runs look again soon",
                self._lease.run_id,
            )

    async def _try(self) -> bool:
        assert self.limit is not None
        lease = self._lease
        async with self._engine.begin() as conn:
            outcome = await sandbox_quota.claim(conn, lease.run_id, lease.fence, self.tenant, self.limit)
        if outcome is sandbox_quota.Claim.LOST:
            raise LeaseLost(f"the lease of run {lease.run_id} was lost")
        self.held = outcome is sandbox_quota.Claim.TAKEN
        return self.held


async def _each(messages: AsyncIterator[dict[str, Any]], seen: Callable[[], None]) -> None:
    async for _ in messages:
        seen()
