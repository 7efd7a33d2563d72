"""ask_user schemas, in process: one that could reach out, run long or is too big goes back to the
model as a tool error and the run goes on; a schema with local references makes the run wait."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from harness.listener import Listener
from tests.unit.brain.loop import Loop, call, of_type, scripted


def too_deep() -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    return schema


async def refusal_of(loop: Loop, schema: dict[str, Any]) -> str:
    """The tool error the model got for an ask_user call with `schema`, once the run completed."""
    agent = scripted(
        {"tool_calls": [call("ask_user", question="Which?", schema=schema)]},
        {"text": "asked without a schema"},
        tools=["ask_user"],
    )
    run_id = await loop.start(agent)
    run = await loop.until(run_id, "completed", "failed", "waiting")
    assert run["status"] == "completed", run
    [result] = of_type(await loop.events(run_id), "tool.result")
    assert result["ok"] is False and result["error"] == "invalid_input"
    assert result["output"].startswith("ask_user 'schema' was refused: ")
    return str(result["output"])


@pytest.mark.parametrize(
    "schema",
    [
        lambda url: {"$ref": url},
        lambda url: {"type": "object", "properties": {"a": {"$ref": url + "#/a"}}},
        lambda url: {"$schema": url, "type": "string"},
        lambda url: {"$ref": "#/x-hidden", "x-hidden": {"$id": url, "$ref": "#/a"}},
    ],
    ids=["ref", "nested-ref", "schema", "id"],
)
async def test_a_schema_that_reaches_out_is_refused_and_nothing_is_fetched(loop: Loop, schema: Any) -> None:
    with Listener() as listener:
        await refusal_of(loop, schema(listener.url()))
    assert listener.connections == 0


async def test_a_schema_too_big_or_too_deep_is_refused(loop: Loop) -> None:
    assert "bytes; at most 16384" in await refusal_of(loop, {"enum": ["x" * 20_000]})
    assert "deeper than 32 levels" in await refusal_of(loop, too_deep())


async def test_a_pattern_re2_cannot_run_is_refused(loop: Loop) -> None:
    refused = await refusal_of(loop, {"type": "string", "pattern": r"^(a)\1$"})
    assert "backreferences and lookaround are not supported" in refused


async def test_a_schema_that_is_no_schema_is_refused(loop: Loop) -> None:
    assert "not a valid JSON schema" in await refusal_of(loop, {"type": "banana"})


async def test_local_references_and_a_catastrophic_pattern_wait_and_check_the_answer(loop: Loop) -> None:
    schema = {
        "$defs": {"word": {"type": "string", "pattern": "^(a+)+$"}},
        "type": "object",
        "properties": {"word": {"$ref": "#/$defs/word"}},
        "required": ["word"],
    }
    agent = scripted(
        {"tool_calls": [call("ask_user", question="Which word?", schema=schema)]},
        {"text": "thanks"},
        tools=["ask_user"],
    )
    run_id = await loop.start(agent)
    run = await loop.until(run_id, "waiting")
    assert run["waiting_for"]["schema"] == schema

    wrong, health = await asyncio.wait_for(
        asyncio.gather(
            loop.post(f"/v1/runs/{run_id}/messages", {"content": {"word": "a" * 40 + "!"}}),
            loop.api.get("/healthz"),
        ),
        timeout=10,
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "answer_invalid"
    assert health.status_code == 200
    right = await loop.post(f"/v1/runs/{run_id}/messages", {"content": {"word": "a" * 40}})
    assert right.status_code == 202

    await loop.until(run_id, "completed")
    [answer] = of_type(await loop.events(run_id), "tool.result")
    assert json.loads(answer["output"]) == {"word": "a" * 40}
