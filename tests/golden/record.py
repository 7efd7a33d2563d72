"""Records golden event logs: real runs of the in-process loop, one file per kind of run, each holding
every log the run made with the state the fold gives at its end and after each of its events.

    python -m tests.golden.record [KIND ...]

An existing file is never recorded again: its log is history the fold must keep reading the same
way (tests/unit/brain/test_golden_logs.py). A new kind of run gets a new file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness.servers import postgres_server
from harness.waiting import eventually
from services.brain.context import RunState, rebuild
from services.core.db.migrate import upgrade
from tests.unit.brain.loop import Loop, call, of_type, scripted, wire_event

GOLDEN = Path(__file__).parent
FORMAT = "loopd.golden-log/1"

Logs = list[tuple[str, str]]  # (name, run id) of each log a kind of run keeps
Scenario = Callable[[Loop], Awaitable[Logs]]


def state_of(state: RunState) -> dict[str, Any]:
    """The fold's state as JSON: what the golden files hold and what the replay compares."""
    document: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(state)))
    return document


def trail_of(run_id: str, events: list[Any]) -> list[dict[str, Any]]:
    """After each event, folding one at a time: the brain's next action and the state, its
    conversation counted (the final state holds it whole)."""
    state, trail = RunState(run_id=run_id), []
    for event in events:
        rebuild(run_id, [event], state)
        step = {**state_of(state), "messages": len(state.messages), "next_action": state.next_action().value}
        trail.append(step)
    return trail


async def tools(loop: Loop) -> Logs:
    agent = scripted(
        {"tool_calls": [call("write_file", path="src/app.py", content="print('hi')\n")]},
        {
            "tool_calls": [
                call("edit_file", path="src/app.py", old_string="hi", new_string="hello"),
                call("bash", command="echo built > build.log"),
            ]
        },
        {"tool_calls": [call("read_file", path="src/app.py"), call("list_files", path=".")]},
        {"tool_calls": [call("bash", command="cat missing.txt")]},
        {"tool_calls": [call("bash", command="exit 3"), call("nope", x=1)]},
        {"text": "built it"},
    )
    run_id = await loop.start(agent, "build the app")
    await loop.until(run_id, "completed")
    return [("run", run_id)]


async def approvals(loop: Loop) -> Logs:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    agent = scripted(
        {
            "tool_calls": [
                call("write_file", path="plan.txt", content="plan\n"),
                call("bash", command="cat plan.txt"),
            ]
        },
        {"tool_calls": [call("ask_user", question="What is it called?", schema=schema)]},
        {"tool_calls": [call("lookup", q="the name")]},
        {"text": "named and planned"},
        tools=["bash", "write_file", "ask_user"],
        client_tools=[{"name": "lookup", "description": "the caller looks it up"}],
        permissions={"bash": "ask", "write_file": "ask"},
    )
    run_id = await loop.start(agent, "plan it")
    run = await loop.until(run_id, "waiting")
    write_id, bash_id = run["waiting_for"]["call_ids"]
    await loop.post(f"/v1/runs/{run_id}/approvals/{write_id}", {"decision": "allow"})
    await loop.post(f"/v1/runs/{run_id}/approvals/{bash_id}", {"decision": "deny", "message": "no shell"})
    await _waiting_for(loop, run_id, "input")
    await loop.post(f"/v1/runs/{run_id}/messages", {"content": {"name": "loopd"}})
    run = await _waiting_for(loop, run_id, "tool_result")
    [lookup_id] = run["waiting_for"]["call_ids"]
    await loop.post(f"/v1/runs/{run_id}/tool_results/{lookup_id}", {"output": "found: loopd"})
    await loop.until(run_id, "completed")
    return [("run", run_id)]


