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


async def warm_for(pool: SandboxPool, run_id: str, tenant: str, clock: Clock) -> str:
    clock.now += 1
    async with pool.locked(run_id):
        sandbox_id = (await pool.ensure(run_id, tenant=tenant)).sandbox_id
        pool.touch(run_id)
    return sandbox_id


async def test_past_its_limit_the_pool_removes_the_least_recently_used_idle_sandbox() -> None:
    driver, clock = FakeDriver(), Clock()
    pool = SandboxPool(driver, clock=clock, max_sandboxes=2)
    oldest = await warm_for(pool, "oldest", "t", clock)
    await warm_for(pool, "used", "t", clock)
    await warm_for(pool, "oldest", "t", clock)  # used again: now "used" is the least recent

    await warm_for(pool, "new", "t", clock)

    assert {s.run_id for s in pool.snapshot()} == {"oldest", "new"}
    assert oldest in driver.labels and len(driver.labels) == 2


async def test_a_tenant_past_its_limit_gives_up_its_own_idle_sandboxes_only() -> None:
    driver, clock = FakeDriver(), Clock()
    pool = SandboxPool(driver, clock=clock, tenant_limit=lambda tenant: 1 if tenant == "greedy" else 10)
    await warm_for(pool, "other", "modest", clock)
    await warm_for(pool, "greedy-1", "greedy", clock)

    await warm_for(pool, "greedy-2", "greedy", clock)

    assert {s.run_id for s in pool.snapshot()} == {"other", "greedy-2"}


async def test_a_busy_sandbox_is_never_removed_for_room_and_is_trimmed_once_idle() -> None:
    driver, clock = FakeDriver(), Clock()
    pool = SandboxPool(driver, clock=clock, max_sandboxes=1)
    await warm_for(pool, "busy", "t", clock)
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold_busy() -> None:
        async with pool.locked("busy"):
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold_busy())
    await holding.wait()
    await warm_for(pool, "new", "t", clock)
    assert len(pool) == 2  # over the limit while "busy" is in use
    done.set()
    await holder

    assert await pool.trim() == ["busy"]
    assert {s.run_id for s in pool.snapshot()} == {"new"}
