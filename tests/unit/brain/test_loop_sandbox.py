"""Sandboxes and hands workers that go away, in process: the brain records the loss, moves the run to
a fresh sandbox or another worker, and the workspace comes back from the last committed snapshot."""

from __future__ import annotations

import functools
from pathlib import Path

from harness.waiting import eventually
from tests.unit.brain.loop import Loop, call, of_type, scripted

WRITE = call("write_file", path="kept.txt", content="kept\n")


async def test_a_sandbox_that_died_while_idle_is_replaced_with_the_workspace_restored(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [WRITE]},
        {"tool_calls": [call("bash", command="echo mark")]},
        {"tool_calls": [call("bash", command="cat kept.txt")]},
        {"text": "done"},
    )
    loop.hands["hands-1"].driver.dies_after("echo mark")
    run_id = await loop.start(agent)

    await loop.until(run_id, "completed")

    events = await loop.events(run_id)
    assert of_type(events, "tool.result")[-1]["output"] == "kept\n"
    provisioned = of_type(events, "sandbox.provisioned")
    [lost] = of_type(events, "sandbox.lost")
    assert len(provisioned) == 2 and lost == {
        "sandbox_id": provisioned[0]["sandbox_id"],
        "reason": "replaced by a fresh sandbox",
    }


async def test_a_sandbox_lost_mid_call_is_retried_from_the_call_base(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [WRITE]},
        {"tool_calls": [call("bash", command="echo again > kept.txt")]},
        {"tool_calls": [call("read_file", path="kept.txt")]},
        {"text": "done"},
    )
    loop.hands["hands-1"].driver.lose_during("echo again > kept.txt")
    run_id = await loop.start(agent)

    await loop.until(run_id, "completed")

    events = await loop.events(run_id)
    results = of_type(events, "tool.result")
    assert [r["ok"] for r in results] == [True, True, True]
    assert results[-1]["output"] == "again\n"
    assert len(of_type(events, "sandbox.lost")) == 1 and len(of_type(events, "sandbox.provisioned")) == 2
    assert loop.hands["hands-1"].driver.commands.count("echo again > kept.txt") == 2


async def test_a_sandbox_that_keeps_dying_reaches_the_model_as_a_tool_error(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="kill 1")]}, {"text": "gave up"})
    run_id = await loop.start(agent)

    assert (await loop.until(run_id, "completed"))["result"] == "gave up"

    events = await loop.events(run_id)
    [result] = of_type(events, "tool.result")
    assert (result["ok"], result["error"]) == (False, "sandbox_lost")
    attempts = 3  # the agents' retry policy in these tests
    assert len(of_type(events, "sandbox.lost")) == attempts
    assert loop.hands["hands-1"].driver.commands == ["kill 1"] * attempts


async def test_an_unreachable_worker_is_skipped_for_another(database_url: str, tmp_path: Path) -> None:
    async with Loop(database_url, tmp_path, hands=2) as loop:
        unreachable = loop.hands["hands-2"].address
        loop.unreachable.add(unreachable)
        # A run in a long call takes a slot of hands-1, so the next run prefers hands-2, which has more free.
        await loop.start(scripted({"tool_calls": [call("bash", command="sleep 60")]}))
        await eventually(lambda: busy(loop, "hands-1", 1))
        refused_before = len(loop.refused)
        run_id = await loop.start(scripted({"tool_calls": [WRITE]}, {"text": "done"}))
        await loop.until(run_id, "completed")
        events = await loop.events(run_id)

    assert loop.refused[refused_before:] == [unreachable]
    [provisioned] = of_type(events, "sandbox.provisioned")
    assert provisioned["hands_id"] == "hands-1"
    assert of_type(events, "tool.result")[0]["ok"] is True


async def test_new_runs_go_to_the_workers_with_most_free_slots(database_url: str, tmp_path: Path) -> None:
    async with Loop(database_url, tmp_path, hands=3) as loop:
        for started in range(1, 7):
            await loop.start(scripted({"tool_calls": [call("bash", command="sleep 60")]}))
            await eventually(functools.partial(busy_in_all, loop, started))
        held = {worker.hands_id: len(worker.pool.snapshot()) for worker in loop.hands.values()}

    assert held == {"hands-1": 2, "hands-2": 2, "hands-3": 2}


async def test_a_run_whose_worker_left_moves_to_another_with_its_workspace(
    database_url: str, tmp_path: Path
) -> None:
    agent = scripted(
        {"tool_calls": [WRITE]},
        {"tool_calls": [call("bash", command="cat kept.txt")]},
        {"text": "done"},
        permissions={"bash": "ask"},
    )
    async with Loop(database_url, tmp_path, hands=2) as loop:
        run_id = await loop.start(agent)
        run = await loop.until(run_id, "waiting")
        first = of_type(await loop.events(run_id), "sandbox.provisioned")[0]["hands_id"]
        loop.unreachable.add(loop.hands[first].address)
        [call_id] = run["waiting_for"]["call_ids"]
        await loop.post(f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "allow"})
        await loop.until(run_id, "completed")
        events = await loop.events(run_id)

    assert [p["hands_id"] for p in of_type(events, "sandbox.provisioned")][1:] != [first]
    assert of_type(events, "tool.result")[-1]["output"] == "kept\n"


async def test_a_run_whose_worker_is_draining_moves_to_another_without_calling_it(
    database_url: str, tmp_path: Path
) -> None:
    agent = scripted(
        {"tool_calls": [WRITE]},
        {"tool_calls": [call("bash", command="cat kept.txt")]},
        {"text": "done"},
        permissions={"bash": "ask"},
    )
    async with Loop(database_url, tmp_path, hands=2) as loop:
        run_id = await loop.start(agent)
        run = await loop.until(run_id, "waiting")
        first = of_type(await loop.events(run_id), "sandbox.provisioned")[0]["hands_id"]
        loop.hands[first].drain()

        async def listed_draining() -> bool:
            return any(h.draining for h in await loop.bus.list_hands() if h.hands_id == first)

        await eventually(listed_draining)
        [call_id] = run["waiting_for"]["call_ids"]
        await loop.post(f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "allow"})
        await loop.until(run_id, "completed")
        events = await loop.events(run_id)

    assert [p["hands_id"] for p in of_type(events, "sandbox.provisioned")][1:] != [first]
    [lost] = of_type(events, "sandbox.lost")
    assert lost["reason"] == "hands worker is stopping"
    assert of_type(events, "tool.result")[-1]["output"] == "kept\n"
    assert loop.hands[first].driver.commands == [], "the draining worker got no call"


async def test_a_run_fails_when_no_hands_worker_comes(database_url: str, tmp_path: Path) -> None:
    async with Loop(database_url, tmp_path, hands=0, hands_wait_seconds=0.05) as loop:
        run_id = await loop.start(scripted({"tool_calls": [WRITE]}))
        run = await loop.until(run_id, "failed")

    assert run["error"]["code"] == "no_hands"


async def busy(loop: Loop, hands_id: str, calls: int) -> bool:
    """Whether the registry, as brains read it, shows `calls` calls running on the worker."""
    return any(
        h.hands_id == hands_id and h.slots_total - h.slots_free == calls for h in await loop.bus.list_hands()
    )


async def busy_in_all(loop: Loop, calls: int) -> bool:
    return sum(h.slots_total - h.slots_free for h in await loop.bus.list_hands()) == calls
