"""A hands worker told to stop (SIGTERM, a scale-in) loses no call: it shows the registry that it is
draining, hands back the calls waiting for a slot, lets the running ones finish, cuts and hands back
what still runs at its deadline, and exits within `hands_stop_seconds`, unregistered and with no
sandbox left. The worker is real and served over gRPC on loopback; its sandboxes are in-memory fakes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.waiting import eventually
from services.core.artifacts import build_artifact_store
from services.core.bus import Bus, build_bus
from services.core.errors import HandsStopping, HandsUnavailable
from services.core.metrics import REGISTRY
from services.core.settings import Settings
from services.hands.contract import collect
from services.hands.contract.api import ExecuteRequest
from services.hands.contract.client import HandsClient
from services.hands.server import CLEANUP_SECONDS, HandsWorker
from tests.unit.hands.workspace_driver import WorkspaceDriver

SECRET = secrets.token_hex(16)


def bash(command: str, timeout: float = 60.0) -> ExecuteRequest:
    run_id = f"run_{secrets.token_hex(4)}"
    return ExecuteRequest(run_id, f"call_{secrets.token_hex(4)}", "bash", {"command": command}, timeout)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = build_bus("local://")
    yield bus
    await bus.aclose()


def start_worker(tmp_path: Path, bus: Bus, driver: WorkspaceDriver, **overrides: object) -> HandsWorker:
    settings = Settings.model_validate(
        {
            "hands_id": f"hands-stop-{secrets.token_hex(4)}",
            "hands_listen": "127.0.0.1:0",
            "hands_slots": 1,
            "hands_warm_pool": 0,
            "hands_heartbeat_seconds": 0.2,
            "hands_secret": SECRET,
            "bus_url": "local://",
            "data_dir": tmp_path / "data",
            "artifacts_dir": tmp_path / "artifacts",
            **overrides,
        }
    )
    return HandsWorker(settings, bus, build_artifact_store(settings), driver=driver)


def gauge(name: str, worker: HandsWorker) -> float | None:
    return REGISTRY.get_sample_value(name, {"hands_id": worker.hands_id})


async def test_a_stopping_worker_finishes_its_running_call_and_hands_back_the_waiting_one(
    tmp_path: Path, bus: Bus
) -> None:
    driver = WorkspaceDriver()
    worker = await start_worker(tmp_path, bus, driver).__aenter__()
    async with HandsClient(worker.address, secret=SECRET) as hands:
        running = asyncio.create_task(collect(hands, bash("sleep 1")))

        async def busy() -> bool:
            return gauge("loopd_hands_slots_busy", worker) == 1

        await eventually(busy)
        waiting = asyncio.create_task(collect(hands, bash("echo late")))

        async def queued() -> bool:
            return gauge("loopd_hands_calls_waiting", worker) == 1

        await eventually(queued)
        stopping = asyncio.create_task(worker.__aexit__(None, None, None))

        with pytest.raises(HandsStopping):
            await waiting

        async def draining() -> bool:
            listed = await bus.list_hands()
            return bool(listed) and listed[0].draining and listed[0].slots_free == 0

        await eventually(draining)
        assert not running.done()
        result = await running
        await stopping

    assert result.ok and result.snapshot_after is not None
    assert "echo late" not in driver.commands
    assert await bus.list_hands() == []
    assert driver.labels == {}, "every sandbox is destroyed"
    assert gauge("loopd_hands_calls_waiting", worker) is None


async def test_a_call_still_running_at_the_deadline_is_cut_and_handed_back_in_time(
    tmp_path: Path, bus: Bus
) -> None:
    stop_seconds = CLEANUP_SECONDS + 3
    driver = WorkspaceDriver()
    worker = await start_worker(tmp_path, bus, driver, hands_stop_seconds=stop_seconds).__aenter__()
    async with HandsClient(worker.address, secret=SECRET) as hands:
        endless = asyncio.create_task(collect(hands, bash("sleep 600", timeout=900)))

        async def busy() -> bool:
            return gauge("loopd_hands_slots_busy", worker) == 1

        await eventually(busy)
        started = time.monotonic()
        await worker.__aexit__(None, None, None)
        took = time.monotonic() - started

        with pytest.raises(HandsUnavailable):
            await endless

    assert stop_seconds - CLEANUP_SECONDS - 0.5 <= took < stop_seconds
    assert await bus.list_hands() == []
    assert driver.labels == {}


async def test_a_stopping_worker_refuses_new_calls(tmp_path: Path, bus: Bus) -> None:
    driver = WorkspaceDriver()
    worker = await start_worker(tmp_path, bus, driver).__aenter__()
    address = worker.address
    await worker.__aexit__(None, None, None)

    async with HandsClient(address, secret=SECRET) as hands:
        with pytest.raises(HandsUnavailable):
            await collect(hands, bash("echo too late"))
    assert driver.commands == []
