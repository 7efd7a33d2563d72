"""A run's new sandbox is observed as warm when claimed from the warm pool and cold when started."""

from __future__ import annotations

from harness.waiting import eventually
from services.core.metrics import REGISTRY
from services.hands.fleet.pool import SandboxPool
from services.hands.fleet.warm import WarmSandboxes
from tests.unit.hands.fake_driver import FakeDriver


def acquired(start: str) -> float:
    return REGISTRY.get_sample_value("loopd_hands_sandbox_acquire_seconds_count", {"start": start}) or 0.0


async def test_acquires_are_observed_warm_then_cold() -> None:
    driver = FakeDriver()
    before = acquired("warm"), acquired("cold")
    async with WarmSandboxes(driver, 1) as warm:
        pool = SandboxPool(driver, warm=warm)

        async def ready() -> bool:
            return len(warm) == 1

        await eventually(ready)
        async with pool.locked("run-a"):
            await pool.ensure("run-a")
        assert (acquired("warm"), acquired("cold")) == (before[0] + 1, before[1])

    async with pool.locked("run-b"):  # the warm pool is closed: nothing is ready
        await pool.ensure("run-b")
    async with pool.locked("run-b"):  # the run's live sandbox is no new acquire
        await pool.ensure("run-b")
    assert (acquired("warm"), acquired("cold")) == (before[0] + 1, before[1] + 1)
    assert len(pool) == 2
