"""Tenant quotas in process. With max_running_runs, the runs past it stay queued with their logs
untouched, and each starts as a slot frees, with one brain or two, while another tenant's runs are not
held up and a run waiting for a person holds no slot. With max_sandboxes, the tenant's runs hold at
most that many sandboxes across hands workers and brains; a call past it waits, and if no sandbox
frees in time its result says the call did not run, while the run goes on.

How many ran at once is judged from the event logs (a run runs from its run.status `running` to its
wait or its end) and from the sandboxes the hands workers' drivers created and destroyed."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from harness.spans import most_at_once, running_spans
from harness.waiting import eventually
from services.brain.worker import BrainWorker
from services.core import leases
from services.core.db.engine import autocommit, create_engine
from services.core.db.schema import run_leases
from services.hands.fleet.pool import RUN_LABEL
from services.hands.sandbox import CreateSandbox
from tests.unit.brain.loop import Loop, call, holds_nothing, of_type, scripted

# The model takes a moment over its answer, so runs that run at once overlap in their logs.
THINKING = scripted({"sleep": 0.4, "text": "done"})


async def set_quotas(loop: Loop, **quotas: int) -> None:
    response = await loop.api.patch(f"/v1/tenants/{loop.settings.tenant}", json={"quotas": quotas})
    assert response.status_code == 200, response.text


async def another_tenant(loop: Loop) -> dict[str, str]:
    """The headers of an admin of a new tenant, without quotas."""
    created = await loop.api.post("/v1/tenants", json={"id": f"other-{secrets.token_hex(4)}"})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['admin_key']['key']}"}


async def spans_of(loop: Loop, run_ids: list[str], headers: dict[str, str] | None = None) -> list[Any]:
    spans = []
    for run_id in run_ids:
        spans += running_spans(await loop.events(run_id, headers))
    return spans


@asynccontextmanager
async def second_brain(loop: Loop) -> AsyncIterator[BrainWorker]:
    """Another brain on the same database and bus, with its own connection pool."""
    settings = loop.settings.model_copy(update={"brain_id": f"brain-{secrets.token_hex(3)}"})
    engine = create_engine(settings, pool_size=4)
    try:
        async with BrainWorker(settings, engine, loop.bus, loop.artifacts, connect=loop.connect) as brain:
            yield brain
    finally:
        await engine.dispose()


async def test_past_max_running_runs_runs_wait_queued_and_all_complete(loop: Loop) -> None:
    await set_quotas(loop, max_running_runs=2)

    run_ids = [await loop.start(THINKING) for _ in range(5)]
    queued = [(await loop.run(run_id))["status"] for run_id in run_ids]

    for run_id in run_ids:
        assert (await loop.until(run_id, "completed"))["result"] == "done"
    assert most_at_once(await spans_of(loop, run_ids)) == 2
    assert "queued" in queued


async def test_a_run_that_waited_for_a_slot_has_the_log_of_one_that_did_not(loop: Loop) -> None:
    await set_quotas(loop, max_running_runs=1)
    first = await loop.start(THINKING)
    await loop.until(first, "running")

    second = await loop.start(THINKING)
    assert (await loop.run(second))["status"] == "queued"

    await loop.until(second, "completed")
    kinds = [[(e["seq"], e["type"]) for e in await loop.events(run_id)] for run_id in (first, second)]
    assert kinds[0] == kinds[1]
    assert [seq for seq, _ in kinds[1]] == list(range(1, len(kinds[1]) + 1))
    [(_, first_ended)] = running_spans(await loop.events(first))
    [(second_ran, _)] = running_spans(await loop.events(second))
    assert second_ran >= first_ended


async def test_another_tenants_runs_are_not_held_up_by_a_tenant_at_its_quota(loop: Loop) -> None:
    await set_quotas(loop, max_running_runs=1)
    others = await another_tenant(loop)
    held = [await loop.start(THINKING) for _ in range(3)]

    free = [await loop.start(THINKING, headers=others) for _ in range(3)]

    for run_id in free:
        await loop.until(run_id, "completed", headers=others)
    assert most_at_once(await spans_of(loop, free, others)) == 3
    for run_id in held:
        await loop.until(run_id, "completed")
    assert most_at_once(await spans_of(loop, held)) == 1


async def test_a_run_waiting_for_a_person_holds_no_slot(loop: Loop) -> None:
    await set_quotas(loop, max_running_runs=1)
    asking = await loop.start(
        scripted({"tool_calls": [call("ask_user", question="which one?")]}, tools=["ask_user"])
    )
    await loop.until(asking, "waiting")

    other = await loop.start(THINKING)

    await loop.until(other, "completed")
    assert (await loop.run(asking))["status"] == "waiting"


async def test_two_brains_together_keep_to_the_tenants_quota(loop: Loop) -> None:
    await set_quotas(loop, max_running_runs=2)
    run_ids: list[str] = []
    owners: set[str] = set()
    async with second_brain(loop) as brain:
        # Which brain takes a wake-up is up to the bus: batches go on until both have taken runs,
        # so the limit is shown to hold while two brains admit the tenant's runs side by side.
        for _ in range(5):
            batch = [await loop.start(THINKING) for _ in range(6)]
            for run_id in batch:
                await loop.until(run_id, "completed")
            run_ids += batch
            owners |= {await lease_owner(loop, run_id) for run_id in batch}
            if len(owners) == 2:
                break

    assert most_at_once(await spans_of(loop, run_ids)) == 2
    assert owners == {loop.settings.brain_id, brain.brain_id}


async def lease_owner(loop: Loop, run_id: str) -> str:
    """The brain that last held the run's lease (a released lease keeps its owner)."""
    async with autocommit(loop.engine).connect() as conn:
        owner = (await conn.execute(select(run_leases.c.owner).where(run_leases.c.run_id == run_id))).scalar()
    return str(owner)


