"""The warm pool: a new run's first call takes a started sandbox, the pool refills, and stopping cleans up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest

from harness.waiting import eventually
from services.hands.contract.client import HandsClient
from services.hands.fleet.pool import RUN_LABEL
from services.hands.fleet.warm import WARM_LABEL
from services.hands.server import HANDS_LABEL, HandsWorker
from tests.integration.hands.calls import HANDS_SECRET, bash, new_run
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


def warm_ids(api: docker.APIClient, hands_id: str) -> set[str]:
    filters = {"label": [f"{HANDS_LABEL}={hands_id}", f"{WARM_LABEL}=1"], "status": "running"}
    return {c["Id"] for c in api.containers(filters=filters)}


async def test_a_first_call_claims_a_warm_sandbox_and_the_pool_refills(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_warm_pool=1)
    await eventually(lambda: _async(worker.warm_ready == 1), timeout=30)
    ready = warm_ids(docker_api, worker.hands_id)

    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        first = await bash(hands, new_run(), "echo hi > a.txt; cat a.txt")
    refilled = await eventually(
        lambda: _async(warm_ids(docker_api, worker.hands_id) - {first.sandbox_id}), timeout=30
    )

    assert first.ok and first.output == "hi\n"
    assert first.sandbox_created and {first.sandbox_id} == ready
    assert len(refilled) == 1


async def test_stopping_the_worker_removes_its_warm_sandboxes(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_warm_pool=2)
    await eventually(lambda: _async(worker.warm_ready == 2), timeout=60)

    await worker.__aexit__(None, None, None)

    assert not docker_api.containers(all=True, filters={"label": f"{HANDS_LABEL}={worker.hands_id}"})


async def test_with_no_warm_pool_a_first_call_starts_its_own_sandbox(
    start_worker: Callable[..., Any], docker_api: docker.APIClient
) -> None:
    worker: HandsWorker = await start_worker(hands_warm_pool=0)
    run_id = new_run()

    async with HandsClient(worker.address, secret=HANDS_SECRET) as hands:
        first = await bash(hands, run_id, "true")

    labels = docker_api.inspect_container(first.sandbox_id)["Config"]["Labels"]
    assert first.ok and first.sandbox_created
    assert labels[RUN_LABEL] == run_id and WARM_LABEL not in labels
    assert warm_ids(docker_api, worker.hands_id) == set()


async def _async(value: Any) -> Any:
    return value
