"""The worker's call slots: at most `total` tool calls run at once; the rest wait their turn."""

from __future__ import annotations

import asyncio
from types import TracebackType


class Slots:
    def __init__(self, total: int) -> None:
        self.total = total
        self._in_use = 0
        self._semaphore = asyncio.Semaphore(total)

    @property
    def free(self) -> int:
        return self.total - self._in_use

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        self._in_use += 1

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._in_use -= 1
        self._semaphore.release()
