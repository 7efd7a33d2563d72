"""What the log cannot hold never wedges a run: model text is stored with replacement characters, a
tool result the log refuses reaches the model as a tool error, and any other refused commit fails
the run with code unstorable, each in one pass of the stepper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.brain.context import RunState
from services.brain.dispatch import RunScope, ToolDispatcher, ToolOutcome
from services.brain.models import ModelRequest, ModelResponse, ToolCall, Usage
from services.core.agents import AgentSpec
from services.core.journal import Journal
from tests.unit.brain.loop import Loop, call, of_type, scripted
from tests.unit.brain.test_stepper import OneModel, lease, stepper


@pytest.fixture
async def loop(database_url: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with Loop(database_url, tmp_path, brain=False) as running:
        yield running


class Replies:
    """A model that gives these replies in turn."""

    def __init__(self, *replies: ModelResponse) -> None:
        self.replies, self.calls = list(replies), 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        return self.replies.pop(0)

    async def aclose(self) -> None:
        return None


def gapless(events: list[dict[str, Any]]) -> bool:
    return [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_model_text_postgres_cannot_hold_is_stored_with_replacement_characters(loop: Loop) -> None:
    run_id = await loop.start(scripted())
    model = Replies(ModelResponse(text="a\x00b\udcff"))

    await stepper(loop, await lease(loop, run_id, "brain-t"), OneModel(loop, model)).drive()  # type: ignore[arg-type]

    run = await loop.run(run_id)
    assert run["status"] == "completed" and run["result"] == "a\ufffdb\ufffd"
    events = await loop.events(run_id)
    assert gapless(events)
    assert of_type(events, "model.response")[0]["text"] == "a\ufffdb\ufffd"


class RefusedResults(ToolDispatcher):
    """A dispatcher whose first result holds what no JSON can write, as no sanitising can mend."""

    async def run(
        self, state: RunState, call: ToolCall, spec: AgentSpec, scope: RunScope | None = None
    ) -> ToolOutcome:
        outcome = await super().run(state, call, spec, scope)
        return ToolOutcome(outcome.sandbox_events, {**outcome.result, "huge": 10**5000})


async def test_a_tool_result_the_log_refuses_reaches_the_model_as_a_tool_error(loop: Loop) -> None:
    run_id = await loop.start(
        scripted({"tool_calls": [call("write_file", path="a.txt", content="a")]}, {"text": "ok"})
    )
    keeper = await lease(loop, run_id, "brain-t")
    driving = stepper(loop, keeper)
    driving.dispatcher = RefusedResults(
        loop.settings, loop.bus, loop.artifacts, Journal(loop.engine, loop.bus), loop.connect
    )

    await driving.drive()

    run = await loop.run(run_id)
    assert run["status"] == "completed" and run["result"] == "ok"
    events = await loop.events(run_id)
    assert gapless(events)
    [result] = of_type(events, "tool.result")
    assert result["ok"] is False and result["error"] == "unstorable"
    assert "could not be stored" in result["output"]
    assert result["snapshot"]  # the workspace keeps the call's effect


async def test_a_commit_the_log_refuses_fails_the_run_at_once(loop: Loop) -> None:
    run_id = await loop.start(scripted())
    model = Replies(ModelResponse(text="too many", usage=Usage(input_tokens=2**63, output_tokens=0)))

    await stepper(loop, await lease(loop, run_id, "brain-t"), OneModel(loop, model)).drive()  # type: ignore[arg-type]

    run = await loop.run(run_id)
    assert model.calls == 1
    assert run["status"] == "failed" and run["error"]["code"] == "unstorable"
    events = await loop.events(run_id)
    assert gapless(events) and events[-1]["type"] == "run.failed"
