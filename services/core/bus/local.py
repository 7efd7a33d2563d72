"""In-process bus for the single-process embedded stack and for tests.

It follows the same delivery rules as the Redis bus: a wake-up taken and not acked within the
visibility timeout is delivered again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from services.core.bus import HandsInfo, WakeUp


@dataclass
class _InFlight:
    wakeup: WakeUp
    deadline: float


class LocalBus:
    def __init__(self, *, visibility_timeout: float = 30.0) -> None:
        self._visibility_timeout = visibility_timeout
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._in_flight: dict[str, _InFlight] = {}
        self._ids = itertools.count(1)
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._hands: dict[str, tuple[HandsInfo, float]] = {}

    async def wake(self, run_id: str) -> None:
        self._queue.put_nowait(run_id)

    async def take(self, consumer: str, timeout: float) -> WakeUp | None:
        self._redeliver_expired()
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which can swallow a cancellation
                run_id = await self._queue.get()
        except TimeoutError:
            self._redeliver_expired()
            return None
        wakeup = WakeUp(run_id=run_id, delivery_id=str(next(self._ids)))
        self._in_flight[wakeup.delivery_id] = _InFlight(wakeup, time.monotonic() + self._visibility_timeout)
        return wakeup

    async def ack(self, wakeup: WakeUp) -> None:
        self._in_flight.pop(wakeup.delivery_id, None)

    def _redeliver_expired(self) -> None:
        now = time.monotonic()
        for delivery_id, entry in list(self._in_flight.items()):
            if entry.deadline <= now:
                del self._in_flight[delivery_id]
                self._queue.put_nowait(entry.wakeup.run_id)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        for queue in self._subscribers.get(channel, ()):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.setdefault(channel, set()).add(queue)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            subscribers = self._subscribers.get(channel, set())
            subscribers.discard(queue)
            if not subscribers:
                self._subscribers.pop(channel, None)

    async def register_hands(self, info: HandsInfo, ttl: float) -> None:
        self._hands[info.hands_id] = (info, time.monotonic() + ttl)

    async def unregister_hands(self, hands_id: str) -> None:
        self._hands.pop(hands_id, None)

    async def list_hands(self) -> list[HandsInfo]:
        now = time.monotonic()
        return [info for info, expires in self._hands.values() if expires > now]

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._subscribers.clear()
