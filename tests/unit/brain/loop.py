"""The whole loop in one process: the gateway (through ASGI), a brain worker, and hands workers whose
call path the brain reaches through the in-process Hands adapter, with sandboxes from a fake driver.

PostgreSQL is the real one; the bus is the in-process one. Nothing here speaks gRPC or starts a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from services.brain.worker import BrainWorker
from services.core import events as event_log
from services.core import runs as run_store
from services.core.agents import AgentSpec
from services.core.artifacts import ArtifactStore, build_artifact_store
from services.core.bus import Bus, HandsInfo, run_channel
from services.core.db.engine import autocommit, create_engine
from services.core.db.schema import run_leases
from services.core.errors import HandsUnavailable
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app
from services.hands.calls.execute import Calls
from services.hands.calls.in_process import InProcessHands
from services.hands.calls.slots import Slots
from services.hands.contract import Hands
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    ReleaseRequest,
)
from services.hands.fleet.pool import SandboxPool
from services.hands.fleet.registry import Registration
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from services.hands.workspace.snapshots import Snapshots
from tests.unit.hands.workspace_driver import WorkspaceDriver

# Agents in these tests ride out infrastructure failures fast.
QUICK_RETRY = {"max_attempts": 3, "initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


def scripted(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An inline agent spec for the scripted model."""
    return {"name": "test", "model": "scripted", "script": list(turns), "retry": QUICK_RETRY, **fields}


def call(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"name": name, "input": tool_input}


class HandsInProcess:
    """One hands worker's call path and sandbox pool, registered on the bus under an in-process address."""

    def __init__(self, hands_id: str, settings: Settings, artifacts: ArtifactStore, root: Path) -> None:
        self.hands_id = hands_id
        self.address = f"inproc://{hands_id}"
        self.driver = WorkspaceDriver(prefix=f"{hands_id}-sb")
        self.pool = SandboxPool(self.driver, on_change=self._changed)
        self.slots = Slots(settings.hands_slots)
        calls = Calls(
            self.driver,
            self.pool,
            self.slots,
            Snapshots(self.driver, artifacts, owner=settings.sandbox_user),
            FilesystemLedger(root / "ledger"),
            default_timeout=settings.tool_timeout_seconds,
            output_cap=settings.tool_output_cap,
        )
        self.hands: Hands = InProcessHands(calls, self.pool, self.status)
        self.registration: Registration | None = None
        self.draining = False

    def drain(self) -> None:
        """Show the registry a stopping worker, as HandsWorker does from SIGTERM on."""
        self.draining = True
        self._changed()

    def status(self) -> HandsStatus:
        return HandsStatus(self.hands_id, self.slots.total, self.slots.free, self.pool.snapshot())

    def info(self) -> HandsInfo:
        status = self.status()
        return HandsInfo(
            hands_id=self.hands_id,
            address=self.address,
            slots_total=status.slots_total,
            slots_free=0 if self.draining else status.slots_free,
            sandboxes=tuple(s.run_id for s in status.sandboxes),
            labels={"state": "draining" if self.draining else "serving"},
        )

    def sandbox_of(self, run_id: str) -> str | None:
        return self.pool.sandbox_of(run_id)

    def _changed(self) -> None:
        if self.registration is not None:
            self.registration.nudge()


class _Reachable:
    """A worker's Hands as the network shows it: an address in `unreachable` fails every call, the way
    a channel to a worker that died does, and is noted in `refused`."""

    def __init__(self, address: str, hands: Hands, unreachable: set[str], refused: list[str]) -> None:
        self._address, self._hands, self._unreachable, self._refused = address, hands, unreachable, refused

    def _check(self) -> None:
        if self._address in self._unreachable:
            self._refused.append(self._address)
            raise HandsUnavailable(f"hands unavailable: {self._address} does not answer")

    async def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        self._check()
        async with aclosing(self._hands.execute(request)) as items:
            async for item in items:
                yield item

    async def release(self, request: ReleaseRequest) -> None:
        self._check()
        await self._hands.release(request)

    async def status(self) -> HandsStatus:
        self._check()
        return await self._hands.status()

    async def aclose(self) -> None:
        await self._hands.aclose()


