"""Input PostgreSQL cannot hold, numbers past its ranges and ids outside the one id pattern are 4xx with a
code, never a 500; the server says so when it closes a connection, and a 405 names the allowed methods."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.errors import install_error_handlers
from tests.integration.gateway.test_bad_input import SCRIPTED, assert_error

BIG = 2**63


def raw(body: Any) -> dict[str, Any]:
    """A JSON body as Python's encoder writes it: NUL and lone surrogates escaped, infinities bare."""
    return {"content": json.dumps(body).encode(), "headers": {"content-type": "application/json"}}


def run_with(**fields: Any) -> dict[str, Any]:
    return {"agent": SCRIPTED, "input": "x", **fields}


INF = float("inf")


@pytest.mark.parametrize(
    "body",
    [
        run_with(input="a\x00b"),
        run_with(metadata={"k": "\x00"}),
        run_with(metadata={"k\x00": 1}),
        run_with(metadata={"k": "\udcff"}),
        run_with(metadata={"k": ["\ud800"]}),
        run_with(agent={**SCRIPTED, "name": "a\x00"}),
        run_with(agent={**SCRIPTED, "system": "\udfff"}),
        run_with(metadata={"n": INF}),
        run_with(metadata={"n": -INF}),
        run_with(metadata={"n": float("nan")}),
        run_with(budget={"max_cost_usd": INF}),
        run_with(budget={"max_wall_time_seconds": -INF}),
    ],
)
async def test_runs_refuse_what_postgres_cannot_store(api: httpx.AsyncClient, body: Any) -> None:
    assert_error(await api.post("/v1/runs", **raw(body)), 422, "unstorable_input")


async def test_a_number_too_large_for_a_float_is_not_finite(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/runs",
        content=b'{"agent": {"model": "scripted"}, "input": "x", "metadata": {"n": 1e999}}',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 422, "unstorable_input")


async def test_every_kind_of_body_refuses_what_postgres_cannot_store(api: httpx.AsyncClient) -> None:
    run = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x"})).json()
    bad = "a\x00b"
    at = f"/v1/runs/{run['id']}"
    for path, body in [
        ("/v1/agents", {"name": bad, "model": "scripted"}),
        (f"{at}/messages", {"content": bad}),
        (f"{at}/messages", {"content": {"answer": "\udcff"}}),
        (f"{at}/interrupt", {"message": bad}),
        (f"{at}/cancel", {"reason": bad}),
        (f"{at}/fork", {"at_seq": 2, "overrides": {"system": bad}}),
        (f"{at}/approvals/call_1", {"decision": "allow", "message": bad}),
        (f"{at}/tool_results/call_1", {"output": bad}),
        (f"{at}/budget", {"max_steps": INF}),
    ]:
        assert_error(await api.post(path, **raw(body)), 422, "unstorable_input")
    put = await api.put("/v1/agents/a", **raw({"model": "scripted", "system": bad}))
    assert_error(put, 422, "unstorable_input")
    # Clean bodies pass the check, escapes spelled out literally included.
    clean = {"content": "é 😀 \\u0000 1e999 NaN"}
    assert (await api.post(f"{at}/messages", json=clean)).status_code == 202


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agent_version", 2**31),
        ("budget", {"max_steps": 2**31}),
        ("budget", {"max_tokens": BIG}),
        ("budget", {"max_cost_usd": 1e300}),
        ("agent", {**SCRIPTED, "limits": {"timeout_seconds": 1e300}}),
        ("agent", {**SCRIPTED, "limits": {"max_tokens": BIG}}),
        ("agent", {**SCRIPTED, "script": [{"text": "x", "usage": {"input_tokens": BIG}}]}),
    ],
)
async def test_numbers_past_what_postgres_holds_are_refused(
    api: httpx.AsyncClient, field: str, value: Any
) -> None:
    body: dict[str, Any] = {"agent": SCRIPTED, "input": "x", field: value}
    if field == "agent_version":
        body = {"agent_id": "some-agent", "input": "x", field: value}
    assert_error(await api.post("/v1/runs", json=body), 422, "validation_error")


