"""People in the loop, in process: approvals, questions, client tools, interrupts and budgets make the
run wait durably, holding nothing, and the brain picks it up again from the log."""

from __future__ import annotations

import json

from harness.waiting import eventually
from services.brain.context import rebuild
from tests.unit.brain.loop import Loop, call, holds_nothing, of_type, scripted, wire_event


async def test_a_call_that_asks_waits_holding_nothing_and_runs_once_allowed(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [call("write_file", path="plan.txt", content="plan\n")]},
        {"tool_calls": [call("bash", command="cat plan.txt")]},
        {"text": "done"},
        permissions={"bash": "ask"},
    )
    run_id = await loop.start(agent)

    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"]["type"] == "approval"
    [call_id] = run["waiting_for"]["call_ids"]
    await eventually(lambda: holds_nothing(loop, run_id))
    allowed = await loop.post(f"/v1/runs/{run_id}/approvals/{call_id}", {"decision": "allow"})
    assert allowed.status_code == 202

    await loop.until(run_id, "completed")
    results = of_type(await loop.events(run_id), "tool.result")
    assert results[-1]["output"] == "plan\n"
    # The restored workspace came from the snapshot of the first call, on a fresh sandbox.
    assert len(of_type(await loop.events(run_id), "sandbox.provisioned")) == 2


async def test_a_denied_call_reaches_the_model_as_a_refusal_without_a_sandbox(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [call("bash", command="echo no")]}, {"text": "understood"}, permissions={"bash": "ask"}
    )
    run_id = await loop.start(agent)
    run = await loop.until(run_id, "waiting")
    [call_id] = run["waiting_for"]["call_ids"]

    denial = {"decision": "deny", "message": "not today"}
    assert (await loop.post(f"/v1/runs/{run_id}/approvals/{call_id}", denial)).status_code == 202

    await loop.until(run_id, "completed")
    events = await loop.events(run_id)
    [denied] = of_type(events, "tool.result")
    assert (denied["ok"], denied["error"], denied["output"]) == (False, "denied", "not today")
    assert not of_type(events, "sandbox.provisioned") and loop.hands["hands-1"].driver.commands == []


async def test_ask_user_waits_for_an_answer_that_matches_its_schema(loop: Loop) -> None:
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}}, "required": ["color"]}
    agent = scripted(
        {"tool_calls": [call("ask_user", question="Which color?", schema=schema)]},
        {"text": "thanks"},
        tools=["ask_user"],
    )
    run_id = await loop.start(agent)
    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"]["question"] == "Which color?"

    wrong = await loop.post(f"/v1/runs/{run_id}/messages", {"content": {"color": "green"}})
    assert wrong.status_code == 422
    assert (await loop.post(f"/v1/runs/{run_id}/messages", {"content": {"color": "blue"}})).status_code == 202

    await loop.until(run_id, "completed")
    [answer] = of_type(await loop.events(run_id), "tool.result")
    assert json.loads(answer["output"]) == {"color": "blue"}


async def test_a_client_tool_waits_for_the_caller_and_its_result_goes_to_the_model(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [call("lookup", q="weather")]},
        {"text": "it is sunny"},
        tools=[],
        client_tools=[{"name": "lookup"}],
    )
    run_id = await loop.start(agent)
    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"]["type"] == "tool_result"
    [call_id] = run["waiting_for"]["call_ids"]

    posted = await loop.post(f"/v1/runs/{run_id}/tool_results/{call_id}", {"output": "sunny"})
    assert posted.status_code == 202

    assert (await loop.until(run_id, "completed"))["result"] == "it is sunny"
    [result] = of_type(await loop.events(run_id), "tool.result")
    assert (result["ok"], result["output"]) == (True, "sunny")


async def test_an_interrupt_cuts_a_running_call_short_and_delivers_its_message(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="sleep 60")]}, {"text": "stopped as asked"})
    run_id = await loop.start(agent)
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _async("sleep 60" in driver.commands))

    interrupted = await loop.post(f"/v1/runs/{run_id}/interrupt", {"message": "stop and summarise"})
    assert interrupted.status_code == 202

    run = await loop.until(run_id, "completed")
    assert run["result"] == "stopped as asked"
    events = await loop.events(run_id)
    [result] = of_type(events, "tool.result")
    assert result["error"] == "interrupted"
    conversation = rebuild(run_id, [wire_event(run_id, e) for e in events]).messages
    assert [(m.role, m.content) for m in conversation][-3:] == [
        ("tool", result["output"]),
        ("user", "stop and summarise"),
        ("assistant", "stopped as asked"),
    ]


async def test_an_interrupt_without_a_message_pauses_until_the_next_message(loop: Loop) -> None:
    agent = scripted({"tool_calls": [call("bash", command="sleep 60")]}, {"text": "resumed"})
    run_id = await loop.start(agent)
    driver = loop.hands["hands-1"].driver
    await eventually(lambda: _async("sleep 60" in driver.commands))

    assert (await loop.post(f"/v1/runs/{run_id}/interrupt")).status_code == 202
    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"] == {"type": "interrupt"}

    assert (await loop.post(f"/v1/runs/{run_id}/messages", {"content": "go on"})).status_code == 202
    assert (await loop.until(run_id, "completed"))["result"] == "resumed"


async def test_a_reached_budget_waits_for_a_raise_and_then_goes_on(loop: Loop) -> None:
    agent = scripted(
        {"tool_calls": [call("write_file", path="a", content="1")]},
        {"tool_calls": [call("write_file", path="b", content="2")]},
        {"text": "done"},
    )
    run_id = await loop.start(agent, budget={"max_steps": 2})

    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"] == {"type": "budget", "limit": "max_steps", "used": 2, "allowed": 2}
    await eventually(lambda: holds_nothing(loop, run_id))
    assert (await loop.post(f"/v1/runs/{run_id}/budget", {"max_steps": 5})).status_code == 202

    assert (await loop.until(run_id, "completed"))["result"] == "done"
    assert of_type(await loop.events(run_id), "budget.raised") == [{"max_steps": 5}]


async def _async(value: bool) -> bool:
    return value
