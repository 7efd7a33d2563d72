"""The worker's sandboxes: one per run while in use, taken on the run's first call, reaped when idle.

A run's first call claims a started sandbox from the worker's WarmSandboxes when one is ready, and
starts one otherwise. The pool holds at most `max_sandboxes`, and a tenant's runs at most their
`tenant_limit`: a new one first removes the least recently used idle sandboxes beyond the limit
(their runs lose nothing: a run's workspace lives in its snapshots).

Calls of one run are serialised by a per-run lock: a timeout kills every process in the sandbox, which
must not take a concurrent call of the same run down with it. Each sandbox comes with the Workspace
that knows what its /workspace holds, forgotten with the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

from services.core.metrics import SANDBOX_ACQUIRE_SECONDS
from services.hands.contract.api import SandboxStatus
from services.hands.contract.profile import RUNC, SandboxProfile
from services.hands.egress.environment import networked
from services.hands.fleet.warm import WarmSandboxes
from services.hands.sandbox import CreateSandbox, SandboxDriver
from services.hands.workspace.state import Workspace

RUN_LABEL = "loopd.run_id"
log = logging.getLogger(__name__)


@dataclass
class _Held:
    """What the pool knows of one run's sandbox."""

    status: SandboxStatus
    workspace: Workspace
    size: int | None  # of its /workspace; None: the driver's default
    tenant: str
    shape: SandboxProfile | None  # what it was made for (see shape_of)


@dataclass(frozen=True)
class Assignment:
    """A run's sandbox, as a call gets it: `created` if it became the run's for this call."""

    sandbox_id: str
    created: bool
    workspace: Workspace


def shape_of(profile: SandboxProfile | None) -> SandboxProfile | None:
    """What a sandbox is made from: None for the worker's default; the byte budget, which changes
    from call to call, left out (each call sets it anew)."""
    if profile is None:
        return None
    network = profile.network
    default = (
        not profile.image
        and profile.runtime in ("", RUNC)
        and profile.cpus is None
        and profile.memory_bytes is None
        and profile.pids is None
        and not networked(network)
    )
    return None if default else replace(profile, network=replace(network, byte_budget=None))


