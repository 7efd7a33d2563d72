"""ScriptedProvider: the answer depends only on the request, never on what was asked before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.brain.models import Message, ModelRequest, ToolCall, Usage, build_provider
from services.brain.models.scripted import ScriptedProvider
from services.core.errors import InvalidRequest
from services.core.settings import Settings

SCRIPT: list[dict[str, Any]] = [
    {"text": "Let me look.", "tool_calls": [{"name": "ls", "input": {"path": "."}}, {"name": "pwd"}]},
    {"text": "Two files.", "usage": {"input_tokens": 50, "output_tokens": 3}},
]


def at_turn(turn: int) -> ModelRequest:
    """A conversation that already holds `turn` assistant messages."""
    messages = [Message(role="user", content="What is here?")]
    for i in range(turn):
        call = ToolCall(id=f"call_{i}_0", name="ls", input={"path": "."})
        messages.append(Message(role="assistant", tool_calls=(call,)))
        messages.append(Message(role="tool", content="a.txt b.txt", tool_call_id=call.id))
    return ModelRequest(model="scripted", system="Be brief.", messages=tuple(messages))


async def test_the_turn_is_the_number_of_assistant_messages() -> None:
    provider = ScriptedProvider(SCRIPT)

    first = await provider.complete(at_turn(0))
    second = await provider.complete(at_turn(1))

    assert first.text == "Let me look."
    assert first.tool_calls == (
        ToolCall(id="call_0_0", name="ls", input={"path": "."}),
        ToolCall(id="call_0_1", name="pwd", input={}),
    )
    assert first.stop_reason == "tool_use"
    assert (second.text, second.tool_calls, second.stop_reason) == ("Two files.", (), "end_turn")


async def test_the_same_step_gets_the_same_answer_from_any_instance() -> None:
    answers = [await ScriptedProvider(SCRIPT).complete(at_turn(0)) for _ in range(2)]
    provider = ScriptedProvider(SCRIPT)
    await provider.complete(at_turn(1))

    assert answers[0] == answers[1] == await provider.complete(at_turn(0))


async def test_past_the_end_the_model_is_done() -> None:
    response = await ScriptedProvider(SCRIPT).complete(at_turn(5))

    assert (response.text, response.tool_calls, response.stop_reason) == ("done", (), "end_turn")


async def test_an_empty_script_answers_done_at_once() -> None:
    response = await ScriptedProvider([]).complete(at_turn(0))

    assert response.text == "done"


async def test_usage_is_taken_from_the_script_or_estimated() -> None:
    provider = ScriptedProvider(SCRIPT)

    given = await provider.complete(at_turn(1))
    estimated = await provider.complete(at_turn(0))

    assert given.usage == Usage(input_tokens=50, output_tokens=3)
    # About four characters a token, counting the text and each call's name and JSON input.
    output_chars = len("Let me look.") + len('ls{"path": "."}') + len("pwd{}")
    assert estimated.usage == Usage(
        input_tokens=len("Be brief.What is here?") // 4, output_tokens=output_chars // 4
    )
    assert estimated.usage == (await provider.complete(at_turn(0))).usage


async def test_a_sleeping_turn_can_be_cancelled() -> None:
    provider = ScriptedProvider([{"text": "slow", "sleep": 60}])

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(provider.complete(at_turn(0)), timeout=0.05)


async def test_a_short_sleep_still_answers() -> None:
    response = await ScriptedProvider([{"text": "thought about it", "sleep": 0.01}]).complete(at_turn(0))

    assert response.text == "thought about it"


async def test_editing_a_returned_input_does_not_change_the_script() -> None:
    provider = ScriptedProvider(SCRIPT)

    (await provider.complete(at_turn(0))).tool_calls[0].input["path"] = "/etc"

    assert (await provider.complete(at_turn(0))).tool_calls[0].input == {"path": "."}


async def test_unset_fields_may_be_null() -> None:
    script = [{"text": "hi", "tool_calls": [{"name": "pwd", "input": {}}], "sleep": None, "usage": None}]

    response = await ScriptedProvider(script).complete(at_turn(0))

    assert (response.text, response.tool_calls) == ("hi", (ToolCall(id="call_0_0", name="pwd", input={}),))


@pytest.mark.parametrize(
    "script",
    [
        [{"txt": "typo"}],
        ["just a string"],
        [{"tool_calls": [{"input": {}}]}],
        [{"tool_calls": {"name": "ls"}}],
        [{"usage": 3}],
        [{"sleep": "soon"}],
    ],
)
def test_a_malformed_script_is_rejected(script: list[Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ScriptedProvider(script)

    assert caught.value.code == "invalid_script"


async def test_build_provider_picks_the_scripted_backend() -> None:
    provider = build_provider("scripted", Settings(), script=[{"text": "hi"}])

    assert isinstance(provider, ScriptedProvider)
    assert (await provider.complete(at_turn(0))).text == "hi"
    await provider.aclose()
