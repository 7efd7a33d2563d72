"""Sub-agents, in process: a spawn starts a child run, the parent waits for it durably, and the child's
outcome comes back as the spawn's tool result. Child ids are derived, so a retried spawn starts no twin."""

from __future__ import annotations

from services.brain.children import child_run_id
from tests.unit.brain.loop import Loop, call, of_type, scripted

CHILD = scripted(
    {"tool_calls": [call("write_file", path="child.txt", content="from the child\n")]},
    {"text": "child result"},
)
# A child that stops to ask a person, so that it is still unfinished when the test cancels it.
ASKS = scripted({"tool_calls": [call("bash", command="echo hi")]}, permissions={"bash": "ask"})


async def test_a_parent_waits_for_its_children_and_gets_their_answers(loop: Loop) -> None:
    parent = scripted(
        {
            "tool_calls": [
                call("spawn_agent", agent=CHILD, input="first task"),
                call("spawn_agent", agent=scripted({"text": "second result"}), input="second task"),
            ]
        },
        {"text": "parent done"},
        tools=["spawn_agent"],
    )
    run_id = await loop.start(parent)

    run = await loop.until(run_id, "completed")

    assert run["result"] == "parent done"
    events = await loop.events(run_id)
    started = of_type(events, "child.started")
    assert [s["child_run_id"] for s in started] == [child_run_id(run_id, s["call_id"]) for s in started]
    results = {r["call_id"]: r for r in of_type(events, "tool.result")}
    assert [results[s["call_id"]]["output"] for s in started] == ["child result", "second result"]
    for child in started:
        child_run = await loop.run(child["child_run_id"])
        assert child_run["parent_run_id"] == run_id and child_run["status"] == "completed"
    [waiting] = of_type(events, "run.waiting")
    assert waiting["waiting_for"]["type"] == "child" and len(waiting["waiting_for"]["children"]) == 2


async def test_a_failed_child_reaches_the_parent_as_a_failed_result(loop: Loop) -> None:
    parent = scripted(
        {"tool_calls": [call("spawn_agent", agent=ASKS, input="doomed")]},
        {"text": "parent carried on"},
        tools=["spawn_agent"],
    )
    run_id = await loop.start(parent)
    await loop.until(run_id, "waiting")
    [started] = of_type(await loop.events(run_id), "child.started")
    await loop.until(started["child_run_id"], "waiting")
    cancelled = await loop.post(f"/v1/runs/{started['child_run_id']}/cancel")
    assert cancelled.status_code == 202

    assert (await loop.until(run_id, "completed"))["result"] == "parent carried on"
    [result] = of_type(await loop.events(run_id), "tool.result")
    assert (result["ok"], result["error"]) == (False, "child_cancelled")


async def test_a_spawn_that_cannot_happen_is_refused_without_a_child(loop: Loop) -> None:
    parent = scripted(
        {"tool_calls": [call("spawn_agent", agent_id="no-such-agent", input="task")]},
        {"text": "handled"},
        tools=["spawn_agent"],
    )
    run_id = await loop.start(parent)

    await loop.until(run_id, "completed")
    events = await loop.events(run_id)
    [refused] = of_type(events, "tool.result")
    assert refused["error"] == "spawn_refused" and "no-such-agent" in refused["output"]
    assert not of_type(events, "child.started")


async def test_children_nest_no_deeper_than_the_limit(database_url: str, tmp_path: object) -> None:
    from pathlib import Path

    agent: dict[str, object] = scripted({"text": "leaf"})
    for _ in range(2):
        agent = scripted(
            {"tool_calls": [call("spawn_agent", agent=agent, input="go deeper")]},
            {"text": "level done"},
            tools=["spawn_agent"],
        )
    async with Loop(database_url, Path(str(tmp_path)), max_agent_depth=1) as loop:
        run_id = await loop.start(agent)
        await loop.until(run_id, "completed")
        [started] = of_type(await loop.events(run_id), "child.started")
        child_events = await loop.events(started["child_run_id"])

    [refused] = of_type(child_events, "tool.result")
    assert refused["error"] == "spawn_refused" and "at most 1 deep" in refused["output"]
