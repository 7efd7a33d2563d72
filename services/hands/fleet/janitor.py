"""The janitor: removes sandboxes that hands workers which died without cleaning up left behind.

A hands worker destroys its sandboxes when it stops, and removes those of an earlier process with its
own hands id when it starts. One that is SIGKILLed (an OOM kill, a lost node) and never comes back
under the same id leaves its containers running on the engine. Every hands worker therefore looks at
the engine's loopd sandboxes now and then, and removes those whose owner has been missing from the
registry for the whole grace period. The grace period is far longer than a heartbeat, so an owner
that is only between heartbeats, or re-registering after Redis restarted, is never taken for dead;
and a sandbox younger than it is spared too, because a starting worker fills its warm pool before it
registers. Their runs lose nothing: a run's workspace lives in its snapshots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from services.core.bus import Bus
from services.hands.sandbox import SandboxDriver

log = logging.getLogger(__name__)


class Janitor:
    def __init__(
        self,
        driver: SandboxDriver,
        bus: Bus,
        *,
        label: str,
        among: Mapping[str, str],
        own_id: str,
        grace_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._driver = driver
        self._bus = bus
        self._label = label
        self._among = among
        self._own_id = own_id
        self._grace = grace_seconds
        self._clock = clock
        self._missing_since: dict[str, float] = {}
        self.every = max(grace_seconds / 4, 0.2)  # how often to sweep

    async def sweep(self) -> list[str]:
        """Remove the sandboxes of owners missing for the grace period; returns their ids."""
        # Raises if the registry cannot be read: with no list of the living, nobody is taken for dead.
        living = {info.hands_id for info in await self._bus.list_hands()} | {self._own_id}
        now = self._clock()
        sandboxes = await self._driver.labelled(self._label, self._among)
        owners = {s.value for s in sandboxes} - living
        self._missing_since = {owner: self._missing_since.get(owner, now) for owner in owners}
        removed = []
        for sandbox in sandboxes:
            missing_since = self._missing_since.get(sandbox.value)
            if missing_since is None or now - missing_since < self._grace:
                continue
            if now - sandbox.created_at < self._grace:
                continue
            await self._driver.destroy(sandbox.sandbox_id)
            removed.append(sandbox.sandbox_id)
            log.info(
                "removed sandbox %s of hands %s, gone from the registry",
                sandbox.sandbox_id[:12],
                sandbox.value,
            )
        return removed
