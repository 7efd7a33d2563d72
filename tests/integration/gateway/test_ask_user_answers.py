"""Answers to `ask_user` are checked against the model's schema without fetching anything and
without stalling the gateway: a schema that could reach out or run long gets a 422, and the run
keeps waiting cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.listener import Listener
from services.core import events as event_log
from services.core.settings import Settings

SCRIPTED = {"name": "t", "model": "scripted", "script": [{"text": "done"}]}
CATASTROPHIC = {"type": "string", "pattern": "^(a+)+$"}
# Every level tries both branches and the first always fails, so checking costs 2**depth.
EXPONENTIAL = {
    "$defs": {
        "node": {
            "anyOf": [
                {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/node"}},
                {"type": "array", "items": {"$ref": "#/$defs/node"}},
            ]
        }
    },
    "$ref": "#/$defs/node",
}


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(update={"ask_user_validate_seconds": 0.5})


async def waiting_run(api: httpx.AsyncClient, engine: AsyncEngine, schema: dict[str, Any]) -> str:
    """A run waiting on an ask_user question with `schema`, as a brain leaves it (or an older one did)."""
    run_id = str((await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "ask"})).json()["id"])
    waiting = {"type": "input", "call_id": "call-1", "question": "?", "schema": schema}
    async with engine.begin() as conn:
        await event_log.append(
            conn,
            event_log.Append(
                run_id,
                (event_log.NewEvent(event_log.RUN_WAITING, {"waiting_for": waiting}),),
                {"status": "waiting", "waiting_for": waiting},
            ),
        )
    return run_id


async def answer(api: httpx.AsyncClient, run_id: str, content: Any) -> httpx.Response:
    return await api.post(f"/v1/runs/{run_id}/messages", json={"content": content})


async def status(api: httpx.AsyncClient, run_id: str) -> str:
    return str((await api.get(f"/v1/runs/{run_id}")).json()["status"])


async def test_a_catastrophic_pattern_is_answered_at_once_while_the_gateway_serves(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    run_id = await waiting_run(api, engine, CATASTROPHIC)
    # Python's regex engine needs about 2**40 steps for this answer; re2 needs about 40.
    wrong, health = await asyncio.wait_for(
        asyncio.gather(answer(api, run_id, "a" * 40 + "!"), api.get("/healthz")), timeout=10
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "answer_invalid"
    assert "does not match" in wrong.json()["error"]["message"]
    assert health.status_code == 200
    assert await status(api, run_id) == "waiting"
    assert (await answer(api, run_id, "a" * 40)).status_code == 202
    assert await status(api, run_id) == "queued"


async def test_an_answer_too_costly_to_check_is_refused_and_the_gateway_serves_meanwhile(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    run_id = await waiting_run(api, engine, EXPONENTIAL)
    nested: list[Any] = []
    for _ in range(40):
        nested = [nested]
    checking = asyncio.create_task(answer(api, run_id, nested))
    served = 0
    while not checking.done():
        assert (await api.get("/healthz")).status_code == 200
        served += 1
        await asyncio.sleep(0)  # an in-process request never suspends; let the answer's task on
    assert served >= 5  # checking took its full half second, and the loop served throughout
    refused = await asyncio.wait_for(checking, timeout=10)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == {
        "code": "answer_unverifiable",
        "message": "the answer could not be checked against the schema within 0.5 s",
    }
    assert await status(api, run_id) == "waiting"
    assert (await answer(api, run_id, [[], []])).status_code == 202


@pytest.mark.parametrize(
    "schema",
    [
        lambda url: {"$ref": url},
        lambda url: {"type": "object", "properties": {"a": {"$dynamicRef": url + "#meta"}}},
        lambda url: {"$ref": "#/x-hidden", "x-hidden": {"$id": url, "$ref": "#/a"}},
    ],
    ids=["ref", "dynamic-ref", "id-hidden-from-crawling"],
)
async def test_a_schema_that_reaches_out_is_refused_and_nothing_is_fetched(
    api: httpx.AsyncClient, engine: AsyncEngine, schema: Any
) -> None:
    with Listener() as listener:
        run_id = await waiting_run(api, engine, schema(listener.url()))
        refused = await answer(api, run_id, {"a": 1})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "schema_refused"
        assert (await api.get("/healthz")).status_code == 200
    assert listener.connections == 0
    assert await status(api, run_id) == "waiting"


async def test_a_local_reference_still_checks_answers(api: httpx.AsyncClient, engine: AsyncEngine) -> None:
    schema = {
        "$defs": {"color": {"enum": ["red", "blue"]}},
        "type": "object",
        "properties": {"color": {"$ref": "#/$defs/color"}},
        "required": ["color"],
    }
    run_id = await waiting_run(api, engine, schema)
    wrong = await answer(api, run_id, {"color": "green"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "answer_invalid"
    assert wrong.json()["error"]["message"].startswith("color: 'green' is not one of")
    assert (await answer(api, run_id, {"color": "blue"})).status_code == 202
    assert await status(api, run_id) == "queued"
