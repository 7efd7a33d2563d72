"""A run's profile shapes its sandbox within the worker's limits; warm sandboxes serve only the default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import docker
import pytest

from harness.waiting import eventually
from services.hands.contract.client import ExecuteResult, HandsClient
from services.hands.contract.profile import SandboxProfile
from services.hands.server import HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, new_run, request, send
from tests.integration.hands.test_warm_pool import warm_ids

pytestmark = pytest.mark.docker


async def run(hands: HandsClient, run_id: str, profile: SandboxProfile | None) -> ExecuteResult:
    return await send(hands, replace(request(run_id, "bash", {"command": "true"}), profile=profile))


async def test_a_profile_gets_its_limits_up_to_the_workers(
    hands: HandsClient, docker_api: docker.APIClient
) -> None:
    smaller = SandboxProfile("env-profile-test", 1, cpus=0.5, memory_bytes=128 * 2**20, pids=64)
    larger = SandboxProfile("env-profile-test", 2, cpus=8.0, memory_bytes=64 * 2**30, pids=100_000)

    small = await run(hands, new_run(), smaller)
    large = await run(hands, new_run(), larger)

    assert small.ok and large.ok
    small_config = docker_api.inspect_container(small.sandbox_id)["HostConfig"]
    large_config = docker_api.inspect_container(large.sandbox_id)["HostConfig"]
    assert (small_config["NanoCpus"], small_config["Memory"], small_config["PidsLimit"]) == (
        500_000_000,
        128 * 2**20,
        64,
    )
    # The worker's own: 1 CPU, 256m and 128 pids in these tests.
    assert (large_config["NanoCpus"], large_config["Memory"], large_config["PidsLimit"]) == (
        1_000_000_000,
        256 * 2**20,
        128,
    )
    assert small_config["NetworkMode"] == large_config["NetworkMode"] == "none"


async def test_warm_sandboxes_serve_the_default_profile_only(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_warm_pool=1)

    async def ready() -> set[str] | None:
        return warm_ids(docker_api, worker.hands_id) if worker.warm_ready == 1 else None

    warm = await eventually(ready, timeout=30)
    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        shaped = await run(hands, new_run(), SandboxProfile("env-profile-test", 1, pids=64))
        default = await run(hands, new_run(), SandboxProfile("env-profile-test", 1))

    assert shaped.sandbox_created and shaped.sandbox_id not in warm
    assert default.sandbox_created and default.sandbox_id in warm


async def test_a_run_whose_profile_changes_gets_a_new_sandbox(hands: HandsClient) -> None:
    run_id = new_run()

    first = await run(hands, run_id, SandboxProfile("env-profile-test", 1))
    again = await run(hands, run_id, SandboxProfile("env-profile-test", 1))
    changed = await run(hands, run_id, SandboxProfile("env-profile-test", 1, pids=64))

    assert not again.sandbox_created and again.sandbox_id == first.sandbox_id
    assert changed.sandbox_created and changed.sandbox_id != first.sandbox_id
