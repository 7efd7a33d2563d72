"""Capacity, in process: the tenant's ceilings hold whatever an agent spec asks, a run's wall time cuts
the call that outlives it, a run past its wall-time ceiling fails, and a run that ends lets go of its
sandbox at once."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from harness.waiting import eventually
from services.hands.contract.api import ExecuteRequest, ExecuteResult, OutputChunk
from tests.unit.brain.loop import Loop, call, holds_nothing, of_type, scripted

GREEDY_LIMITS = {"tool_timeout_seconds": 86_400}
SLEEP = call("bash", command="sleep 30", timeout=86_400)


@pytest.fixture
async def capped(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    """A loop whose tenant may run a tool call for half a second, and a run for 3 s."""
    tenant = f"tenant-{secrets.token_hex(4)}"
    ceilings = {tenant: {"tool_timeout_seconds": 0.5, "run_wall_time_seconds": 3.0}}
    async with Loop(database_url, tmp_path, tenant=tenant, tenant_ceilings=ceilings) as running:
        yield running


def record_requests(loop: Loop) -> list[ExecuteRequest]:
    """The requests the brain sends to the (only) hands worker, from now on."""
    sent: list[ExecuteRequest] = []
    hands = loop.hands["hands-1"].hands
    execute = hands.execute

    async def recording(
        request: ExecuteRequest,
    ) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        sent.append(request)
        async with aclosing(execute(request)) as items:
            async for item in items:
                yield item

    hands.execute = recording  # type: ignore[method-assign]
    return sent


async def test_an_agent_spec_cannot_raise_the_tool_timeout_past_the_tenants_ceiling(capped: Loop) -> None:
    sent = record_requests(capped)
    agent = scripted({"tool_calls": [SLEEP]}, {"text": "cut short"}, limits=GREEDY_LIMITS)
    run_id = await capped.start(agent)

    await capped.until(run_id, "completed")

    [result] = of_type(await capped.events(run_id), "tool.result")
    assert result["error"] == "timeout"
    assert [request.timeout_seconds for request in sent] == [0.5]


async def test_the_runs_wall_time_cuts_the_call_that_outlives_it(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [SLEEP]}, {"text": "never"}, limits={"max_wall_time_seconds": 1.0, **GREEDY_LIMITS}
    )
    run_id = await loop.start(agent)

    run = await loop.until(run_id, "waiting")

    [result] = of_type(await loop.events(run_id), "tool.result")
    assert result["error"] == "timeout"
    assert result["error_message"] == (
        "the run's wall time ran out during the call; every process it started was killed"
    )
    assert result["duration_ms"] < 5_000
    assert run["waiting_for"]["type"] == "budget" and run["waiting_for"]["limit"] == "max_wall_time"
    await eventually(lambda: holds_nothing(loop, run_id))


async def test_a_run_past_its_wall_time_ceiling_fails_whatever_its_budget(capped: Loop) -> None:
    slow = call("bash", command="sleep 0.4")
    turns: list[dict[str, Any]] = [{"tool_calls": [slow]} for _ in range(20)]
    agent = scripted(*turns, {"text": "never"}, limits={"max_wall_time_seconds": 86_400.0})
    run_id = await capped.start(agent)

    run = await capped.until(run_id, "failed", timeout=30)

    assert run["error"]["code"] == "wall_time_ceiling"
    assert len(of_type(await capped.events(run_id), "tool.result")) < 20
    await eventually(lambda: holds_nothing(capped, run_id))


async def test_a_completed_run_lets_go_of_its_sandbox_at_once(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="echo hi")]}, {"text": "done"})
    run_id = await loop.start(agent)

    await loop.until(run_id, "completed")

    await eventually(lambda: holds_nothing(loop, run_id), timeout=5)


async def test_a_sub_agents_calls_name_the_run_at_the_top_of_its_tree(loop: Loop) -> None:
    sent = record_requests(loop)
    child = scripted({"tool_calls": [call("bash", command="echo child")]}, {"text": "child done"})
    agent = scripted(
        {"tool_calls": [call("bash", command="echo parent")]},
        {"tool_calls": [call("spawn_agent", agent=child, input="go")]},
        {"text": "all done"},
        tools=["bash", "spawn_agent"],
    )
    run_id = await loop.start(agent)

    await loop.until(run_id, "completed")

    assert {request.root_run_id for request in sent} == {run_id}
    assert len({request.run_id for request in sent}) == 2
    assert {request.tenant for request in sent} == {loop.settings.tenant}


async def test_a_budget_past_the_wall_time_ceiling_is_refused_when_asked_for(capped: Loop) -> None:
    agent = scripted({"text": "never"}, limits={"max_wall_time_seconds": 1.0})
    created = await capped.api.post(
        "/v1/runs", json={"agent": agent, "input": "go", "budget": {"max_wall_time_seconds": 10.0}}
    )
    assert created.status_code == 422 and created.json()["error"]["code"] == "above_ceiling"

    run_id = await capped.start(
        scripted({"tool_calls": [SLEEP]}, {"text": "never"}, limits={"max_wall_time_seconds": 0.2})
    )
    await capped.until(run_id, "waiting")
    raised = await capped.api.post(f"/v1/runs/{run_id}/budget", json={"max_wall_time_seconds": 3600})
    assert raised.status_code == 422 and raised.json()["error"]["code"] == "above_ceiling"
    within = await capped.api.post(f"/v1/runs/{run_id}/budget", json={"max_wall_time_seconds": 2.5})
    assert within.status_code == 202, within.text