async def fork(loop: Loop) -> Logs:
    agent = scripted(
        {"tool_calls": [call("write_file", path="f.txt", content="v1\n")]},
        {"tool_calls": [call("bash", command="echo v2 > f.txt")]},
        {"tool_calls": [call("bash", command="cat f.txt")]},
        {"text": "finished"},
    )
    parent_id = await loop.start(agent, "write twice")
    await loop.until(parent_id, "completed")
    events = await loop.events(parent_id)
    second = [e for e in events if e["type"] == "tool.call"][1]
    forked = await loop.post(
        f"/v1/runs/{parent_id}/fork",
        {
            "at_seq": second["seq"],
            "overrides": {"tool_result": {"call_id": second["data"]["call_id"], "output": "skipped"}},
        },
    )
    fork_id = str(forked.json()["id"])
    await loop.until(fork_id, "completed")
    return [("parent", parent_id), ("fork", fork_id)]


async def children(loop: Loop) -> Logs:
    writer = scripted(
        {"tool_calls": [call("write_file", path="part.txt", content="part\n")]}, {"text": "wrote the part"}
    )
    asks = scripted({"tool_calls": [call("bash", command="echo hi")]}, permissions={"bash": "ask"})
    agent = scripted(
        {
            "tool_calls": [
                call("spawn_agent", agent=writer, input="write the part"),
                call("spawn_agent", agent=asks, input="wait for a person"),
                call("spawn_agent", input="no agent named"),
            ]
        },
        {"text": "the team is done"},
        tools=["spawn_agent"],
    )
    parent_id = await loop.start(agent, "split the work")
    await loop.until(parent_id, "waiting")
    started = of_type(await loop.events(parent_id), "child.started")
    writer_id, asks_id = (s["child_run_id"] for s in started)
    await loop.until(asks_id, "waiting")
    await loop.post(f"/v1/runs/{asks_id}/cancel", {"reason": "not needed"})
    await loop.until(parent_id, "completed")
    return [("parent", parent_id), ("writer", writer_id), ("cancelled", asks_id)]


async def sandbox_lost(loop: Loop) -> Logs:
    agent = scripted(
        {"tool_calls": [call("write_file", path="kept.txt", content="kept\n")]},
        {"tool_calls": [call("bash", command="echo idle death")]},
        {"tool_calls": [call("bash", command="echo again > kept.txt")]},
        {"tool_calls": [call("bash", command="kill 1")]},
        {"tool_calls": [call("read_file", path="kept.txt")]},
        {"tool_calls": [call("list_files", path=".")]},
        {"text": "survived"},
        permissions={"list_files": "ask"},
    )
    for hands in loop.hands.values():
        hands.driver.dies_after("echo idle death")
        hands.driver.lose_during("echo again > kept.txt")
    run_id = await loop.start(agent, "keep the file")
    run = await loop.until(run_id, "waiting")
    # While the run waits, the worker that held its sandbox stops answering.
    provisioned = of_type(await loop.events(run_id), "sandbox.provisioned")[-1]
    loop.unreachable.add(loop.hands[provisioned["hands_id"]].address)
    [list_id] = run["waiting_for"]["call_ids"]
    await loop.post(f"/v1/runs/{run_id}/approvals/{list_id}", {"decision": "allow"})
    await loop.until(run_id, "completed")
    return [("run", run_id)]


async def interrupts_and_budgets(loop: Loop) -> Logs:
    agent = scripted(
        {"tool_calls": [call("bash", command="sleep 60")]},
        {"tool_calls": [call("bash", command="sleep 61")]},
        {"tool_calls": [call("write_file", path="a", content="1")]},
        {"text": "done at last"},
    )
    run_id = await loop.start(agent, "take your time", budget={"max_steps": 3})
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true("sleep 60" in driver.commands))
    await loop.post(f"/v1/runs/{run_id}/interrupt", {"message": "stop that"})
    await eventually(lambda: _true("sleep 61" in driver.commands))
    await loop.post(f"/v1/runs/{run_id}/interrupt")
    await _waiting_for(loop, run_id, "interrupt")
    await loop.post(f"/v1/runs/{run_id}/messages", {"content": "carry on"})
    await _waiting_for(loop, run_id, "budget")
    await loop.post(f"/v1/runs/{run_id}/budget", {"max_steps": 10})
    await loop.until(run_id, "completed")
    return [("run", run_id)]


