"""How many runs a brain holds at once, adapted to how long its commits take.

Every run a brain holds comes back now and then (a model reply, a tool result) and must commit what
arrived at once. Taking a run costs a burst of work (lease, load, rebuild, commits) in the brain and
in PostgreSQL, so a brain that took every wake-up as it came would, past what the machine can do,
make the commits of the runs it holds wait behind the newcomers: latency for all instead of a queue.
The limit works like a congestion window: it grows while commits stay under the target and
wake-ups wait for room, and shrinks when commits are slower (additive increase, multiplicative
decrease, judged a window of time at a time). A window without commits counts as fast, so runs
that wait long on their model let the limit grow up to LOOPD_BRAIN_CONCURRENCY. Runs not taken
yet wait in the bus, where another brain may take them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

WINDOW_SECONDS = 0.25
GROWTH = 0.1
BACK_OFF = 0.75
FIRST_LIMIT = 16


class AdaptiveLimit:
    def __init__(
        self,
        target_seconds: float,
        ceiling: int,
        floor: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target_seconds = target_seconds
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.limit = float(min(ceiling, max(self.floor, FIRST_LIMIT)))
        self._clock = clock
        self._samples: list[float] = []
        self._window_started = clock()
        self._pressed = False  # a run waited for room during this window
        self._room = asyncio.Event()

    def observe(self, seconds: float) -> None:
        """One commit's latency (pool checkout, statement, fan-out)."""
        self._samples.append(seconds)
        self._roll()

    async def room(self, held: Callable[[], int]) -> None:
        """Return once `held()` runs are fewer than the limit."""
        while True:
            self._roll()
            if held() < int(self.limit):
                return
            self._pressed = True
            self._room.clear()
            # Wake at the window's end too: a window without commits may let the limit grow.
            left = self._window_started + WINDOW_SECONDS - self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(left, 0.001)):
                    await self._room.wait()

    def changed(self) -> None:
        """A held run was let go: waiters look again."""
        self._room.set()

    def _roll(self) -> None:
        """At the end of a window, judge its commits and start the next one."""
        if self._clock() - self._window_started < WINDOW_SECONDS:
            return
        ordered = sorted(self._samples)
        slow = bool(ordered) and ordered[int(0.9 * (len(ordered) - 1))] > self.target_seconds
        if slow:
            self.limit = max(float(self.floor), self.limit * BACK_OFF)
        elif self._pressed:
            self.limit = min(float(self.ceiling), self.limit + max(1.0, self.limit * GROWTH))
        self._samples.clear()
        self._pressed = False
        self._window_started = self._clock()
        self._room.set()
