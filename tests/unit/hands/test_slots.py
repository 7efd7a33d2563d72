"""Call slots are shared fairly: a share at its limit waits while other calls take the free slots."""

from __future__ import annotations

import asyncio

import pytest

from services.core.errors import HandsStopping
from services.hands.calls.slots import Slots


async def test_a_share_at_its_limit_waits_while_another_takes_a_free_slot() -> None:
    slots = Slots(4)
    tree = slots.share("tree:a", 0.5)
    greedy = [slots.ticket([tree]) for _ in range(8)]

    assert [await t.granted(within=0) for t in greedy] == [True, True] + [False] * 6
    other = slots.ticket([slots.share("tree:b", 0.5)])
    assert await other.granted(within=0)
    assert slots.free == 1 and slots.held("tree:a") == 2

    greedy[0].release()
    assert await greedy[2].granted(within=1)
    assert not await greedy[3].granted(within=0)
    for ticket in [*greedy, other]:
        ticket.release()
    assert slots.free == 4 and slots.held("tree:a") == 0


async def test_waiting_calls_are_served_in_arrival_order() -> None:
    slots = Slots(1)
    first = slots.ticket()
    queued = [slots.ticket() for _ in range(3)]

    order = []
    for ticket in (first, *queued):
        assert await ticket.granted(within=1)
        order.append(ticket)
        ticket.release()

    assert order == [first, *queued]


async def test_a_call_that_stops_waiting_gives_up_its_place() -> None:
    slots = Slots(1)
    holder = slots.ticket()
    leaving, staying = slots.ticket(), slots.ticket()
    waiter = asyncio.ensure_future(leaving.granted())
    await asyncio.sleep(0)
    waiter.cancel()
    leaving.release()

    holder.release()

    assert await staying.granted(within=1)
    assert slots.free == 0
    staying.release()
    assert slots.free == 1


async def test_every_share_is_at_least_one_slot() -> None:
    slots = Slots(3)
    assert slots.share("tree:a", 0.1).limit == 1
    assert slots.share("tenant:t", 1.0).limit == 3
    async with slots.hold([slots.share("tree:a", 0.1)]):
        assert slots.free == 2


async def test_closed_slots_hand_back_the_waiting_calls_and_every_later_one() -> None:
    slots = Slots(1)
    holder = slots.ticket()
    queued = [slots.ticket(), slots.ticket()]
    assert slots.waiting == 2

    slots.close("stopping")

    for ticket in queued:
        with pytest.raises(HandsStopping, match="stopping"):
            await ticket.granted(within=1)
        ticket.release()
    later = slots.ticket()
    with pytest.raises(HandsStopping):
        await later.granted(within=0)
    later.release()
    assert slots.waiting == 0
    assert await holder.granted(within=0), "a call holding its slot keeps it"
    assert slots.free == 0
    holder.release()
    assert slots.free == 1
