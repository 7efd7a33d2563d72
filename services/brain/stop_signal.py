"""Watches a run while one of its tool calls is in flight, for a person asking it to stop (an interrupt
or a cancel), so the call can be cut short instead of running to its timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.core import events as event_log
from services.core.bus import run_channel
from services.core.db.engine import autocommit
from services.core.journal import Journal

STOPPING = (event_log.USER_INTERRUPT, event_log.RUN_CANCELLED)
# The bus brings the signal at once; the database is read this often in case its message was lost.
RECHECK_SECONDS = 2.0


async def wait_for_stop(journal: Journal, run_id: str, after_seq: int) -> str:
    """Return the type of the first stopping event appended after `after_seq`."""
    live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with journal.bus.subscribe(run_channel(run_id)) as messages:
        pump = asyncio.create_task(_pump(messages, live))
        try:
            while True:
                found = await _stopping_event(journal, run_id, after_seq)
                if found is not None:
                    return found
                # asyncio.timeout, unlike wait_for on Python 3.11, never swallows a cancellation
                # that lands as the queue yields, so cancelling this watcher always ends it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_SECONDS):
                        message = await live.get()
                    if message.get("type") in STOPPING:
                        return str(message["type"])
        finally:
            pump.cancel()


async def _pump(messages: AsyncIterator[dict[str, Any]], live: asyncio.Queue[dict[str, Any]]) -> None:
    async for message in messages:
        live.put_nowait(message)


async def _stopping_event(journal: Journal, run_id: str, after_seq: int) -> str | None:
    async with autocommit(journal.engine).connect() as conn:
        return await event_log.first_of_types(conn, run_id, STOPPING, after=after_seq)
