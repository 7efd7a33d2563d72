"""Keeps a run's lease renewed while a brain steps it, and knows when it is certainly still held.

Between renewals the lease is ours for sure (nobody can take an unexpired lease), so a check before a
model call costs a database read only when the last renewal is old: after a long pause, for example.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import leases
from services.core.db.engine import autocommit
from services.core.errors import LeaseLost
from services.core.events import Fence

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self, engine: AsyncEngine, run_id: str, fence: Fence, ttl_seconds: float, renewed_at: float
    ) -> None:
        """`renewed_at` is the monotonic time just before the transaction that took or renewed the lease."""
        self.engine = engine
        self.run_id = run_id
        self.fence = fence
        self.ttl_seconds = ttl_seconds
        self.renewed_at = renewed_at

    async def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew every third of the lease time until cancelled; call `on_lost` if it was taken."""
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            started = time.monotonic()
            try:
                async with autocommit(self.engine).connect() as conn:  # one statement
                    held = await leases.renew(conn, self.run_id, self.fence, self.ttl_seconds)
            except Exception:
                logger.warning("could not renew the lease of run %s", self.run_id, exc_info=True)
                continue
            if not held:
                logger.warning("%s lost the lease of run %s; stopping", self.fence.owner, self.run_id)
                on_lost()
                return
            self.renewed_at = started

    async def ensure(self) -> None:
        """Raise LeaseLost unless the lease is still ours."""
        if time.monotonic() - self.renewed_at < self.ttl_seconds / 2:
            return
        async with autocommit(self.engine).connect() as conn:
            if not await leases.holds(conn, self.run_id, self.fence):
                raise LeaseLost(f"the lease of run {self.run_id} was lost")