async def conversation(loop: Loop) -> Logs:
    agent = scripted(
        {"tool_calls": [call("bash", command="sleep 0.5")]},
        {"text": "first answer", "sleep": 1.0},
        {"text": "second answer"},
        {"text": "third answer"},
    )
    run_id = await loop.start(agent, "talk to me")
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _true("sleep 0.5" in driver.commands))
    # Sent while the tool runs: it follows the tool's result.
    await loop.post(f"/v1/runs/{run_id}/messages", {"content": "also this"})
    await eventually(lambda: _events_of_type(loop, run_id, "tool.result"))
    # Sent while the model answers: the answer did not see it, so it comes after the answer.
    await loop.post(f"/v1/runs/{run_id}/messages", {"content": "one more thing"})
    await loop.until(run_id, "completed")
    # A message to a finished run is a new turn.
    await loop.post(f"/v1/runs/{run_id}/messages", {"content": "and now?"})
    await eventually(lambda: _events_of_type(loop, run_id, "run.completed", count=2))
    return [("run", run_id)]


SCENARIOS: dict[str, tuple[str, Scenario, dict[str, Any]]] = {
    "conversation": (
        "messages sent while a tool runs, while the model answers, and to the finished run",
        conversation,
        {},
    ),
    "tools": ("file tools, bash, a failing command and an unknown tool", tools, {}),
    "approvals": ("an allowed and a denied call, an ask_user answer and a client tool", approvals, {}),
    "fork": ("a finished run and its fork at a pending call, with the result overridden", fork, {}),
    "children": ("a parent with a child that completes, one cancelled and one refused", children, {}),
    "sandbox_lost": (
        "a sandbox dying idle, one lost mid-call and retried, one lost for good, a worker gone",
        sandbox_lost,
        {"hands": 2},
    ),
    "interrupts_and_budgets": (
        "an interrupt with a message, one without, a reached budget raised",
        interrupts_and_budgets,
        {},
    ),
}


async def _waiting_for(loop: Loop, run_id: str, kind: str) -> dict[str, Any]:
    async def waiting() -> dict[str, Any] | None:
        run = await loop.run(run_id)
        return run if (run["waiting_for"] or {}).get("type") == kind else None

    return await eventually(waiting, timeout=20)


async def _events_of_type(loop: Loop, run_id: str, kind: str, count: int = 1) -> bool:
    return len(of_type(await loop.events(run_id), kind)) >= count


async def _true(value: bool) -> bool:
    return value


async def record(kind: str, database_url: str, root: Path) -> dict[str, Any]:
    description, scenario, options = SCENARIOS[kind]
    async with Loop(database_url, root, **options) as loop:
        named = await scenario(loop)
        logs = []
        for name, run_id in named:
            events = await loop.events(run_id)
            folded = [wire_event(run_id, e) for e in events]
            logs.append(
                {
                    "name": name,
                    "run_id": run_id,
                    "events": events,
                    "state": state_of(rebuild(run_id, folded)),
                    "trail": trail_of(run_id, folded),
                }
            )
    return {"format": FORMAT, "kind": kind, "description": description, "logs": logs}


def main(kinds: list[str]) -> None:
    unknown = sorted(set(kinds) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; known: {sorted(SCENARIOS)}")
    wanted = [k for k in kinds or SCENARIOS if not (GOLDEN / f"{k}.json").exists()]
    if not wanted:
        print("every golden log is recorded already; old ones are never recorded again")
        return
    with postgres_server() as postgres, tempfile.TemporaryDirectory() as scratch:
        upgrade(postgres.url)
        for kind in wanted:
            document = asyncio.run(record(kind, postgres.url, Path(scratch) / kind))
            path = GOLDEN / f"{kind}.json"
            path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
            print(f"recorded {path.name}: {[len(log['events']) for log in document['logs']]} events")


if __name__ == "__main__":
    main(sys.argv[1:])
