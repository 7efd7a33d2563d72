"""Triage decides what a pending tool call needs before anything runs, from the folded state alone."""

from __future__ import annotations

from typing import Any

from services.brain.context import RunState
from services.brain.models import ToolCall
from services.brain.triage import Answer, Ask, Dispatch, Spawn, Wait, triage
from services.core.agents import AgentSpec
from services.core.status import RunStatus


def spec(**fields: Any) -> AgentSpec:
    return AgentSpec.model_validate({"model": "scripted", **fields})


def pending(*calls: ToolCall, **fields: Any) -> RunState:
    return RunState(run_id="run_t", status=RunStatus.RUNNING, pending={c.id: c for c in calls}, **fields)


LS = ToolCall("c1", "bash", {"command": "ls"})
CAT = ToolCall("c2", "read_file", {"path": "a.txt"})


def test_an_allowed_sandbox_tool_is_dispatched() -> None:
    assert triage(pending(LS), spec()) == Dispatch(LS)


def test_calls_that_need_a_person_wait_for_their_approvals_together() -> None:
    decision = triage(pending(LS, CAT), spec(permissions={"bash": "ask", "read_file": "ask"}))

    assert isinstance(decision, Wait)
    assert decision.waiting_for["type"] == "approval"
    assert decision.waiting_for["call_ids"] == ["c1", "c2"]
    assert decision.waiting_for["calls"][0] == {"call_id": "c1", "name": "bash", "input": {"command": "ls"}}


def test_an_approved_call_is_dispatched_and_a_denied_one_is_answered() -> None:
    asks = spec(permissions={"bash": "ask"})

    assert triage(pending(LS, approvals={"c1": ("allow", "")}), asks) == Dispatch(LS)
    denied = triage(pending(LS, approvals={"c1": ("deny", "not today")}), asks)
    assert isinstance(denied, Answer)
    assert denied.result["ok"] is False and denied.result["error"] == "denied"
    assert denied.result["output"] == "not today"


def test_a_denied_tool_is_refused_without_asking() -> None:
    decision = triage(pending(LS), spec(permissions={"bash": "deny"}))

    assert isinstance(decision, Answer)
    assert decision.result["call_id"] == "c1" and decision.result["error"] == "denied"


def test_ask_user_waits_for_input_and_a_bad_question_is_refused() -> None:
    agent = spec(tools=["ask_user"])
    question = ToolCall("q1", "ask_user", {"question": "Which file?", "schema": {"type": "string"}})

    asked = triage(pending(question), agent)
    assert isinstance(asked, Ask) and asked.waiting_for == (
        {"type": "input", "call_id": "q1", "question": "Which file?", "schema": {"type": "string"}}
    )
    blank = triage(pending(ToolCall("q2", "ask_user", {"question": "  "})), agent)
    assert isinstance(blank, Answer) and blank.result["error"] == "invalid_input"


def test_client_tools_wait_for_the_caller() -> None:
    agent = spec(client_tools=[{"name": "lookup"}])
    call = ToolCall("k1", "lookup", {"q": "x"})

    decision = triage(pending(call), agent)

    assert isinstance(decision, Wait)
    assert decision.waiting_for["type"] == "tool_result" and decision.waiting_for["call_ids"] == ["k1"]


def test_spawns_of_one_step_start_together_and_then_wait_for_their_children() -> None:
    agent = spec(tools=["spawn_agent"])
    first = ToolCall("s1", "spawn_agent", {"agent_id": "a", "input": "one"})
    second = ToolCall("s2", "spawn_agent", {"agent_id": "a", "input": "two"})

    assert triage(pending(first, second), agent) == Spawn((first, second))
    started = pending(first, second, children={"s1": "run_c1", "s2": "run_c2"})
    decision = triage(started, agent)
    assert isinstance(decision, Wait)
    assert decision.waiting_for == {
        "type": "child",
        "call_ids": ["s1", "s2"],
        "children": [
            {"call_id": "s1", "child_run_id": "run_c1"},
            {"call_id": "s2", "child_run_id": "run_c2"},
        ],
    }
