"""HandsWorker: the hands process's lifecycle around the gRPC server, its sandboxes and its registration.

Start: remove sandboxes a previous process with the same hands_id (of this stack) left behind, bind
and serve (every call but health checks must carry the stack's hands secret), start
filling the warm pool and the reaper, then register on the bus. Snapshots and the call ledger live
beside the artifact store, so every worker sharing it can take over any run. Stop (SIGTERM, or a
scale-in), within `hands_stop_seconds`: report NOT_SERVING and show the registry a draining worker,
so brains send it nothing new; hand back the calls still waiting for a slot; let the calls running
finish (each snapshots the workspace before its result) until the cleanup margin, and cut the rest
(the caller retries them from their base snapshot elsewhere); unregister, stop the reaper, and
destroy the warm and the remaining sandboxes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from contextlib import AsyncExitStack
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.core import metrics
from services.core.artifacts import ArtifactStore
from services.core.bus import Bus, HandsInfo
from services.core.errors import InfrastructureError
from services.core.identity import hands_secret, stack_id
from services.core.settings import Settings
from services.core.tasks import repeating
from services.hands.calls.execute import Calls
from services.hands.calls.in_process import InProcessHands
from services.hands.calls.servicer import HandsServicer
from services.hands.calls.slots import Slots
from services.hands.contract.api import HandsStatus
from services.hands.contract.auth import ServerAuth
from services.hands.contract.client import SERVER_OPTIONS
from services.hands.contract.proto import hands_pb2, hands_pb2_grpc
from services.hands.egress.gate import Egress
from services.hands.fleet.janitor import Janitor
from services.hands.fleet.pool import SandboxPool
from services.hands.fleet.reaper import Reaper
from services.hands.fleet.registry import Registration
from services.hands.fleet.warm import WarmSandboxes
from services.hands.sandbox import SandboxDriver, build_driver
from services.hands.workspace.ledger import CallLedger, build_ledger
from services.hands.workspace.snapshots import Snapshots

HANDS_LABEL = "loopd.hands_id"
# Which stack made the sandbox: stacks that share an engine and a registry address (two local
# stacks both on local://) still remove only their own.
STACK_LABEL = "loopd.stack"
# Which registry the owner registers in: a janitor only judges sandboxes of its own registry, so
# deployments that share a Docker engine leave each other's alone.
REGISTRY_LABEL = "loopd.registry"
SERVICE_NAME = hands_pb2.DESCRIPTOR.services_by_name["Hands"].full_name
# What a stopping worker keeps of its hands_stop_seconds to unregister and destroy its sandboxes.
CLEANUP_SECONDS = 10.0
log = logging.getLogger(__name__)


def registry_id(bus_url: str) -> str:
    without_password = re.sub(r"//[^/@]*@", "//", bus_url)
    return hashlib.sha256(without_password.encode()).hexdigest()[:12]


class HandsWorker:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        artifacts: ArtifactStore,
        *,
        driver: SandboxDriver | None = None,
        ledger: CallLedger | None = None,
    ) -> None:
        """`ledger` defaults to the one every worker sharing the artifacts directory shares."""
        self.hands_id = settings.hands_id or f"hands-{uuid.uuid4().hex[:12]}"
        self.address = ""
        self._settings = settings
        self._bus = bus
        self._artifacts = artifacts
        self._secret = hands_secret(settings)
        self._labels = {
            HANDS_LABEL: self.hands_id,
            REGISTRY_LABEL: registry_id(settings.bus_url),
            STACK_LABEL: stack_id(settings),
        }
        self._driver = driver
        self._owns_driver = driver is None
        # The proxy of networked sandboxes, started on first need (only with a driver of our own).
        self._egress = Egress(settings) if driver is None else None
        self._ledger = ledger or build_ledger(settings)
        self._slots = Slots(settings.hands_slots)
        self._pool: SandboxPool | None = None
        self._warm: WarmSandboxes | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._registration: Registration | None = None
        self._background = AsyncExitStack()
        self._draining = self._stopped = False
        self._started_at = 0.0
        self._readings = metrics.Readings(self.hands_id)

    async def __aenter__(self) -> HandsWorker:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    @property
    def egress(self) -> Egress | None:
        """The proxy of its networked sandboxes (None with a driver given from outside)."""
        return self._egress

    @property
    def warm_ready(self) -> int:
        """Warm sandboxes started and ready to be claimed."""
        return len(self._warm) if self._warm is not None else 0

    def status(self) -> HandsStatus:
        sandboxes = self._pool.snapshot() if self._pool else ()
        return HandsStatus(self.hands_id, self._slots.total, self._slots.free, sandboxes)

    def info(self) -> HandsInfo:
        """What the registry shows: a draining worker offers no free slots."""
        status = self.status()
        return HandsInfo(
            hands_id=self.hands_id,
            address=self.address,
            slots_total=status.slots_total,
            slots_free=0 if self._draining else status.slots_free,
            sandboxes=tuple(s.run_id for s in status.sandboxes),
            started_at=self._started_at,
            labels={"state": "draining" if self._draining else "serving"},
        )

    def _sandboxes_changed(self) -> None:
        if self._registration is not None:
            self._registration.nudge()

    async def _start(self) -> None:
        settings = self._settings
        self._started_at = time.time()
        if self._driver is None:
            self._driver = build_driver(settings, self._labels, self._egress)
        self._warm = warm = WarmSandboxes(self._driver, settings.hands_warm_pool)
        self._pool = pool = SandboxPool(
            self._driver,
            warm=warm,
            on_change=self._sandboxes_changed,
            max_sandboxes=settings.hands_max_sandboxes,
            tenant_limit=lambda tenant: settings.ceilings_for(tenant).live_sandboxes,
        )
        await pool.remove_orphans({HANDS_LABEL: self.hands_id, STACK_LABEL: self._labels[STACK_LABEL]})
        slots = self._slots
        self._readings.add(metrics.SLOTS_BUSY, lambda: slots.total - slots.free)
        self._readings.add(metrics.SLOTS_TOTAL, lambda: slots.total)
        self._readings.add(metrics.CALLS_WAITING, lambda: slots.waiting)
        self._readings.add(metrics.WARM_SANDBOXES, lambda: len(warm))
        self._readings.add(metrics.RUN_SANDBOXES, lambda: len(pool))
        calls = Calls(
            self._driver,
            pool,
            self._slots,
            Snapshots(
                self._driver,
                self._artifacts,
                owner=settings.sandbox_user,
                file_limit=settings.snapshot_file_max_size,
                touch_every=settings.artifacts_gc_grace_seconds / 4,
            ),
            self._ledger,
            default_timeout=settings.tool_timeout_seconds,
            output_cap=settings.tool_output_cap,
            workspace_size=settings.sandbox_workspace_size,
            workspace_max_size=settings.sandbox_workspace_max_size,
            snapshot_timeout=settings.snapshot_timeout_seconds,
            run_share=settings.hands_run_share,
            tenant=settings.tenant,
            ceilings=settings.ceilings_for,
            egress=self._egress,
        )
        servicer = HandsServicer(InProcessHands(calls, pool, self.status))
        self._server = server = grpc.aio.server(
            options=SERVER_OPTIONS, interceptors=[ServerAuth(self._secret)]
        )
        hands_pb2_grpc.add_HandsServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        port = server.add_insecure_port(settings.hands_listen)
        if port == 0:
            raise InfrastructureError(f"cannot listen on {settings.hands_listen}", retryable=False)
        host = settings.hands_listen.rpartition(":")[0]
        self.address = f"{settings.hands_advertise_host or host}:{port}"
        await server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        # Entered first so it is closed last: its sandboxes are destroyed after registration ends.
        await self._background.enter_async_context(warm)
        reaper = Reaper(pool, idle_seconds=settings.sandbox_idle_seconds)
        await self._background.enter_async_context(repeating(reaper.every, reaper.reap, name="hands-reaper"))
        janitor = Janitor(
            self._driver,
            self._bus,
            label=HANDS_LABEL,
            among={label: self._labels[label] for label in (REGISTRY_LABEL, STACK_LABEL)},
            own_id=self.hands_id,
            grace_seconds=settings.hands_orphan_grace_seconds,
        )
        await self._background.enter_async_context(
            repeating(janitor.every, janitor.sweep, name="hands-janitor")
        )
        self._registration = await self._background.enter_async_context(
            Registration(
                self._bus, self.info, every=settings.hands_heartbeat_seconds, ttl=settings.hands_ttl_seconds
            )
        )
        log.info("hands %s serving on %s with %d slots", self.hands_id, self.address, self._slots.total)

    async def _stop(self) -> None:
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        drain_ends = loop.time() + self._settings.hands_stop_seconds - CLEANUP_SECONDS
        self._stopped = self._draining = True
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            if self._registration is not None:
                await self._registration.beat()
            waiting, running = self._slots.waiting, self._slots.total - self._slots.free
            self._slots.close(f"hands worker {self.hands_id} is stopping")
            if self._warm is not None:
                await self._warm.stop_refilling()
            log.info("hands %s draining: %d calls running, %d handed back", self.hands_id, running, waiting)
            # New calls are refused at once; at the end of the grace, the calls still running are
            # cancelled, which kills what they started, and their callers retry them elsewhere.
            await self._server.stop(grace=max(drain_ends - loop.time(), 0.0))
            if cut := self._slots.total - self._slots.free:
                log.warning("hands %s cut %d calls at its stop deadline", self.hands_id, cut)
        # Unregisters, then stops the reaper.
        await self._background.aclose()
        if self._pool is not None:
            await self._pool.close()
        if self._driver is not None and self._owns_driver:
            await self._driver.aclose()
        if self._egress is not None:
            await self._egress.aclose()
        self._server = self._registration = self._pool = None
        self._readings.close()
        log.info("hands %s stopped", self.hands_id)
