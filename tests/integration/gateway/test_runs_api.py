"""The runs and agents contract, as far as the gateway alone serves it."""

from __future__ import annotations

import httpx

SCRIPTED = {"name": "t", "model": "scripted", "script": [{"text": "done"}]}


async def test_agents_are_versioned_and_immutable(api: httpx.AsyncClient) -> None:
    first = (await api.post("/v1/agents", json={**SCRIPTED, "id": "coder"})).json()
    assert first["version"] == 1
    second = await api.put("/v1/agents/coder", json={**SCRIPTED, "system": "be brief"})
    assert second.status_code == 201 and second.json()["version"] == 2
    assert (await api.get("/v1/agents/coder")).json()["system"] == "be brief"
    assert (await api.get("/v1/agents/coder?version=1")).json()["system"] == ""
    listed = (await api.get("/v1/agents")).json()["data"]
    assert [(a["id"], a["version"]) for a in listed] == [("coder", 2)]


async def test_a_run_starts_queued_with_a_gapless_log(api: httpx.AsyncClient) -> None:
    await api.post("/v1/agents", json={**SCRIPTED, "id": "greeter"})
    response = await api.post(
        "/v1/runs", json={"agent_id": "greeter", "input": "hello", "metadata": {"k": "v"}}
    )
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "queued" and run["agent_id"] == "greeter" and run["agent_version"] == 1
    assert run["metadata"] == {"k": "v"}
    events = (await api.get(f"/v1/runs/{run['id']}/events")).json()["data"]
    assert [(e["seq"], e["type"]) for e in events] == [(1, "run.created"), (2, "user.message")]
    assert events[1]["data"] == {"content": "hello"}
    assert (await api.get(f"/v1/runs/{run['id']}/events?after=1")).json()["data"][0]["seq"] == 2


async def test_idempotency_key_returns_the_same_run(api: httpx.AsyncClient) -> None:
    body = {"agent": SCRIPTED, "input": "once"}
    first = await api.post("/v1/runs", json=body, headers={"Idempotency-Key": "k-123"})
    again = await api.post("/v1/runs", json=body, headers={"Idempotency-Key": "k-123"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await api.post("/v1/runs", json={**body, "input": "twice"}, headers={"Idempotency-Key": "k-123"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


async def test_list_runs_filters_and_pages(api: httpx.AsyncClient) -> None:
    ids = [
        (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": f"r{i}"})).json()["id"]
        for i in range(5)
    ]
    await api.post(f"/v1/runs/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        page = (
            await api.get("/v1/runs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        ).json()
        seen += [run["id"] for run in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled = (await api.get("/v1/runs?status=cancelled")).json()["data"]
    assert [run["id"] for run in cancelled] == [ids[0]]


async def test_health_endpoints(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    not_ready = await api.get("/readyz")
    assert not_ready.status_code == 503 and "no hands worker" in not_ready.json()["error"]["message"]
    assert (await api.get("/v1/hands")).json() == {"data": []}
