"""A sandbox that dies is reported as sandbox_lost, and the run's next call gets a fresh one.

The fresh sandbox starts from the lost call's base snapshot: the lost call's effects are gone.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import docker
import pytest

from services.hands.contract.client import ExecuteResult, HandsClient, OutputChunk
from tests.integration.hands.calls import bash, new_run, request
from tests.integration.hands.runtimes import BOTH_RUNTIMES

pytestmark = [pytest.mark.docker, BOTH_RUNTIMES]


async def test_a_sandbox_killed_mid_call_is_lost_and_replaced_from_the_calls_base(
    hands: HandsClient, docker_api: docker.APIClient
) -> None:
    run_id = new_run()
    first = await bash(hands, run_id, "echo data > file.txt")
    items: list[OutputChunk | ExecuteResult] = []

    async with aclosing(
        hands.execute(request(run_id, "bash", {"command": "echo started; touch lost.txt; sleep 60"}))
    ) as events:
        async for item in events:
            items.append(item)
            if isinstance(item, OutputChunk):
                await asyncio.to_thread(docker_api.kill, first.sandbox_id)
    after = await bash(hands, run_id, "cat file.txt; ls")

    lost = items[-1]
    assert isinstance(lost, ExecuteResult)
    assert not lost.ok and lost.error == "sandbox_lost"
    assert lost.sandbox_id == first.sandbox_id
    assert lost.snapshot_after == first.snapshot_after and not lost.replayed
    assert after.sandbox_created and after.sandbox_id != first.sandbox_id
    assert after.output == "data\nfile.txt\n"


async def test_a_sandbox_removed_while_idle_is_replaced_transparently(
    hands: HandsClient, docker_api: docker.APIClient
) -> None:
    run_id = new_run()
    first = await bash(hands, run_id, "true")
    await asyncio.to_thread(docker_api.remove_container, first.sandbox_id, v=True, force=True)

    after = await bash(hands, run_id, "echo hello")

    assert after.ok and after.output == "hello\n"
    assert after.sandbox_created and after.sandbox_id != first.sandbox_id