async def test_a_run_whose_slot_a_dead_brain_held_starts_once_that_lease_lapses(
    module_database_url: str, tmp_path: Path
) -> None:
    async with Loop(module_database_url, tmp_path, sweep_interval_seconds=0.2) as loop:
        await set_quotas(loop, max_running_runs=1)
        orphaned = await loop.create_unwoken(THINKING)
        async with autocommit(loop.engine).connect() as conn:
            assert await leases.acquire(conn, orphaned, "brain-that-died", ttl_seconds=1.0) is not None

        waiting = await loop.start(THINKING)

        assert (await loop.until(waiting, "completed"))["result"] == "done"
        assert (await loop.until(orphaned, "completed"))["result"] == "done"
        assert most_at_once(await spans_of(loop, [orphaned, waiting])) == 1


class SandboxCount:
    """The sandboxes of some runs that the hands workers' drivers hold, and the most at once."""

    def __init__(self, loop: Loop) -> None:
        self.live: dict[str, str] = {}  # sandbox id: run id
        self.history: list[frozenset[str]] = []
        for worker in loop.hands.values():
            self._watch(worker.driver)

    def _watch(self, driver: Any) -> None:
        create: Callable[[CreateSandbox], Any] = driver.create
        destroy: Callable[[str], Any] = driver.destroy

        async def counted_create(request: CreateSandbox) -> str:
            sandbox_id: str = await create(request)
            self.live[sandbox_id] = request.labels[RUN_LABEL]
            self.history.append(frozenset(self.live.values()))
            return sandbox_id

        async def counted_destroy(sandbox_id: str) -> None:
            await destroy(sandbox_id)
            self.live.pop(sandbox_id, None)
            self.history.append(frozenset(self.live.values()))

        driver.create, driver.destroy = counted_create, counted_destroy

    def most_at_once(self, run_ids: list[str]) -> int:
        return max((len(held & set(run_ids)) for held in self.history), default=0)


@pytest.fixture
async def two_hands(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with Loop(database_url, tmp_path, hands=2, hands_slots=8) as running:
        yield running


async def test_past_max_sandboxes_calls_wait_for_a_sandbox_across_hands_and_brains(two_hands: Loop) -> None:
    loop = two_hands
    await set_quotas(loop, max_sandboxes=2)
    sandboxes = SandboxCount(loop)
    working = scripted(
        {"tool_calls": [call("bash", command="sleep 0.3")]},
        {"tool_calls": [call("bash", command="echo again")]},
        {"text": "done"},
    )
    async with second_brain(loop):
        run_ids = [await loop.start(working) for _ in range(5)]

        for run_id in run_ids:
            await loop.until(run_id, "completed")

    assert sandboxes.most_at_once(run_ids) == 2
    for run_id in run_ids:
        assert all(result["ok"] for result in of_type(await loop.events(run_id), "tool.result"))


async def test_a_call_that_finds_no_sandbox_in_time_says_it_did_not_run(
    database_url: str, tmp_path: Path
) -> None:
    async with Loop(database_url, tmp_path, sandbox_quota_wait_seconds=0.5) as loop:
        await set_quotas(loop, max_sandboxes=1)
        busy = await loop.start(scripted({"tool_calls": [call("bash", command="sleep 30")]}))
        driver = loop.hands["hands-1"].driver
        await eventually(lambda: _true("sleep 30" in driver.commands))

        turned_away = await loop.start(
            scripted({"tool_calls": [call("bash", command="echo hi")]}, {"text": "ok"})
        )

        assert (await loop.until(turned_away, "completed"))["result"] == "ok"
        [result] = of_type(await loop.events(turned_away), "tool.result")
        assert (result["ok"], result["error"]) == (False, "sandbox_quota")
        assert result["error_message"] == (
            "the call did not run: the tenant's runs held all 1 of its sandboxes for 0.5s; try again later"
        )
        assert "echo hi" not in driver.commands
        assert (await loop.post(f"/v1/runs/{busy}/cancel")).status_code == 202


async def test_a_run_waiting_for_a_sandbox_can_be_cancelled_and_another_gets_the_one_freed(
    loop: Loop,
) -> None:
    await set_quotas(loop, max_sandboxes=1)
    busy = await loop.start(scripted({"tool_calls": [call("bash", command="sleep 30")]}))
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true("sleep 30" in driver.commands))
    waiting = await loop.start(scripted({"tool_calls": [call("bash", command="echo next")]}, {"text": "ok"}))
    given_up = await loop.start(scripted({"tool_calls": [call("bash", command="echo never")]}))
    await eventually(lambda: _has_event(loop, given_up, "tool.call"))

    assert (await loop.post(f"/v1/runs/{given_up}/cancel")).status_code == 202
    await eventually(lambda: holds_nothing(loop, given_up), timeout=5)
    assert (await loop.post(f"/v1/runs/{busy}/cancel")).status_code == 202

    assert (await loop.until(waiting, "completed"))["result"] == "ok"
    [result] = of_type(await loop.events(waiting), "tool.result")
    assert result["ok"] and "echo never" not in driver.commands


async def _has_event(loop: Loop, run_id: str, kind: str) -> bool:
    return any(event["type"] == kind for event in await loop.events(run_id))


async def _true(value: bool) -> bool:
    return value
