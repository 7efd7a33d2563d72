import asyncio

from services.brain.admission import WINDOW_SECONDS, AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def window(limit: AdaptiveLimit, clock: Clock, seconds: float) -> None:
    """One window of commits that each took `seconds`."""
    for _ in range(10):
        limit.observe(seconds)
    clock.now += WINDOW_SECONDS
    limit.observe(seconds)


async def test_slow_commits_shrink_the_limit_down_to_its_floor() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_seconds=0.05, ceiling=1000, floor=4, clock=clock)
    start = limit.limit
    window(limit, clock, 0.2)
    assert limit.limit < start
    for _ in range(50):
        window(limit, clock, 0.2)
    assert limit.limit == 4


async def test_fast_commits_grow_the_limit_only_while_runs_wait_for_room() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_seconds=0.05, ceiling=40, clock=clock)
    start = limit.limit
    window(limit, clock, 0.001)
    assert limit.limit == start  # nobody waited: no reason to hold more runs

    held = int(limit.limit)
    waiter = asyncio.create_task(limit.room(lambda: held))
    await asyncio.sleep(0)
    assert not waiter.done()
    window(limit, clock, 0.001)
    assert limit.limit > start
    await asyncio.wait_for(waiter, 1)  # the grown limit lets the waiting run in

    crowd = asyncio.create_task(limit.room(lambda: 10_000))  # more work than any limit allows
    for _ in range(100):
        await asyncio.sleep(0)  # the crowd looks again after each change, and waits again
        window(limit, clock, 0.001)
    assert limit.limit == 40
    crowd.cancel()


async def test_a_run_let_go_makes_room() -> None:
    limit = AdaptiveLimit(target_seconds=0.05, ceiling=2, floor=1)
    held = [2]
    waiter = asyncio.create_task(limit.room(lambda: held[0]))
    await asyncio.sleep(0)
    assert not waiter.done()
    held[0] = 1
    limit.changed()
    await asyncio.wait_for(waiter, 1)


async def test_runs_that_wait_long_on_their_model_let_the_limit_grow() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_seconds=0.05, ceiling=100, clock=clock)
    start = limit.limit
    waiter = asyncio.create_task(limit.room(lambda: int(start)))  # held runs, none committing
    await asyncio.sleep(0)
    clock.now += WINDOW_SECONDS
    await asyncio.wait_for(waiter, 1)  # the window ended without a slow commit
    assert limit.limit > start
