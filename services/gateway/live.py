"""A run's log, followed live: first what is stored after a seq, then each new event as the bus fans it
out, re-reading PostgreSQL whenever the bus is quiet or skipped one. The native event stream and the
session event stream both serve it; either ends once the caller's key stops working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from services.core import events as event_log
from services.core.bus import run_channel
from services.core.db.engine import autocommit
from services.gateway.auth import Caller, still_usable
from services.gateway.deps import GatewayServices

# How often a live stream re-reads PostgreSQL when the bus is quiet: a lost fan-out message
# costs at most this much latency.
CATCH_UP_SECONDS = 2.0
# How often a stream asks whether its key still works: a revoked key's stream ends this soon.
KEY_CHECK_SECONDS = 2.0


async def follow(
    services: GatewayServices, caller: Caller, run_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    """Every event after seq `after` as the API serves it (and live tool.output deltas, without a seq),
    until the caller's key is revoked or expires."""
    live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with services.bus.subscribe(run_channel(run_id)) as messages:
        # Subscribed before the first read, so nothing committed after it can be missed.
        pump = asyncio.create_task(_pump(messages, live))
        try:
            last = after
            behind = True
            key_checked = time.monotonic()
            while True:
                if time.monotonic() - key_checked >= KEY_CHECK_SECONDS:
                    if not await still_usable(services, caller):
                        return
                    key_checked = time.monotonic()
                if behind:
                    async for event in _catch_up(services, run_id, last):
                        last = event["seq"]
                        yield event
                    behind = False
                try:
                    # Not wait_for: on Python 3.11 it can swallow the cancellation of a closed stream.
                    async with asyncio.timeout(CATCH_UP_SECONDS):
                        message = await live.get()
                except TimeoutError:
                    behind = True
                    continue
                seq = message.get("seq")
                if seq is None:
                    yield message  # a live-only delta (tool.output), never persisted
                elif seq == last + 1:
                    last = seq
                    yield message
                elif seq > last + 1:
                    behind = True  # a fan-out message was lost: fill the gap from PostgreSQL
        finally:
            pump.cancel()


async def _pump(messages: AsyncIterator[dict[str, Any]], live: asyncio.Queue[dict[str, Any]]) -> None:
    async for message in messages:
        live.put_nowait(message)


async def _catch_up(services: GatewayServices, run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    while True:
        async with autocommit(services.engine).connect() as conn:
            page = await event_log.read(conn, run_id, after=after, limit=500)
        for event in page:
            yield event.to_wire()
        if len(page) < 500:
            return
        after = page[-1].seq
