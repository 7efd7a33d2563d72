from __future__ import annotations

import pytest

from services.core.bus import HandsInfo, build_bus
from services.hands.fleet.janitor import Janitor
from services.hands.sandbox import CreateSandbox

from .fake_driver import FakeDriver

LABEL = "loopd.hands_id"
OURS = {"loopd.registry": "ours"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def leave(driver: FakeDriver, owner: str) -> str:
    return await driver.create(CreateSandbox(labels={LABEL: owner, **OURS}))


async def test_an_owner_is_taken_for_dead_only_after_missing_for_the_whole_grace_period() -> None:
    bus, driver, clock = build_bus("local://"), FakeDriver(), Clock()
    janitor = Janitor(driver, bus, label=LABEL, among=OURS, own_id="me", grace_seconds=60, clock=clock)
    dead = await leave(driver, "dead")
    back = await leave(driver, "back")
    mine = await leave(driver, "me")
    elsewhere = await driver.create(CreateSandbox(labels={LABEL: "dead", "loopd.registry": "theirs"}))

    assert await janitor.sweep() == []  # first seen missing now
    clock.now += 30
    await bus.register_hands(HandsInfo("back", "127.0.0.1:1", 1, 1), ttl=10)  # re-registers in time
    assert await janitor.sweep() == []
    await bus.unregister_hands("back")
    clock.now += 31
    assert await janitor.sweep() == [dead]  # "back" has been missing for 31 s only
    assert set(driver.labels) == {back, mine, elsewhere}
    await bus.aclose()


async def test_nothing_is_removed_when_the_registry_cannot_be_read() -> None:
    bus, driver, clock = build_bus("local://"), FakeDriver(), Clock()
    janitor = Janitor(driver, bus, label=LABEL, among=OURS, own_id="me", grace_seconds=1, clock=clock)
    dead = await leave(driver, "dead")
    await bus.aclose()

    async def unreadable() -> list[HandsInfo]:
        raise ConnectionError("the registry is away")

    bus.list_hands = unreadable  # type: ignore[method-assign]
    for _ in range(3):
        clock.now += 10
        with pytest.raises(ConnectionError):
            await janitor.sweep()
    assert set(driver.labels) == {dead}
