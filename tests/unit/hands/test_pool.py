"""The pool provisions lazily, keeps one sandbox per run, replaces dead ones and reaps idle ones."""

from __future__ import annotations

import asyncio

from services.hands.fleet.pool import RUN_LABEL, SandboxPool
from services.hands.sandbox import CreateSandbox
from tests.unit.hands.fake_driver import FakeDriver


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def warm(pool: SandboxPool, run_id: str) -> str:
    async with pool.locked(run_id):
        return (await pool.ensure(run_id)).sandbox_id


async def test_a_run_gets_one_sandbox_created_on_first_use() -> None:
    driver = FakeDriver()
    pool = SandboxPool(driver)
    assert driver.labels == {}

    async with pool.locked("run-a"):
        first = await pool.ensure("run-a")
    async with pool.locked("run-a"):
        again = await pool.ensure("run-a")
    async with pool.locked("run-b"):
        other = await pool.ensure("run-b")

    assert first.created and not again.created and again.sandbox_id == first.sandbox_id
    assert other.created and other.sandbox_id != first.sandbox_id
    assert driver.labels[first.sandbox_id] == {RUN_LABEL: "run-a"}


async def test_a_dead_sandbox_is_replaced() -> None:
    driver = FakeDriver()
    pool = SandboxPool(driver)
    first = await warm(pool, "run")
    driver.dead.add(first)

    async with pool.locked("run"):
        second = await pool.ensure("run")

    assert second.created and second.sandbox_id != first
    assert first not in driver.labels


async def test_reaping_spares_busy_and_recently_used_sandboxes() -> None:
    driver, clock = FakeDriver(), Clock()
    pool = SandboxPool(driver, clock=clock)
    idle = await warm(pool, "idle")
    for run_id in ("busy", "recent"):
        await warm(pool, run_id)
    clock.now += 100
    pool.touch("recent")
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold_busy() -> None:
        async with pool.locked("busy"):
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold_busy())
    await holding.wait()
    reaped = await pool.reap(idle_seconds=50)
    done.set()
    await holder

    assert reaped == ["idle"]
    assert {s.run_id for s in pool.snapshot()} == {"busy", "recent"}
    assert idle not in driver.labels


async def test_release_is_idempotent() -> None:
    driver = FakeDriver()
    pool = SandboxPool(driver)
    sandbox_id = await warm(pool, "run")

    await pool.release("run")
    await pool.release("run")

    assert pool.snapshot() == () and sandbox_id not in driver.labels


async def test_only_unknown_sandboxes_of_this_hands_are_orphans() -> None:
    mine = {"loopd.hands_id": "h1"}
    driver = FakeDriver(labels=mine)
    pool = SandboxPool(driver)
    kept = await warm(pool, "run")
    orphan = await driver.create(CreateSandbox(labels={RUN_LABEL: "crashed"}))
    driver.labels["sb-other"] = {"loopd.hands_id": "h2"}

    removed = await pool.remove_orphans(mine)

    assert removed == 1
    assert kept in driver.labels and orphan not in driver.labels
    assert "sb-other" in driver.labels
