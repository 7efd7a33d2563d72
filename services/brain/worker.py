"""The brain worker: takes wake-ups from the bus, leases runs, steps them, and re-wakes stranded runs.

A wake-up is acked only after the work it triggered is committed (or found unnecessary), and the
sweeper re-wakes runs whose lease has lapsed, so a lost wake-up costs latency, never a run. In the
background it also collects the artifact store's unreferenced blobs (garbage.py) and queues again the
runs whose monthly quota wait ended with the month (ceilings.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine

from services.brain.admission import AdaptiveLimit
from services.brain.ceilings import MonthlyCeilings, requeue_reset
from services.brain.children import Children
from services.brain.dispatch import ToolDispatcher
from services.brain.garbage import build_collector
from services.brain.lease_keeper import LeaseKeeper
from services.brain.providers import ProviderPool
from services.brain.sandbox_claim import SandboxClaim
from services.brain.state_cache import StateCache
from services.brain.stepper import RunStepper
from services.core import leases, metrics, run_quota, tenants
from services.core import runs as run_store
from services.core.artifacts import ArtifactStore
from services.core.bus import Bus, WakeUp
from services.core.db.engine import autocommit
from services.core.errors import Conflict, LeaseLost
from services.core.events import Fence
from services.core.journal import Journal
from services.core.settings import Settings
from services.core.status import RUNNABLE_STATUSES, TERMINAL_STATUSES
from services.core.tasks import repeating
from services.hands.contract import Connect

logger = logging.getLogger(__name__)


class BrainWorker:
    """Async context manager: runs until `stop()` or exit, then drains in-flight steps."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        bus: Bus,
        artifacts: ArtifactStore,
        *,
        connect: Connect | None = None,
    ) -> None:
        """`connect` reaches hands workers (over gRPC unless given: in process, for example)."""
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.brain_id = (
            settings.brain_id or f"brain-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.admission = AdaptiveLimit(
            target_seconds=settings.brain_commit_latency_target_ms / 1000, ceiling=settings.brain_concurrency
        )
        self.journal = Journal(engine, bus, on_append=self._committed)
        self.dispatcher = ToolDispatcher(settings, bus, artifacts, self.journal, connect)
        self.children = Children(settings, self.journal)
        self.providers = ProviderPool(settings)
        self.states = StateCache(settings.brain_state_cache_size)
        self.ceilings = MonthlyCeilings(engine, settings.quota_cache_seconds)
        self._slots = asyncio.Semaphore(settings.brain_concurrency)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._woken_again: set[str] = set()  # runs in _active whose wake-up came again meanwhile
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._chores = AsyncExitStack()
        self._collector = build_collector(settings, engine, artifacts)
        self._readings = metrics.Readings(self.brain_id)

    def _committed(self, seconds: float) -> None:
        metrics.STEP_COMMIT_SECONDS.observe(seconds)
        self.admission.observe(seconds)

    async def __aenter__(self) -> BrainWorker:
        self._readings.add(metrics.RUNS_HELD, lambda: len(self._active))
        self._readings.add(metrics.ADMISSION_LIMIT, lambda: int(self.admission.limit))
        self._background = [asyncio.create_task(self._take_loop()), asyncio.create_task(self._sweep_loop())]
        await self._chores.enter_async_context(
            repeating(
                self.settings.artifacts_gc_interval_seconds, self._collector.collect, name="artifacts-gc"
            )
        )
        await self._chores.enter_async_context(
            repeating(self.settings.sweep_interval_seconds, self.requeue_reset_quotas, name="quota-resets")
        )
        logger.info("brain %s started", self.brain_id)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self, drain_seconds: float = 20.0) -> None:
        self._stopping.set()
        await self._chores.aclose()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._active:
            # Finish the current steps; whatever is still running after the grace period is
            # cancelled, and its lease lapses for another brain to take over.
            _, pending = await asyncio.wait(list(self._active.values()), timeout=drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.dispatcher.aclose()
        await self.providers.aclose()
        self._readings.close()

    async def _take_loop(self) -> None:
        while not self._stopping.is_set():
            await self._slots.acquire()
            await self.admission.room(lambda: len(self._active))
            try:
                wakeup = await self.bus.take(self.brain_id, timeout=1.0)
            except Exception:
                self._slots.release()
                logger.warning("bus unavailable; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if wakeup is None or wakeup.run_id in self._active:
                self._slots.release()
                if wakeup is not None:
                    self._woken_again.add(wakeup.run_id)
                    await self._ack_quietly(wakeup)
                continue
            task = asyncio.create_task(self._handle(wakeup))
            self._active[wakeup.run_id] = task

    async def _handle(self, wakeup: WakeUp) -> None:
        deferred = False
        try:
            deferred = await self._step_run(wakeup.run_id)
            await self.bus.ack(wakeup)
        except Exception:
            # Left unacked: the wake-up is delivered again after the visibility timeout.
            logger.exception("stepping run %s failed", wakeup.run_id)
        finally:
            self._active.pop(wakeup.run_id, None)
            woken_again = wakeup.run_id in self._woken_again
            self._woken_again.discard(wakeup.run_id)
            self._slots.release()
            self.admission.changed()
        if deferred and woken_again:
            # A drive in flight covers a wake-up that comes meanwhile, but a deferral does not: the
            # wake-up may say that a slot freed after we counted.
            await self._wake_quietly(wakeup.run_id)

    async def _step_run(self, run_id: str) -> bool:
        """Take the run and drive it; True if it was left queued because its tenant is at its quota."""
        asked_at = time.monotonic()
        taken = await run_quota.take(self.engine, run_id, self.brain_id, self.settings.lease_seconds)
        if taken.fence is None:
            # Another brain holds it and will see whatever woke us; or the tenant's runs are at their
            # quota, and whichever of them ends first wakes the next (the sweeper does too).
            if taken.deferred:
                metrics.RUNS_DEFERRED.inc()
            return taken.deferred
        fence = taken.fence
        keeper = LeaseKeeper(self.engine, run_id, fence, self.settings.lease_seconds, asked_at)
        claim = SandboxClaim(self.engine, self.bus, keeper, taken.tenant, taken.quotas.max_sandboxes)
        stepping = asyncio.current_task()

        def stop_stepping() -> None:
            if stepping is not None:
                stepping.cancel()

        renewer = asyncio.create_task(keeper.keep(on_lost=stop_stepping))
        stepper = RunStepper(
            self.settings,
            self.journal,
            self.dispatcher,
            self.providers,
            keeper,
            self.states.take(run_id),
            sandbox=claim,
            ceilings=self.ceilings,
        )
        try:
            await stepper.drive()
            self.states.keep(stepper.state)
        except LeaseLost:
            logger.warning("brain %s lost the lease of run %s; stopping", self.brain_id, run_id)
            return False
        except Conflict:
            # The run ended under us (cancelled): free its sandbox.
            await self.dispatcher.release(stepper.state)
        except Exception:
            # Hand the run back at once (if the database lets us) so the sweeper's next pass can
            # give it to a healthy brain instead of waiting for the lease to lapse.
            await self._release_quietly(run_id, fence)
            await self._let_go(taken, claim)
            raise
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        async with autocommit(self.engine).connect() as conn:
            await leases.release(conn, run_id, fence)
            row = await run_store.progress(conn, run_id)
        await self._let_go(taken, claim)
        if row.status in RUNNABLE_STATUSES and row.last_seq > stepper.state.last_seq:
            await self.bus.wake(run_id)  # something arrived while we were finishing
        if row.status in TERMINAL_STATUSES and row.parent_run_id is not None:
            await self.children.deliver_to_parent(run_id)
        return False

    async def _let_go(self, taken: run_quota.Taken, claim: SandboxClaim) -> None:
        """Once a run's lease is released: what it held of its tenant's quotas goes to runs that wait."""
        await claim.announce_freed()
        limit = taken.quotas.max_running_runs
        if limit is None:
            return
        try:
            async with autocommit(self.engine).connect() as conn:
                waiting = await run_quota.next_in_line(conn, taken.tenant, limit, excluding=taken.run_id)
        except Exception:
            logger.info(
                "could not find the runs of tenant %s waiting for a slot; the sweeper will", taken.tenant
            )
            return
        for run_id in waiting:
            await self._wake_quietly(run_id)

    async def _wake_quietly(self, run_id: str) -> None:
        """Wake a run waiting for a slot; if the bus fails, the sweeper wakes it instead."""
        try:
            await self.bus.wake(run_id)
        except Exception:
            logger.info("could not wake run %s; the sweeper will", run_id)

    async def requeue_reset_quotas(self) -> None:
        """Wake the runs whose monthly quota wait ended with the month."""
        for run_id in await requeue_reset(self.journal):
            await self.bus.wake(run_id)

    async def _ack_quietly(self, wakeup: WakeUp) -> None:
        """Ack a wake-up the run's drive in flight covers; this loop must not die of the bus failing."""
        try:
            await self.bus.ack(wakeup)
        except Exception:
            logger.warning("could not ack a wake-up of run %s; it comes back later", wakeup.run_id)

    async def _release_quietly(self, run_id: str, fence: Fence) -> None:
        try:
            async with autocommit(self.engine).connect() as conn:
                await leases.release(conn, run_id, fence)
        except Exception:
            logger.info("could not release the lease of run %s; it will lapse", run_id)

    async def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                for run_id in await self._stranded_runs():
                    await self.bus.wake(run_id)
                for child_id in await self._undelivered_children():
                    await self.children.deliver_to_parent(child_id)
            except Exception:
                logger.warning("sweep failed", exc_info=True)

    async def _undelivered_children(self) -> list[str]:
        async with autocommit(self.engine).connect() as conn:
            return await run_store.undelivered_children(conn, limit=100)

    async def _stranded_runs(self) -> list[str]:
        """Runnable runs nobody holds: of tenants that limit their running runs, only as many as have a
        free slot (oldest first), so a long queue is not woken, and turned away, on every sweep."""
        async with autocommit(self.engine).connect() as conn:
            limits = await tenants.running_limits(conn)
            stranded = await run_store.stranded_runs(
                conn, quiet_seconds=self.settings.sweep_interval_seconds, limit=200, except_tenants=limits
            )
            return stranded + await run_quota.waiting_for_slots(conn, limits)
