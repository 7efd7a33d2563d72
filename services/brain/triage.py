"""Decides what a pending tool call needs before anything runs: a permission, a person, the caller,
a child run, or a sandbox. The run waits durably for people and callers; nothing is held meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.brain.context import RunState
from services.brain.models import ToolCall
from services.core.agents import AgentSpec
from services.core.tools import Tool


@dataclass(frozen=True)
class Wait:
    """Stop stepping: the run goes to `waiting` until the API delivers what `waiting_for` names."""

    waiting_for: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """The call is settled without running it (denied, refused); `result` is its tool.result."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Spawn:
    """Start a child for each of these calls (children of one step run side by side)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class Ask:
    """Put a question to a person; its answer schema is checked (off the loop) before the run waits."""

    call: ToolCall
    question: str
    schema: dict[str, Any] | None

    @property
    def waiting_for(self) -> dict[str, Any]:
        return {"type": "input", "call_id": self.call.id, "question": self.question, "schema": self.schema}


@dataclass(frozen=True)
class Dispatch:
    call: ToolCall


Decision = Wait | Answer | Spawn | Ask | Dispatch


def triage(state: RunState, spec: AgentSpec) -> Decision:
    undecided = [
        c for c in state.pending.values() if spec.permission(c.name) == "ask" and c.id not in state.approvals
    ]
    if undecided:
        return Wait(
            {
                "type": "approval",
                "call_ids": [c.id for c in undecided],
                "calls": [_brief(c) for c in undecided],
            }
        )
    call = state.next_tool_call()
    if spec.permission(call.name) == "deny":
        return Answer(refusal(call, "denied", f"the tool {call.name} is not permitted for this agent"))
    decision, message = state.approvals.get(call.id, ("allow", ""))
    if decision == "deny":
        return Answer(refusal(call, "denied", message or "a person denied this call"))
    if call.name == Tool.ASK_USER and Tool.ASK_USER in spec.tools:
        return _ask_user(call)
    if spec.client_tool(call.name) is not None:
        waiting = [c for c in state.pending.values() if spec.client_tool(c.name) is not None]
        return Wait(
            {
                "type": "tool_result",
                "call_ids": [c.id for c in waiting],
                "calls": [_brief(c) for c in waiting],
            }
        )
    if call.name == Tool.SPAWN_AGENT and Tool.SPAWN_AGENT in spec.tools:
        spawns = tuple(c for c in state.pending.values() if c.name == Tool.SPAWN_AGENT)
        if all(c.id in state.children for c in spawns):
            return Wait(children_waiting(state, spawns))
        return Spawn(spawns)
    return Dispatch(call)


def refusal(call: ToolCall, code: str, message: str) -> dict[str, Any]:
    return {
        "call_id": call.id,
        "name": call.name,
        "ok": False,
        "output": message,
        "error": code,
        "error_message": message,
        "exit_code": None,
        "truncated": False,
        "duration_ms": 0,
    }


def _ask_user(call: ToolCall) -> Decision:
    question = call.input.get("question")
    schema = call.input.get("schema")
    if not isinstance(question, str) or not question.strip():
        return Answer(refusal(call, "invalid_input", "ask_user needs a non-empty 'question'"))
    if schema is not None and not isinstance(schema, dict):
        return Answer(refusal(call, "invalid_input", "ask_user 'schema' must be a JSON schema object"))
    return Ask(call, question, schema)


def _brief(call: ToolCall) -> dict[str, Any]:
    return {"call_id": call.id, "name": call.name, "input": call.input}


def children_waiting(state: RunState, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    children = [{"call_id": c.id, "child_run_id": state.children[c.id]} for c in calls]
    return {"type": "child", "call_ids": [c.id for c in calls], "children": children}
