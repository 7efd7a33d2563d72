"""The watcher a brain runs beside each tool call, on the real Redis bus and PostgreSQL: cancelled at
any moment (the call finished), it ends, so the step goes on and lets go of its lease."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.brain.stop_signal import wait_for_stop
from services.core.bus import build_bus
from services.core.journal import Journal


@pytest.fixture
async def journal(engine: AsyncEngine, redis_url: str) -> AsyncIterator[Journal]:
    bus = build_bus(redis_url)
    yield Journal(engine, bus)
    await bus.aclose()


async def test_a_watcher_cancelled_at_any_moment_ends(journal: Journal) -> None:
    outlived = []
    for attempt in range(60):
        watcher = asyncio.create_task(wait_for_stop(journal, f"run_{secrets.token_hex(6)}", after_seq=0))
        # A quick tool call (read_file) ends while its watcher still subscribes or reads the log.
        for _ in range(attempt % 30):
            await asyncio.sleep(0)
        watcher.cancel()
        done, _ = await asyncio.wait({watcher}, timeout=5)
        if not done:
            outlived.append(attempt)
            watcher.cancel()
            await asyncio.wait({watcher}, timeout=5)
    assert outlived == []
