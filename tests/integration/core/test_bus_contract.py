"""One contract, two buses: the Redis bus and the in-process bus behave the same."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from harness.waiting import eventually
from services.core.bus import Bus, HandsInfo, build_bus, run_channel


@pytest.fixture(params=["redis", "local"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else "local://"
    built = build_bus(url, visibility_timeout=0.5)
    yield built
    await built.aclose()


async def drain(bus: Bus) -> None:
    while (wakeup := await bus.take("drainer", timeout=0.05)) is not None:
        await bus.ack(wakeup)


async def test_a_wakeup_is_taken_once_and_acked(bus: Bus) -> None:
    await drain(bus)
    run_id = f"run_{secrets.token_hex(4)}"
    await bus.wake(run_id)
    first = await bus.take("brain-a", timeout=2)
    assert first is not None and first.run_id == run_id
    await bus.ack(first)
    assert await bus.take("brain-b", timeout=0.8) is None


async def test_an_unacked_wakeup_is_delivered_again_after_the_visibility_timeout(bus: Bus) -> None:
    await drain(bus)
    run_id = f"run_{secrets.token_hex(4)}"
    await bus.wake(run_id)
    taken = await bus.take("dying-brain", timeout=2)
    assert taken is not None and taken.run_id == run_id

    async def redelivered() -> bool:
        again = await bus.take("other-brain", timeout=0.2)
        if again is None:
            return False
        await bus.ack(again)
        return again.run_id == run_id

    await eventually(redelivered, timeout=5)


async def test_published_messages_reach_every_live_subscriber(bus: Bus) -> None:
    channel = run_channel(f"run_{secrets.token_hex(4)}")
    async with bus.subscribe(channel) as first, bus.subscribe(channel) as second:
        await bus.publish(channel, {"seq": 1, "type": "run.created"})
        got_first = await asyncio.wait_for(anext(aiter(first)), 5)
        got_second = await asyncio.wait_for(anext(aiter(second)), 5)
    assert got_first == got_second == {"seq": 1, "type": "run.created"}


async def test_publish_to_a_channel_without_subscribers_is_harmless(bus: Bus) -> None:
    await bus.publish(run_channel("nobody"), {"seq": 1})


async def test_hands_registry_entries_expire_without_heartbeats(bus: Bus) -> None:
    hands_id = f"hands-{secrets.token_hex(4)}"
    info = HandsInfo(
        hands_id=hands_id, address="127.0.0.1:1", slots_total=4, slots_free=3, sandboxes=("run_x",)
    )
    await bus.register_hands(info, ttl=0.5)
    listed = {h.hands_id: h for h in await bus.list_hands()}
    assert listed[hands_id] == info

    async def expired() -> bool:
        return hands_id not in {h.hands_id for h in await bus.list_hands()}

    await eventually(expired, timeout=5)


async def test_unregister_removes_a_worker_at_once(bus: Bus) -> None:
    hands_id = f"hands-{secrets.token_hex(4)}"
    await bus.register_hands(HandsInfo(hands_id, "127.0.0.1:2", 1, 1), ttl=30)
    await bus.unregister_hands(hands_id)
    assert hands_id not in {h.hands_id for h in await bus.list_hands()}


async def test_ping(bus: Bus) -> None:
    await bus.ping()


async def one_call(bus: Bus, call: str) -> None:
    channel = run_channel(f"run_{secrets.token_hex(4)}")
    if call == "publish":
        await bus.publish(channel, {"seq": 1})
    elif call == "wake":
        await bus.wake(f"run_{secrets.token_hex(4)}")
    elif call == "take":
        await bus.take(f"brain-{secrets.token_hex(2)}", timeout=0.01)
    elif call == "subscribe":
        async with bus.subscribe(channel):
            pass
    else:
        await bus.list_hands()


@pytest.mark.parametrize("call", ["publish", "wake", "take", "subscribe", "list_hands"])
async def test_a_cancelled_call_always_cancels_its_caller(bus: Bus, call: str) -> None:
    """Whenever the cancel lands, the caller gets CancelledError: it never carries on as if nothing
    happened (a run's stop watcher that did would hold its step, and so its lease, forever)."""
    carried_on = []
    for attempt in range(150):
        task = asyncio.create_task(one_call(bus, call))
        for _ in range(attempt % 30):  # cancel after 0 to 29 turns of the loop: every point of the call
            await asyncio.sleep(0)
        if not task.cancel():
            continue  # it had finished already
        try:
            await task
        except asyncio.CancelledError:
            continue
        carried_on.append(attempt)
    assert carried_on == []
