"""Small helpers for the background tasks every loopd process runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Stop a background task and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def repeating(every: float, work: Callable[[], Awaitable[object]], *, name: str) -> AsyncIterator[None]:
    """Run `work` every `every` seconds in the background while the block runs.

    A round that fails is logged and the next one goes on: a background chore must not die of one
    bad round.
    """

    async def forever() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await work()
            except Exception:
                log.warning("%s failed; trying again in %.1fs", name, every, exc_info=True)

    task = asyncio.create_task(forever(), name=name)
    try:
        yield
    finally:
        await cancel_and_wait(task)
