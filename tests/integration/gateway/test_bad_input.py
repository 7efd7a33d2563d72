"""Bad input gets a clear 4xx with a machine-readable code, and never a stack trace."""

from __future__ import annotations

from typing import Any

import httpx

SCRIPTED = {"name": "t", "model": "scripted", "script": [{"text": "done"}]}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body


async def test_malformed_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/runs", content=b'{"input": "x",', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


async def test_unknown_agent(api: httpx.AsyncClient) -> None:
    assert_error(
        await api.post("/v1/runs", json={"agent_id": "agt_nope", "input": "x"}), 404, "agent_not_found"
    )
    assert_error(await api.get("/v1/agents/agt_nope"), 404, "agent_not_found")


async def test_missing_run(api: httpx.AsyncClient) -> None:
    for path in (
        "/v1/runs/run_missing",
        "/v1/runs/run_missing/events",
        "/v1/runs/run_missing/artifacts",
        "/v1/runs/run_missing/events/stream",
    ):
        assert_error(await api.get(path), 404, "run_not_found")
    assert_error(await api.post("/v1/runs/run_missing/cancel"), 404, "run_not_found")
    assert_error(
        await api.post("/v1/runs/run_missing/messages", json={"content": "hi"}), 404, "run_not_found"
    )


async def test_oversized_body(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x" * 100_000})
    assert_error(response, 413, "body_too_large")


async def test_path_traversal_in_an_artifact_path(api: httpx.AsyncClient) -> None:
    run = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x"})).json()
    for path in ("..%2F..%2Fetc%2Fpasswd", "a%2F..%2F..%2Fsecret", "%2Fetc%2Fpasswd"):
        assert_error(await api.get(f"/v1/runs/{run['id']}/artifacts/{path}"), 400, "invalid_path")
    assert_error(await api.get(f"/v1/runs/{run['id']}/artifacts/missing.txt"), 404, "artifact_not_found")


async def test_invalid_specs_and_fields(api: httpx.AsyncClient) -> None:
    bad_tool = {**SCRIPTED, "tools": ["bash", "launch_missiles"]}
    assert_error(await api.post("/v1/runs", json={"agent": bad_tool, "input": "x"}), 422, "validation_error")
    bad_model = {**SCRIPTED, "model": "mystery/model"}
    assert_error(await api.post("/v1/agents", json=bad_model), 422, "validation_error")
    both = {"agent": SCRIPTED, "agent_id": "a", "input": "x"}
    assert_error(await api.post("/v1/runs", json=both), 422, "validation_error")
    assert_error(await api.post("/v1/runs", json={"agent": SCRIPTED, "input": ""}), 422, "validation_error")
    assert_error(await api.get("/v1/runs?status=bogus"), 422, "validation_error")
    assert_error(await api.get("/v1/runs?cursor=!!!"), 422, "invalid_cursor")
    assert_error(await api.get("/v1/nowhere"), 404, "not_found")


async def test_conflicts(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/agents", json={**SCRIPTED, "id": "dup-agent"})
    assert created.status_code == 201
    assert_error(await api.post("/v1/agents", json={**SCRIPTED, "id": "dup-agent"}), 409, "agent_exists")
    run = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "x"})).json()
    assert (await api.post(f"/v1/runs/{run['id']}/cancel")).status_code == 202
    assert_error(await api.post(f"/v1/runs/{run['id']}/cancel"), 409, "run_finished")
    assert_error(
        await api.post(f"/v1/runs/{run['id']}/messages", json={"content": "hi"}), 409, "run_cancelled"
    )
