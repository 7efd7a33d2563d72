"""Commits appends to the event log and then fans the new events out on the bus.

Publishing happens only after the commit, so a live subscriber never sees an event that could still
roll back; a lost publish costs latency only, because readers catch up from PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import events as event_log
from services.core.bus import Bus, run_channel
from services.core.db.engine import autocommit

logger = logging.getLogger(__name__)


class Journal:
    def __init__(
        self, engine: AsyncEngine, bus: Bus, on_append: Callable[[float], None] = lambda seconds: None
    ) -> None:
        """`on_append` is told how long each append took (checkout, statement, fan-out)."""
        self.engine = engine
        self.bus = bus
        self.on_append = on_append

    async def append(self, request: event_log.Append) -> list[event_log.Event]:
        started = time.monotonic()
        # An append is one statement, so it needs no BEGIN and COMMIT round trips of its own.
        async with autocommit(self.engine).connect() as conn:
            appended = await event_log.append(conn, request)
        await self.publish(appended)
        self.on_append(time.monotonic() - started)
        return appended

    async def publish(self, appended: list[event_log.Event]) -> None:
        for event in appended:
            await self.publish_live(event.run_id, event.to_wire())

    async def publish_live(self, run_id: str, message: dict[str, Any]) -> None:
        try:
            await self.bus.publish(run_channel(run_id), message)
        except Exception:  # the log is already committed; subscribers catch up from PostgreSQL
            logger.warning("live fan-out failed for run %s", run_id, exc_info=True)
