"""The stepper drives one run under a lease, deciding every step from the state folded from the log:
a stale fence writes nothing, model errors are retried or fail the run, and a cached state continues
exactly where a fresh fold would be."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.brain.context import rebuild
from services.brain.dispatch import ToolDispatcher
from services.brain.lease_keeper import LeaseKeeper
from services.brain.models import ModelRequest, ModelResponse
from services.brain.providers import ProviderPool
from services.brain.stepper import RunStepper
from services.core import events as event_log
from services.core import leases
from services.core.agents import AgentSpec
from services.core.db.engine import autocommit
from services.core.errors import LeaseLost, ModelError
from services.core.journal import Journal
from tests.unit.brain.loop import Loop, call, of_type, scripted


@pytest.fixture
async def loop(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    """The loop without its brain: each test steps its run itself."""
    async with Loop(database_url, tmp_path, brain=False) as running:
        yield running


class FlakyModel:
    """Fails with `error` the first `failures` times, then answers."""

    def __init__(self, failures: int, error: ModelError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return ModelResponse(text="finally")

    async def aclose(self) -> None:
        return None


class OneModel(ProviderPool):
    def __init__(self, loop: Loop, model: FlakyModel) -> None:
        super().__init__(loop.settings)
        self.model = model

    def for_agent(self, spec: AgentSpec) -> Any:
        return self.model


async def lease(loop: Loop, run_id: str, owner: str) -> LeaseKeeper:
    asked_at = time.monotonic()
    async with autocommit(loop.engine).connect() as conn:
        fence = await leases.acquire(conn, run_id, owner, loop.settings.lease_seconds)
    assert fence is not None
    return LeaseKeeper(loop.engine, run_id, fence, loop.settings.lease_seconds, asked_at)


def stepper(loop: Loop, keeper: LeaseKeeper, providers: ProviderPool | None = None, **kw: Any) -> RunStepper:
    journal = Journal(loop.engine, loop.bus)
    dispatcher = ToolDispatcher(loop.settings, loop.bus, loop.artifacts, journal, loop.connect)
    return RunStepper(
        loop.settings, journal, dispatcher, providers or ProviderPool(loop.settings), keeper, **kw
    )


async def test_a_stepper_whose_lease_was_taken_over_writes_nothing(loop: Loop) -> None:
    run_id = await loop.start(scripted({"text": "never said"}))
    stale = await lease(loop, run_id, "brain-old")
    async with autocommit(loop.engine).connect() as conn:
        await leases.release(conn, run_id, stale.fence)
    await lease(loop, run_id, "brain-new")
    before = await loop.events(run_id)

    with pytest.raises(LeaseLost):
        await stepper(loop, stale).drive()

    assert await loop.events(run_id) == before


async def test_retryable_model_errors_are_retried_within_the_agent_policy(loop: Loop) -> None:
    run_id = await loop.start(scripted())
    model = FlakyModel(1, ModelError("overloaded", code="model_overloaded", retryable=True))

    await stepper(loop, await lease(loop, run_id, "brain-t"), OneModel(loop, model)).drive()

    assert model.calls == 2
    assert (await loop.run(run_id))["result"] == "finally"


async def test_a_model_error_that_retrying_cannot_help_fails_the_run(loop: Loop) -> None:
    run_id = await loop.start(scripted())
    model = FlakyModel(9, ModelError("bad key", code="model_auth", retryable=False))

    await stepper(loop, await lease(loop, run_id, "brain-t"), OneModel(loop, model)).drive()

    run = await loop.run(run_id)
    assert model.calls == 1
    assert run["status"] == "failed" and run["error"] == {"code": "model_auth", "message": "bad key"}


async def test_a_drive_continues_from_the_state_a_previous_drive_left(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [call("write_file", path="a.txt", content="a")]},
        {"tool_calls": [call("bash", command="cat a.txt")]},
        {"text": "done"},
        permissions={"bash": "ask"},
    )
    run_id = await loop.start(agent)
    first = stepper(loop, await lease(loop, run_id, "brain-t"))
    await first.drive()
    assert first.state.status == "waiting"
    [call_id] = first.state.pending
    async with autocommit(loop.engine).connect() as conn:
        await leases.release(conn, run_id, first.fence)
    approval = await loop.post(f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "allow"})
    assert approval.status_code == 202

    second = stepper(loop, await lease(loop, run_id, "brain-t"), cached=first.state)
    await second.drive()

    assert second.state is first.state and second.state.status == "completed"
    async with autocommit(loop.engine).connect() as conn:
        whole = await event_log.read(conn, run_id)
    assert dataclasses.asdict(second.state) == dataclasses.asdict(rebuild(run_id, whole))
    assert of_type(await loop.events(run_id), "tool.result")[-1]["output"] == "a"
