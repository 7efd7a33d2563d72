"""Fair capacity on a real hands worker: the tenant's ceilings hold against a greedy caller, calls of
one run tree hold at most their share of the slots while others run, and the worker keeps at most its
limit of sandboxes, giving up the least recently used idle ones first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import docker
import pytest

from harness.waiting import eventually
from services.hands.contract.client import HandsClient
from services.hands.fleet.pool import RUN_LABEL
from services.hands.server import HANDS_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, bash, new_run, request, send

pytestmark = pytest.mark.docker

GREEDY = {"command": "sleep infinity", "timeout": 86_400}


async def test_a_greedy_request_cannot_lift_the_tool_timeout_past_the_ceiling(
    start_worker: Callable[..., Any],
) -> None:
    worker = await start_worker(ceilings={"tool_timeout_seconds": 2})
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        started = time.monotonic()
        result = await send(hands, request(new_run(), "bash", GREEDY, timeout=86_400))

    assert result.error == "timeout"
    assert result.error_message == "the call ran longer than 2s; every process it started was killed"
    assert time.monotonic() - started < 20


async def test_a_tenant_of_its_own_gets_its_own_ceiling(start_worker: Callable[..., Any]) -> None:
    worker = await start_worker(tenant_ceilings={"tight": {"tool_timeout_seconds": 1}})
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        tight = await send(hands, replace(request(new_run(), "bash", {"command": "sleep 3"}), tenant="tight"))
        default = await send(hands, request(new_run(), "bash", {"command": "sleep 3"}))

    assert tight.error == "timeout" and default.ok


async def running_calls(hands: HandsClient, run_ids: list[str], root_run_id: str) -> list[asyncio.Task[Any]]:
    """Start a `sleep infinity` call for each run, all of one run tree; cancel the tasks to stop them."""

    async def one(run_id: str) -> None:
        greedy = replace(request(run_id, "bash", GREEDY, timeout=600), root_run_id=root_run_id)
        async with aclosing(hands.execute(greedy)) as items:
            async for _ in items:
                pass

    return [asyncio.create_task(one(run_id)) for run_id in run_ids]


async def free_slots(worker: HandsWorker, free: int) -> None:
    async def reached() -> bool:
        return worker.status().slots_free == free

    await eventually(reached)


async def stop(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_eight_greedy_calls_of_one_run_tree_leave_slots_for_another_run(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_slots=4, hands_run_share=0.5, hands_warm_pool=0)
    root = new_run()
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        greedy = await running_calls(hands, [root] + [new_run() for _ in range(7)], root)
        try:
            await free_slots(worker, 2)
            started = time.monotonic()
            other = await bash(hands, new_run(), "echo not starved")
            elapsed = time.monotonic() - started
            # The greedy tree still holds no more than its share once the other call's slot is back
            # (a slot is given back just after the result is sent, so wait for it).
            await free_slots(worker, 2)
        finally:
            await stop(greedy)

    assert other.ok and other.output == "not starved\n"
    assert elapsed < 15


async def test_concurrent_calls_of_one_run_take_one_slot_at_a_time(start_worker: Callable[..., Any]) -> None:
    worker: HandsWorker = await start_worker(hands_slots=4, hands_warm_pool=0)
    run_id = new_run()
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        greedy = await running_calls(hands, [run_id] * 8, run_id)
        try:
            await free_slots(worker, 3)
            other = await bash(hands, new_run(), "echo not starved")
            # One slot for the run however many calls it sends, once the other call's is back.
            await free_slots(worker, 3)
        finally:
            await stop(greedy)

    assert other.ok


def live_runs(api: docker.APIClient, worker: HandsWorker) -> set[str]:
    """The runs holding a container of this worker on the engine."""
    containers = api.containers(filters={"label": [f"{HANDS_LABEL}={worker.hands_id}", RUN_LABEL]})
    return {c["Labels"][RUN_LABEL] for c in containers}


async def test_past_its_sandbox_limit_the_worker_removes_the_least_recently_used_idle_sandbox(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_max_sandboxes=2, hands_warm_pool=0)
    first, second, third = new_run(), new_run(), new_run()
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        for run_id in (first, second, first, third):
            assert (await bash(hands, run_id, "true")).ok

    assert {s.run_id for s in worker.status().sandboxes} == {first, third}
    assert live_runs(docker_api, worker) == {first, third}


async def test_a_tenant_past_its_live_sandbox_ceiling_gives_up_its_own_idle_sandboxes(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(
        tenant_ceilings={"greedy": {"live_sandboxes": 1}}, hands_warm_pool=0
    )
    modest, greedy_a, greedy_b = new_run(), new_run(), new_run()
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        assert (await bash(hands, modest, "true")).ok
        for run_id in (greedy_a, greedy_b):
            assert (
                await send(hands, replace(request(run_id, "bash", {"command": "true"}), tenant="greedy"))
            ).ok

    assert live_runs(docker_api, worker) == {modest, greedy_b}
