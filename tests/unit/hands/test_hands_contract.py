"""The Hands contract, passed by both backends: the call path in process, and the same call path
behind the gRPC servicer reached through HandsClient on a loopback port. Sandboxes are fakes with an
in-memory /workspace, so no container engine is needed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from harness.waiting import eventually
from services.core.artifacts.filesystem import FilesystemArtifactStore
from services.core.errors import InvalidRequest
from services.hands.calls.execute import Calls
from services.hands.calls.in_process import InProcessHands
from services.hands.calls.servicer import HandsServicer
from services.hands.calls.slots import Slots
from services.hands.contract import Hands, collect
from services.hands.contract.api import (
    SANDBOX_LOST,
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    ReleaseRequest,
)
from services.hands.contract.auth import ServerAuth
from services.hands.contract.client import HandsClient
from services.hands.contract.proto import hands_pb2_grpc
from services.hands.fleet.pool import SandboxPool
from services.hands.workspace.ledger.filesystem import FilesystemLedger
from services.hands.workspace.snapshots import Snapshots
from tests.unit.hands.workspace_driver import WorkspaceDriver


@dataclass
class Worker:
    hands: Hands
    driver: WorkspaceDriver
    slots: Slots


@pytest.fixture(params=["in_process", "grpc"])
async def worker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Worker]:
    driver = WorkspaceDriver()
    pool = SandboxPool(driver)
    slots = Slots(2)
    artifacts = FilesystemArtifactStore(tmp_path / "artifacts")
    calls = Calls(
        driver,
        pool,
        slots,
        Snapshots(driver, artifacts, owner="1000:1000"),
        FilesystemLedger(tmp_path / "ledger"),
        default_timeout=30.0,
        output_cap=1 << 20,
    )
    in_process = InProcessHands(
        calls, pool, lambda: HandsStatus("h", slots.total, slots.free, pool.snapshot())
    )
    if request.param == "in_process":
        yield Worker(in_process, driver, slots)
    else:
        secret = secrets.token_hex(16)
        server = grpc.aio.server(interceptors=[ServerAuth(secret)])
        hands_pb2_grpc.add_HandsServicer_to_server(HandsServicer(in_process), server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with HandsClient(f"127.0.0.1:{port}", secret=secret) as client:
                yield Worker(client, driver, slots)
        finally:
            await server.stop(grace=None)
    await pool.close()


def bash(run_id: str, call_id: str, command: str, base: str | None = None) -> ExecuteRequest:
    return ExecuteRequest(run_id, call_id, "bash", {"command": command}, 10.0, base_snapshot=base)


async def test_a_call_streams_its_output_then_one_result_with_the_snapshot_after(worker: Worker) -> None:
    run_id = f"run_{secrets.token_hex(4)}"
    write = ExecuteRequest(run_id, "w", "write_file", {"path": "a", "content": "x"}, 10.0)
    written = await collect(worker.hands, write)

    async with aclosing(worker.hands.execute(bash(run_id, "c", "cat a", written.snapshot_after))) as items:
        seen = [item async for item in items]

    *chunks, result = seen
    assert chunks == [OutputChunk("stdout", "x")]
    assert isinstance(result, ExecuteResult) and result.ok and result.output == "x"
    assert result.snapshot_after is not None and not result.replayed


async def test_a_call_sent_again_replays_its_recorded_result(worker: Worker) -> None:
    run_id = f"run_{secrets.token_hex(4)}"
    first = await collect(worker.hands, bash(run_id, "c", "echo once"))

    again = await collect(worker.hands, bash(run_id, "c", "echo once"))

    assert again.replayed and again.output == first.output == "once\n"
    assert worker.driver.commands == ["echo once"]


async def test_a_lost_sandbox_is_a_result_and_the_call_is_not_recorded(worker: Worker) -> None:
    run_id = f"run_{secrets.token_hex(4)}"
    worker.driver.lose_during("echo fragile")

    lost = await collect(worker.hands, bash(run_id, "c", "echo fragile"))
    again = await collect(worker.hands, bash(run_id, "c", "echo fragile"))

    assert (lost.ok, lost.error) == (False, SANDBOX_LOST)
    assert again.ok and not again.replayed and again.sandbox_created


async def test_a_bad_request_is_refused_before_any_sandbox_exists(worker: Worker) -> None:
    with pytest.raises(InvalidRequest):
        await collect(worker.hands, ExecuteRequest("run_x", "c", "no_such_tool", {}, 10.0))

    assert (await worker.hands.status()).sandboxes == ()


async def test_release_frees_the_sandbox_and_releasing_twice_is_fine(worker: Worker) -> None:
    run_id = f"run_{secrets.token_hex(4)}"
    await collect(worker.hands, bash(run_id, "c", "echo hi"))
    assert [s.run_id for s in (await worker.hands.status()).sandboxes] == [run_id]

    await worker.hands.release(ReleaseRequest(run_id))
    await worker.hands.release(ReleaseRequest(run_id))

    assert (await worker.hands.status()).sandboxes == ()


async def test_closing_the_stream_stops_the_call_and_frees_its_slot(worker: Worker) -> None:
    run_id = f"run_{secrets.token_hex(4)}"
    async with aclosing(worker.hands.execute(bash(run_id, "c", "sleep 60"))) as items:
        started = asyncio.ensure_future(anext(items))
        await eventually(lambda: _true("sleep 60" in worker.driver.commands))
        started.cancel()
        await asyncio.gather(started, return_exceptions=True)

    await eventually(lambda: _true(worker.slots.free == worker.slots.total))


async def _true(value: bool) -> bool:
    return value