async def test_seqs_and_versions_past_their_columns_are_refused(api: httpx.AsyncClient) -> None:
    run = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x"})).json()
    for path in (
        f"/v1/runs/{run['id']}/events?after={BIG}",
        f"/v1/runs/{run['id']}/events/stream?after={BIG}",
        "/v1/agents/some-agent?version=2147483648",
    ):
        assert_error(await api.get(path), 422, "validation_error")
    for last_event_id in (str(BIG), "\u00b2", "1 ", "-1"):
        response = await api.get(
            f"/v1/runs/{run['id']}/events/stream", headers={b"last-event-id": last_event_id.encode("latin-1")}
        )
        assert_error(response, 422, "invalid_last_event_id")
    fork = await api.post(f"/v1/runs/{run['id']}/fork", json={"at_seq": BIG})
    assert_error(fork, 422, "validation_error")
    assert_error(await api.get(f"/v1/runs/{run['id']}/events?after=-1"), 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/runs/%00"),
        ("GET", "/v1/runs/run%00x/events"),
        ("GET", "/v1/runs/run%00x/events/stream"),
        ("GET", "/v1/runs/run%00x/artifacts"),
        ("GET", "/v1/runs/run%00x/artifacts/a.txt"),
        ("POST", "/v1/runs/run%00x/cancel"),
        ("POST", "/v1/runs/run%00x/messages"),
        ("POST", "/v1/runs/run%00x/interrupt"),
        ("POST", "/v1/runs/run%00x/budget"),
        ("POST", "/v1/runs/run%00x/fork"),
        ("POST", "/v1/runs/run_x/approvals/call%00"),
        ("POST", "/v1/runs/run_x/tool_results/call%00"),
        ("GET", "/v1/runs/run%00x/diff/run_y"),
        ("GET", "/v1/agents/a%00"),
        ("PUT", "/v1/agents/a%00"),
    ],
)
async def test_nul_in_any_path_id_or_cursor_is_a_4xx(api: httpx.AsyncClient, method: str, path: str) -> None:
    response = await api.request(method, path, json={"content": "x"} if method != "GET" else None)
    assert_error(response, 422, "validation_error")


async def test_cursors_holding_a_nul_are_invalid(api: httpx.AsyncClient) -> None:
    hidden = base64.urlsafe_b64encode(b"2024-01-01T00:00:00+00:00|run\x00x").decode()
    for cursor in (hidden, "%00", "A%00A", "A" * 600):
        assert_error(await api.get(f"/v1/runs?cursor={cursor}"), 422, "invalid_cursor")
    assert_error(await api.get("/v1/runs?cursor=" + "A" * 2000), 422, "validation_error")


@pytest.mark.parametrize("agent_id", ["-starts-with-dash", "has space", "a" * 129, "semi;colon", "caf%C3%A9"])
async def test_put_refuses_the_agent_ids_post_refuses(api: httpx.AsyncClient, agent_id: str) -> None:
    from urllib.parse import unquote

    assert_error(
        await api.post("/v1/agents", json={**SCRIPTED, "id": unquote(agent_id)}), 422, "validation_error"
    )
    assert_error(await api.put(f"/v1/agents/{agent_id}", json=SCRIPTED), 422, "validation_error")


async def test_an_artifact_name_with_a_newline_reaches_the_route(api: httpx.AsyncClient) -> None:
    run = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x"})).json()
    for name in ("new%0Aline", "trailing%0A", "back%5Cslash"):
        response = await api.get(f"/v1/runs/{run['id']}/artifacts/{name}")
        assert_error(response, 404, "artifact_not_found")


async def test_a_405_names_the_allowed_methods(api: httpx.AsyncClient) -> None:
    response = await api.delete("/v1/runs")
    assert_error(response, 405, "method_not_allowed")
    allowed = set(response.headers["allow"].replace(" ", "").split(","))
    assert {"GET", "POST"} <= allowed and "DELETE" not in allowed


async def test_a_413_says_the_connection_closes(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x" * 100_000})
    assert_error(response, 413, "body_too_large")
    assert response.headers["connection"] == "close"


async def test_an_unexpected_error_says_the_connection_closes() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://loopd.test") as client:
        response = await client.get("/boom")
    assert_error(response, 500, "internal")
    assert response.headers["connection"] == "close"