class _RunLocks:
    """One lock per run, forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, run_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(run_id, (asyncio.Lock(), 0))
        self._locks[run_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[run_id]
            if users == 1:
                del self._locks[run_id]
            else:
                self._locks[run_id] = (lock, users - 1)

    def busy(self, run_id: str) -> bool:
        return run_id in self._locks


class SandboxPool:
    def __init__(
        self,
        driver: SandboxDriver,
        *,
        clock: Callable[[], float] = time.time,
        warm: WarmSandboxes | None = None,
        on_change: Callable[[], None] = lambda: None,
        max_sandboxes: int | None = None,
        tenant_limit: Callable[[str], int] | None = None,
    ) -> None:
        """`on_change` is told whenever a run gets a sandbox, so the registry can say so soon."""
        self._driver = driver
        self._warm = warm
        self._on_change = on_change
        self._clock = clock
        self._max = max_sandboxes
        self._tenant_limit = tenant_limit
        self._held: dict[str, _Held] = {}
        self._locks = _RunLocks()

    def __len__(self) -> int:
        """Sandboxes held by runs."""
        return len(self._held)

    def locked(self, run_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the run's lock; `ensure`, `discard` and `touch` expect it held."""
        return self._locks.hold(run_id)

    async def ensure(
        self,
        run_id: str,
        workspace_size: int | None = None,
        tenant: str = "",
        profile: SandboxProfile | None = None,
    ) -> Assignment:
        """The run's live sandbox, or a fresh one if it has none, its sandbox died while idle, or its
        /workspace has another size (None: the driver's default, which warm sandboxes have), or its
        profile changed. Warm sandboxes only serve runs of the default profile."""
        shape = shape_of(profile)
        held = self._held.get(run_id)
        if held is not None:
            same = held.size == workspace_size and held.shape == shape
            if same and await self._driver.alive(held.status.sandbox_id):
                return Assignment(held.status.sandbox_id, created=False, workspace=held.workspace)
            await self.discard(run_id)
        await self._make_room(tenant, room=1)
        started, start = time.perf_counter(), "warm"
        warm = self._warm if workspace_size is None and shape is None else None
        sandbox_id = await warm.claim() if warm is not None else None
        if sandbox_id is None:
            create = CreateSandbox(labels={RUN_LABEL: run_id}, workspace_size=workspace_size, profile=shape)
            sandbox_id, start = await self._driver.create(create), "cold"
        SANDBOX_ACQUIRE_SECONDS.labels(start).observe(time.perf_counter() - started)
        now = self._clock()
        status = SandboxStatus(run_id, sandbox_id, created_at=now, last_used_at=now)
        workspace = Workspace(sandbox_id)
        self._held[run_id] = _Held(status, workspace, workspace_size, tenant, shape)
        self._on_change()
        log.info("created sandbox %s for run %s", sandbox_id[:12], run_id)
        return Assignment(sandbox_id, created=True, workspace=workspace)

    def touch(self, run_id: str) -> None:
        held = self._held.get(run_id)
        if held is not None:
            held.status = replace(held.status, last_used_at=self._clock())

    def at(self, run_id: str, snapshot_id: str) -> bool:
        """Whether the run holds a sandbox whose /workspace is known to equal the snapshot."""
        held = self._held.get(run_id)
        return held is not None and held.workspace.at(snapshot_id)

    def sandbox_of(self, run_id: str) -> str | None:
        held = self._held.get(run_id)
        return held.status.sandbox_id if held else None

    async def discard(self, run_id: str) -> None:
        held = self._held.get(run_id)
        if held is not None:
            # Forgotten only once destroyed: the status never hides a container that still exists.
            await self._driver.destroy(held.status.sandbox_id)
            self._held.pop(run_id, None)
            log.info("destroyed sandbox %s of run %s", held.status.sandbox_id[:12], run_id)

    async def release(self, run_id: str) -> None:
        async with self._locks.hold(run_id):
            await self.discard(run_id)

    async def reap(self, idle_seconds: float) -> list[str]:
        """Destroy sandboxes unused for `idle_seconds`; returns the run ids reaped."""
        cutoff = self._clock() - idle_seconds
        idle = [run_id for run_id, held in self._held.items() if held.status.last_used_at < cutoff]
        reaped = []
        for run_id in idle:
            if self._locks.busy(run_id):
                continue
            async with self._locks.hold(run_id):
                held = self._held.get(run_id)
                if held is not None and held.status.last_used_at < cutoff:
                    await self.discard(run_id)
                    reaped.append(run_id)
        return reaped

    async def trim(self) -> list[str]:
        """Remove the least recently used idle sandboxes beyond the limits; returns their run ids."""
        removed = []
        for tenant in [*{held.tenant for held in self._held.values()}, None]:
            removed += await self._make_room(tenant)
        return removed

    async def _make_room(self, tenant: str | None, *, room: int = 0) -> list[str]:
        """Remove idle sandboxes, least recently used first, until the pool and `tenant`'s runs (if
        named) are `room` below their limits. A sandbox whose run has a call running or waiting is
        never removed: the pool stays over its limit until one is idle, and the reaper trims it then."""
        removed: list[str] = []
        while (among := self._over(tenant, room)) is not None:
            idle = [run_id for run_id in among if not self._locks.busy(run_id)]
            if not idle:
                log.warning("over the sandbox limit with every sandbox in use; trimming later")
                break
            oldest = min(idle, key=lambda run_id: self._held[run_id].status.last_used_at)
            async with self._locks.hold(oldest):
                await self.discard(oldest)
            removed.append(oldest)
            log.info("removed the idle sandbox of run %s: the pool was at its limit", oldest)
        return removed

    def _over(self, tenant: str | None, room: int) -> list[str] | None:
        """The runs to take a sandbox from while over a limit; None when within every limit."""
        if tenant is not None and self._tenant_limit is not None:
            runs = [run_id for run_id, held in self._held.items() if held.tenant == tenant]
            if len(runs) + room > self._tenant_limit(tenant):
                return runs
        if self._max is not None and len(self._held) + room > self._max:
            return list(self._held)
        return None

    async def remove_orphans(self, labels: Mapping[str, str]) -> int:
        """Remove sandboxes carrying `labels` that this pool does not know (a previous process's)."""
        known = {held.status.sandbox_id for held in self._held.values()}
        orphans = [sandbox_id for sandbox_id in await self._driver.find(labels) if sandbox_id not in known]
        for sandbox_id in orphans:
            await self._driver.destroy(sandbox_id)
        if orphans:
            log.info("removed %d orphaned sandboxes", len(orphans))
        return len(orphans)

    async def close(self) -> None:
        """Destroy every sandbox, side by side (a stopping worker has seconds left); the caller has
        drained the calls first."""

        async def destroy(run_id: str) -> None:
            try:
                await self.discard(run_id)
            except Exception:
                log.exception("could not destroy the sandbox of run %s", run_id)

        await asyncio.gather(*(destroy(run_id) for run_id in list(self._held)))

    def snapshot(self) -> tuple[SandboxStatus, ...]:
        return tuple(held.status for held in self._held.values())
