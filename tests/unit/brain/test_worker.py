"""The brain worker: a stop lets the drives in flight finish, a bus that fails an ack does not end its
taking, and its sweeper wakes runs whose wake-up was lost and hands children that finished undelivered
to their waiting parent. The sweeper's tests
share a database of their own, since the sweeper looks at every run in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.waiting import eventually
from services.core import runs as run_store
from services.core.bus import WakeUp
from tests.unit.brain.loop import Loop, call, of_type, scripted


async def test_a_stopping_worker_lets_the_drive_in_flight_finish(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="sleep 0.3")]}, {"text": "finished in time"})
    run_id = await loop.start(agent)
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true("sleep 0.3" in driver.commands))
    assert loop.brain is not None

    await loop.brain.stop()

    run = await loop.run(run_id)
    assert (run["status"], run["result"]) == ("completed", "finished in time")


async def _true(value: bool) -> bool:
    return value


async def test_a_run_whose_wake_up_was_lost_is_woken_by_the_sweeper(
    module_database_url: str, tmp_path: Path
) -> None:
    async with Loop(module_database_url, tmp_path, sweep_interval_seconds=0.2) as loop:
        run_id = await loop.create_unwoken(scripted({"text": "found it"}))

        assert (await loop.until(run_id, "completed"))["result"] == "found it"


async def test_a_child_that_finished_undelivered_reaches_its_parent_through_the_sweeper(
    module_database_url: str, tmp_path: Path
) -> None:
    child = scripted({"tool_calls": [call("bash", command="echo hi")]}, permissions={"bash": "ask"})
    parent = scripted(
        {"tool_calls": [call("spawn_agent", agent=child, input="task")]},
        {"text": "parent done"},
        tools=["spawn_agent"],
    )
    async with Loop(module_database_url, tmp_path, sweep_interval_seconds=0.2) as loop:
        run_id = await loop.start(parent)
        await loop.until(run_id, "waiting")
        [started] = of_type(await loop.events(run_id), "child.started")
        await loop.until(started["child_run_id"], "waiting")
        # The child ends without any brain seeing it end (as if the one stepping it died just then).
        async with loop.engine.begin() as conn:
            await run_store.cancel_tree(conn, started["child_run_id"], "gone")

        assert (await loop.until(run_id, "completed"))["result"] == "parent done"
        [result] = of_type(await loop.events(run_id), "tool.result")
        assert result["error"] == "child_cancelled"


async def test_a_wake_up_that_cannot_be_acked_does_not_stop_the_brain_taking_others(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = await loop.start(scripted({"tool_calls": [call("bash", command="sleep 1")]}, {"text": "one"}))
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true("sleep 1" in driver.commands))
    acked = loop.bus.ack
    failed: list[str] = []

    async def ack_failing_once(wakeup: WakeUp) -> None:
        if not failed:
            failed.append(wakeup.run_id)
            raise ConnectionError("the bus went away")
        await acked(wakeup)

    monkeypatch.setattr(loop.bus, "ack", ack_failing_once)
    # A second wake-up of the run in flight: the brain acks it at once, and that ack fails.
    await loop.bus.wake(busy)
    await eventually(lambda: _true(bool(failed)))
    other = await loop.start(scripted({"text": "two"}))

    assert failed == [busy]
    assert (await loop.until(other, "completed"))["result"] == "two"
    assert (await loop.until(busy, "completed"))["result"] == "one"