class Loop:
    """Async context manager. `api` is the gateway's client; `hands` the hands workers by id."""

    def __init__(
        self, database_url: str, root: Path, *, hands: int = 1, brain: bool = True, **settings: Any
    ) -> None:
        """Without a `brain`, the test steps runs itself."""
        self.root = root
        self._with_brain = brain
        defaults: dict[str, Any] = {
            "bus_url": "local://",
            "artifacts_dir": root / "artifacts",
            "tenant": f"tenant-{secrets.token_hex(4)}",
            "brain_id": f"brain-{secrets.token_hex(3)}",
            # Only the runs a test wakes are stepped, never another test's leftovers.
            "sweep_interval_seconds": 3600.0,
            "hands_wait_seconds": 2.0,
            "hands_slots": 4,
            "hands_heartbeat_seconds": 0.2,
            "tool_timeout_seconds": 30.0,
            # The session's database is migrated once; a test with a database of its own migrates it.
            "migrate_on_start": False,
            "admin_key": mint(),
            # Tests start and poll every run with the one admin key; the brain is under test here,
            # not the gateway's per-key limits (tests/integration/gateway/test_rate_limits.py).
            "rate_limit_reads": "1000000/minute",
            "rate_limit_writes": "1000000/minute",
        }
        self.settings = Settings(database_url=database_url, **{**defaults, **settings})
        self.artifacts = build_artifact_store(self.settings)
        self.hands = {
            f"hands-{i}": HandsInProcess(f"hands-{i}", self.settings, self.artifacts, root / f"hands-{i}")
            for i in range(1, hands + 1)
        }
        self._by_address = {worker.address: worker for worker in self.hands.values()}
        self.unreachable: set[str] = set()
        # The unreachable addresses calls were sent to, in order.
        self.refused: list[str] = []
        self._exit = AsyncExitStack()

    async def connect(self, address: str) -> Hands:
        if address not in self._by_address:
            raise HandsUnavailable(f"hands {address} is unreachable")
        return _Reachable(address, self._by_address[address].hands, self.unreachable, self.refused)

    async def __aenter__(self) -> Loop:
        from services.core.bus.local import LocalBus

        self.bus: Bus = LocalBus(visibility_timeout=self.settings.wake_visibility_seconds)
        self._exit.push_async_callback(self.bus.aclose)
        self.engine = create_engine(self.settings, pool_size=4)
        self._exit.push_async_callback(self.engine.dispose)
        for worker in self.hands.values():
            worker.registration = await self._exit.enter_async_context(
                Registration(self.bus, worker.info, every=self.settings.hands_heartbeat_seconds, ttl=60.0)
            )
        self.brain: BrainWorker | None = None
        if self._with_brain:
            self.brain = await self._exit.enter_async_context(
                BrainWorker(self.settings, self.engine, self.bus, self.artifacts, connect=self.connect)
            )
        self.app = create_app(self.settings, bus=self.bus)
        await self._exit.enter_async_context(self.app.router.lifespan_context(self.app))
        self.api = await self._exit.enter_async_context(self.client(self.headers))
        return self

    def client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        """Another client of the gateway, e.g. with a key of another tenant; the caller closes it."""
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://loopd.test", headers=headers)

    @property
    def headers(self) -> dict[str, str]:
        assert self.settings.admin_key is not None
        return {"Authorization": f"Bearer {self.settings.admin_key.get_secret_value()}"}

    async def __aexit__(self, *exc_info: object) -> None:
        await self._exit.aclose()
        for worker in self.hands.values():
            await worker.pool.close()

    async def start(
        self,
        agent: dict[str, Any],
        task: str = "the task",
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> str:
        """`headers` carry another tenant's key; by default, the root tenant's admin key."""
        created = await self.api.post(
            "/v1/runs", json={"agent": agent, "input": task, **body}, headers=headers
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    async def create_unwoken(self, agent: dict[str, Any], task: str = "the task") -> str:
        """A run created as the gateway creates one, but whose wake-up never reached a brain."""
        spec = AgentSpec.model_validate(agent).model_dump(mode="json")
        async with self.engine.begin() as conn:
            row, _ = await run_store.create_run(
                conn,
                tenant=self.settings.tenant,
                spec=spec,
                agent_id=None,
                agent_version=None,
                user_input=task,
                metadata={},
            )
        return str(row.id)

    async def run(self, run_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.api.get(f"/v1/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until(
        self, run_id: str, *statuses: str, timeout: float = 20.0, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The run once it reaches one of `statuses`, looked at again each time the run commits events."""
        changed = asyncio.Event()
        async with self.bus.subscribe(run_channel(run_id)) as messages:
            pump = asyncio.create_task(_each_message(messages, changed.set))
            try:
                deadline = time.monotonic() + timeout
                while True:
                    changed.clear()
                    run = await self.run(run_id, headers)
                    if run["status"] in statuses:
                        return run
                    left = deadline - time.monotonic()
                    assert left > 0, f"run {run_id} is {run['status']}, not {' or '.join(statuses)}"
                    # A fan-out message may be lost (the bus promises no more), so look now and then too.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(left, 1.0)):
                            await changed.wait()
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)

    async def events(self, run_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        response = await self.api.get(f"/v1/runs/{run_id}/events", params={"limit": 5000}, headers=headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.api.post(path, json=body or {})


async def _each_message(messages: AsyncIterator[dict[str, Any]], seen: Callable[[], None]) -> None:
    async for _ in messages:
        seen()


async def holds_nothing(loop: Loop, run_id: str) -> bool:
    """No live lease on the run and no sandbox for it on any hands worker."""
    async with autocommit(loop.engine).connect() as conn:
        leased = (
            await conn.execute(
                select(run_leases.c.run_id).where(
                    run_leases.c.run_id == run_id, run_leases.c.expires_at > func.now()
                )
            )
        ).first()
    return leased is None and all(h.sandbox_of(run_id) is None for h in loop.hands.values())


def wire_event(run_id: str, event: dict[str, Any]) -> event_log.Event:
    """An event as the API showed it, back in the shape the fold takes."""
    return event_log.Event(
        run_id, event["seq"], event["type"], datetime.fromisoformat(event["at"]), event["data"]
    )


def of_type(events: list[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["type"] in types]
