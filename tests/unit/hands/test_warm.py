"""WarmSandboxes keeps `size` started sandboxes, hands each out once, skips dead ones, and cleans up."""

from __future__ import annotations

from harness.waiting import eventually
from services.hands.fleet.pool import SandboxPool
from services.hands.fleet.warm import WARM_LABEL, WarmSandboxes
from tests.unit.hands.fake_driver import FakeDriver


async def _full(warm: WarmSandboxes) -> bool:
    return len(warm) == warm.size


async def test_a_claimed_sandbox_is_replaced_and_never_handed_out_twice() -> None:
    driver = FakeDriver()
    async with WarmSandboxes(driver, 2) as warm:
        await eventually(lambda: _full(warm))
        first = await warm.claim()
        second = await warm.claim()
        await eventually(lambda: _full(warm))

        assert first and second and first != second
        assert driver.labels[first] == {WARM_LABEL: "1"}
        assert len(driver.labels) == 4
    assert set(driver.labels) == {first, second}


async def test_a_dead_warm_sandbox_is_skipped_and_removed() -> None:
    driver = FakeDriver()
    async with WarmSandboxes(driver, 2) as warm:
        await eventually(lambda: _full(warm))
        dead = next(iter(driver.labels))
        driver.dead.add(dead)

        claimed = await warm.claim()

        assert claimed is not None and claimed != dead
        assert dead not in driver.labels


async def test_size_zero_starts_nothing_and_the_pool_creates_per_run() -> None:
    driver = FakeDriver()
    async with WarmSandboxes(driver, 0) as warm:
        pool = SandboxPool(driver, warm=warm)
        async with pool.locked("run-a"):
            lease = await pool.ensure("run-a")

        assert await warm.claim() is None
        assert lease.created and list(driver.labels) == [lease.sandbox_id]


async def test_the_pool_takes_a_warm_sandbox_for_a_new_run() -> None:
    driver = FakeDriver()
    async with WarmSandboxes(driver, 1) as warm:
        await eventually(lambda: _full(warm))
        ready = next(iter(driver.labels))
        pool = SandboxPool(driver, warm=warm)
        async with pool.locked("run-a"):
            lease = await pool.ensure("run-a")

        assert lease.sandbox_id == ready and lease.created
        assert pool.sandbox_of("run-a") == ready
