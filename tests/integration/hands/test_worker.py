"""The hands worker end to end over gRPC: streaming, health, registry, status, release, lifecycle."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import docker
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.waiting import eventually
from services.core.bus import Bus, HandsInfo
from services.core.errors import (
    HandsUnavailable,
    HandsUnreachable,
    InfrastructureError,
    InvalidRequest,
    Unauthenticated,
)
from services.core.identity import stack_id
from services.core.settings import Settings
from services.hands.contract.client import ExecuteResult, HandsClient, OutputChunk, ReleaseRequest
from services.hands.contract.proto import hands_pb2 as pb
from services.hands.contract.proto.hands_pb2_grpc import HandsStub
from services.hands.sandbox import CreateSandbox, SandboxSpec
from services.hands.sandbox.docker import DockerDriver
from services.hands.server import HANDS_LABEL, SERVICE_NAME, STACK_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, bash, call, new_run, request

pytestmark = pytest.mark.docker


async def test_output_streams_before_the_result(hands: HandsClient) -> None:
    arrivals: list[tuple[float, OutputChunk | ExecuteResult]] = []
    command = request(new_run(), "bash", {"command": "echo first; sleep 1; echo second"})

    async with aclosing(hands.execute(command)) as events:
        async for item in events:
            arrivals.append((time.monotonic(), item))

    (first_at, first), *_, (result_at, result) = arrivals
    assert first == OutputChunk("stdout", "first\n")
    assert isinstance(result, ExecuteResult) and result.ok and result.output == "first\nsecond\n"
    assert result_at - first_at >= 0.8
    assert sum(isinstance(item, ExecuteResult) for _, item in arrivals) == 1


async def test_health_check_reports_serving(worker: HandsWorker) -> None:
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        overall = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        hands = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))

    assert overall.status == hands.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("secret", ["", "not-the-secret", HANDS_SECRET[:-1]])
async def test_a_client_without_the_hands_secret_is_refused_everything(
    worker: HandsWorker, docker_api: docker.APIClient, secret: str
) -> None:
    run_id = new_run()
    async with HandsClient(worker.address, secret=secret) as hostile:
        with pytest.raises(Unauthenticated):
            await hostile.execute_collect(request(run_id, "bash", {"command": "cat /etc/hostname"}))
        with pytest.raises(Unauthenticated):
            await hostile.release(ReleaseRequest(run_id=run_id))
        with pytest.raises(Unauthenticated):
            await hostile.status()

    # Refused before any servicer ran: nothing was made for the invented run.
    assert not docker_api.containers(all=True, filters={"label": f"loopd.run_id={run_id}"})
    async with HandsClient(worker.address, secret=HANDS_SECRET) as honest:
        assert (await honest.status()).hands_id == worker.hands_id


async def test_a_call_without_any_credentials_is_refused(worker: HandsWorker) -> None:
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = HandsStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Status(pb.StatusRequest())

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_worker_registers_on_the_bus_and_unregisters_on_exit(
    start_worker: Callable[..., Any], bus: Bus
) -> None:
    worker: HandsWorker = await start_worker(hands_slots=3)
    run_id = new_run()

    async def registered_idle_with_sandbox() -> HandsInfo | None:
        entries = {info.hands_id: info for info in await bus.list_hands()}
        info = entries.get(worker.hands_id)
        return info if info and run_id in info.sandboxes and info.slots_free == 3 else None

    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        await bash(hands, run_id, "true")
        info = await eventually(registered_idle_with_sandbox, timeout=5)
    await worker.__aexit__(None, None, None)

    assert info.address == worker.address and info.slots_total == 3
    assert worker.hands_id not in {i.hands_id for i in await bus.list_hands()}


async def test_status_and_release(hands: HandsClient, docker_api: docker.APIClient) -> None:
    run_id = new_run()
    result = await bash(hands, run_id, "true")

    before = await hands.status()
    await hands.release(ReleaseRequest(run_id))
    await hands.release(ReleaseRequest(run_id))
    after = await hands.status()

    assert [(s.run_id, s.sandbox_id) for s in before.sandboxes] == [(run_id, result.sandbox_id)]
    assert before.slots_free == before.slots_total == 4
    assert after.sandboxes == ()
    assert not docker_api.containers(all=True, filters={"id": result.sandbox_id})


async def test_a_running_call_holds_a_slot(hands: HandsClient) -> None:
    run_id = new_run()
    running = asyncio.create_task(bash(hands, run_id, "sleep 1"))

    async def slot_taken() -> bool:
        return (await hands.status()).slots_free == 3

    await eventually(slot_taken, timeout=10)
    assert (await running).ok
    assert (await hands.status()).slots_free == 4


async def test_bad_requests_raise_invalid_request_without_a_sandbox(hands: HandsClient) -> None:
    run_id = new_run()

    with pytest.raises(InvalidRequest):
        await call(hands, run_id, "rm_rf", path=".")
    with pytest.raises(InvalidRequest):
        await call(hands, run_id, "bash", cmd="true")

    assert (await hands.status()).sandboxes == ()


async def test_a_missing_sandbox_image_is_a_non_retryable_infrastructure_error(
    start_worker: Callable[..., Any],
) -> None:
    worker: HandsWorker = await start_worker(sandbox_image=f"loopd-missing-{uuid.uuid4().hex[:8]}:latest")

    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        with pytest.raises(InfrastructureError) as raised:
            await bash(hands, new_run(), "true")

    assert raised.value.code == "sandbox_image_missing" and not raised.value.retryable
    assert "deploy/sandbox/build.sh" in raised.value.message


async def test_a_cancelled_call_leaves_nothing_running(hands: HandsClient) -> None:
    run_id = new_run()
    long_call = request(run_id, "bash", {"command": "echo started; sleep 1000"})

    async with aclosing(hands.execute(long_call)) as events:
        async for item in events:
            assert item == OutputChunk("stdout", "started\n")
            break
    after = await bash(hands, run_id, "pgrep -c sleep || true")

    assert after.ok and after.output == "0\n"
    assert not after.sandbox_created


async def test_an_unreachable_worker_raises_hands_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"

    async with HandsClient(address, secret=HANDS_SECRET) as hands:
        # A call that never reached a worker says so: nothing ran, so retrying it spends nothing.
        with pytest.raises(HandsUnreachable):
            await bash(hands, new_run(), "true")
        with pytest.raises(HandsUnavailable):
            await hands.status()


async def test_idle_sandboxes_are_reaped(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(sandbox_idle_seconds=0.5)
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        result = await bash(hands, new_run(), "true")

        async def reaped() -> bool:
            return (await hands.status()).sandboxes == ()

        await eventually(reaped, timeout=10)

    assert not docker_api.containers(all=True, filters={"id": result.sandbox_id})


async def test_start_up_removes_sandboxes_left_by_the_same_hands_id(
    start_worker: Callable[..., Any], make_settings: Callable[..., Settings], docker_api: docker.APIClient
) -> None:
    settings = make_settings()
    orphan = await _sandbox_of(settings, stack_id(settings))

    await start_worker(hands_id=settings.hands_id)

    assert not docker_api.containers(all=True, filters={"id": orphan})


async def test_start_up_leaves_alone_the_sandboxes_of_another_stack_with_the_same_hands_id(
    start_worker: Callable[..., Any], make_settings: Callable[..., Settings], docker_api: docker.APIClient
) -> None:
    settings = make_settings()
    others = await _sandbox_of(settings, "another-stack")
    try:
        await start_worker(hands_id=settings.hands_id)

        assert docker_api.containers(all=True, filters={"id": others})
    finally:
        docker_api.remove_container(others, force=True)


async def _sandbox_of(settings: Settings, stack: str) -> str:
    """A sandbox as a crashed worker of `stack` with this hands id would have left it."""
    labels = {HANDS_LABEL: settings.hands_id or "", STACK_LABEL: stack}
    leftover = DockerDriver(
        SandboxSpec.from_settings(settings, labels), base_url=settings.sandbox_docker_host
    )
    try:
        return await leftover.create(CreateSandbox(labels={"loopd.run_id": "crashed-run"}))
    finally:
        await leftover.aclose()
