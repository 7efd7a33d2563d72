"""A deterministic model for tests and demos: it answers from a script, never from memory.

The turn is the number of assistant messages already in the request, so any brain (including one that
took a run over after a crash) gets the same answer for the same step.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from typing import Any

from services.brain.models import ModelRequest, ModelResponse, ToolCall, Usage
from services.core.errors import InvalidRequest

FINAL_TEXT = "done"

_TURN_KEYS = frozenset({"text", "tool_calls", "usage", "sleep"})


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ScriptedTurn:
    text: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()
    usage: Usage | None = None
    sleep: float = 0.0

    @classmethod
    def parse(cls, index: int, raw: Any) -> ScriptedTurn:
        """Validate one script entry: {"text"?, "tool_calls"?: [{"name", "input"?}], "usage"?, "sleep"?}."""
        if not isinstance(raw, dict) or not set(raw) <= _TURN_KEYS:
            raise _invalid(index, f"a turn is an object with keys among {sorted(_TURN_KEYS)}")
        calls = raw.get("tool_calls") or []
        if not isinstance(calls, list) or not all(_is_call(call) for call in calls):
            raise _invalid(index, 'tool_calls is a list of {"name": str, "input": object}')
        usage = raw.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise _invalid(index, "usage is an object")
        try:
            return cls(
                text=str(raw.get("text") or ""),
                tool_calls=tuple(ScriptedCall(call["name"], dict(call.get("input") or {})) for call in calls),
                usage=None
                if usage is None
                else Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
                sleep=float(raw.get("sleep") or 0.0),
            )
        except (TypeError, ValueError) as exc:
            raise _invalid(index, str(exc)) from exc


def _is_call(call: Any) -> bool:
    return (
        isinstance(call, dict)
        and isinstance(call.get("name"), str)
        and isinstance(call.get("input") or {}, dict)
    )


def _invalid(index: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"model script turn {index}: {why}", code="invalid_script")


class ScriptedProvider:
    """Answers turn N of `script`; past its end, a final text answer ("done") with no tool calls."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        if not isinstance(script, list):
            raise InvalidRequest("a model script is a list of turns", code="invalid_script")
        self._turns = tuple(ScriptedTurn.parse(index, raw) for index, raw in enumerate(script))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        turn_index = sum(1 for message in request.messages if message.role == "assistant")
        turn = self._turns[turn_index] if turn_index < len(self._turns) else ScriptedTurn(text=FINAL_TEXT)
        if turn.sleep > 0:
            await asyncio.sleep(turn.sleep)
        calls = tuple(
            # A copy, so a caller that edits a tool input cannot change the script's later answers.
            ToolCall(id=f"call_{turn_index}_{i}", name=call.name, input=copy.deepcopy(call.input))
            for i, call in enumerate(turn.tool_calls)
        )
        return ModelResponse(
            text=turn.text,
            tool_calls=calls,
            usage=turn.usage or _estimate(request, turn.text, calls),
            stop_reason="tool_use" if calls else "end_turn",
        )

    async def aclose(self) -> None:
        return None


def _estimate(request: ModelRequest, text: str, calls: tuple[ToolCall, ...]) -> Usage:
    # A stable stand-in for a tokenizer (about four characters a token), so budgets can be tested.
    prompt = len(request.system) + sum(
        len(message.content)
        + sum(len(call.name) + len(json.dumps(call.input)) for call in message.tool_calls)
        for message in request.messages
    )
    completion = len(text) + sum(len(call.name) + len(json.dumps(call.input)) for call in calls)
    return Usage(input_tokens=prompt // 4, output_tokens=completion // 4)
