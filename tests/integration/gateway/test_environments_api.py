"""Environments and secrets through the gateway on the real PostgreSQL: versions, the deployment's
ceilings and network permissions, secrets that are named but never shown, and runs that keep the
environment version they started in."""

from __future__ import annotations

import logging
import secrets as random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.core.bus import Bus
from services.core.db.engine import create_engine
from services.core.db.schema import metadata
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app
from tests.integration.gateway.conftest import client_of

SCRIPTED = {"name": "t", "model": "scripted", "script": [{"text": "done"}]}
ALLOWLIST = {"policy": "allowlist", "hosts": [{"pattern": "api.example.test"}, {"pattern": "*.example.com"}]}


@pytest.fixture
def gateway_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        bus_url="local://",
        artifacts_dir=tmp_path / "artifacts",
        data_dir=tmp_path / "data",
        tenant=f"tenant-{random.token_hex(4)}",
        admin_key=mint(),
        ceilings={"sandbox_cpus": 2, "sandbox_memory": 1024**3, "sandbox_pids": 512},
        egress_package_registries={"pypi-mirror": ["pkgs.example.test", "*.pkgs.example.test"]},
    )


@pytest.fixture
async def open_api(database_url: str, tmp_path: Path, local_bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose operator permits open networks."""
    settings = Settings(
        database_url=database_url,
        bus_url="local://",
        artifacts_dir=tmp_path / "open-artifacts",
        data_dir=tmp_path / "open-data",
        tenant=f"tenant-{random.token_hex(4)}",
        admin_key=mint(),
        egress_open_allowed=True,
    )
    app = create_app(settings, bus=local_bus)
    assert settings.admin_key is not None
    async with app.router.lifespan_context(app), client_of(app, settings.admin_key.get_secret_value()) as api:
        yield api


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def new_environment(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/v1/environments", json={"name": "box", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_an_environment_is_versioned_and_each_version_reads_back(api: httpx.AsyncClient) -> None:
    first = await new_environment(api, id="build", limits={"cpus": 1.5, "memory": "512MiB"}, runtime="runsc")
    assert first["version"] == first["latest_version"] == 1
    assert first["limits"] == {"cpus": 1.5, "memory": 512 * 1024**2, "pids": None}
    assert first["network"]["policy"] == "none" and first["runtime"] == "runsc" and first["image"] is None

    second = await api.post(
        "/v1/environments/build/versions", json={"network": ALLOWLIST, "workspace_size": "64MiB"}
    )
    assert second.status_code == 201 and second.json()["version"] == 2
    latest = (await api.get("/v1/environments/build")).json()
    assert latest["version"] == 2 and latest["network"]["hosts"][0] == {
        "pattern": "api.example.test",
        "ports": [],
    }
    assert latest["runtime"] == "runc", "a version is a whole spec, not a patch of the one before"
    old = (await api.get("/v1/environments/build", params={"version": 1})).json()
    assert old["version"] == 1 and old["latest_version"] == 2 and old["runtime"] == "runsc"
    versions = (await api.get("/v1/environments/build/versions")).json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    listed = (await api.get("/v1/environments")).json()["data"]
    assert [(e["id"], e["version"]) for e in listed] == [("build", 2)]

    missing = await api.get("/v1/environments/build", params={"version": 3})
    assert missing.status_code == 404 and code_of(missing) == "environment_version_not_found"
    taken = await api.post("/v1/environments", json={"id": "build"})
    assert taken.status_code == 409 and code_of(taken) == "environment_exists"


async def test_what_the_deployment_does_not_give_is_refused(api: httpx.AsyncClient) -> None:
    for body, code in (
        ({"limits": {"cpus": 3}}, "above_ceiling"),
        ({"limits": {"memory": "2GiB"}}, "above_ceiling"),
        ({"limits": {"pids": 1024}}, "above_ceiling"),
        ({"workspace_size": "1TiB"}, "above_ceiling"),
        ({"network": {"policy": "open"}}, "open_network_not_allowed"),
        ({"network": {"policy": "allowlist", "package_registries": ["other"]}}, "unknown_package_registry"),
        ({"network": {"policy": "none", "hosts": [{"pattern": "api.example.test"}]}}, "validation_error"),
        ({"network": {"policy": "allowlist", "hosts": [{"pattern": "10.0.0.1"}]}}, "validation_error"),
        (
            {"network": {"policy": "allowlist", "hosts": [{"pattern": "a.example.test", "ports": [0]}]}},
            "validation_error",
        ),
        ({"runtime": "kata"}, "validation_error"),
        (
            {"secrets": [{"secret": "x", "host": "api.example.test", "header": "X", "env_name": "X"}]},
            "validation_error",
        ),
    ):
        response = await api.post("/v1/environments", json=body)
        assert response.status_code == 422 and code_of(response) == code, (body, response.text)
    registries = await new_environment(
        api, network={"policy": "allowlist", "package_registries": ["pypi-mirror"]}
    )
    assert registries["network"]["package_registries"] == ["pypi-mirror"]
    assert (await api.get("/v1/environments")).json()["data"][0]["id"] == registries["id"]


async def test_an_open_network_needs_the_operators_permission(open_api: httpx.AsyncClient) -> None:
    made = await new_environment(open_api, network={"policy": "open", "byte_budget": 10_000})
    assert made["network"]["policy"] == "open" and made["network"]["byte_budget"] == 10_000


async def test_secrets_are_named_by_environments_and_never_shown(
    api: httpx.AsyncClient, gateway_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG)
    value = f"sv-{random.token_hex(16)}"
    use = {
        "secret": "api-token",
        "host": "api.example.test",
        "header": "Authorization",
        "env_name": "API_TOKEN",
    }
    unknown = await api.post("/v1/environments", json={"network": ALLOWLIST, "secrets": [use]})
    assert unknown.status_code == 422 and code_of(unknown) == "unknown_secret"

    made = await api.put("/v1/secrets/api-token", json={"value": value})
    assert made.status_code == 200 and set(made.json()) == {"name", "created_at", "updated_at"}
    again = await api.put("/v1/secrets/api-token", json={"value": value + "-2"})
    assert again.json()["created_at"] == made.json()["created_at"]
    elsewhere = {**use, "host": "other.example.org"}
    off_list = await api.post("/v1/environments", json={"network": ALLOWLIST, "secrets": [elsewhere]})
    assert off_list.status_code == 422 and code_of(off_list) == "secret_host_not_allowed"
    environment = await new_environment(api, network=ALLOWLIST, secrets=[use])
    assert environment["secrets"] == [{**use, "value": "Bearer {secret}"}]

    in_use = await api.delete("/v1/secrets/api-token")
    assert in_use.status_code == 409 and code_of(in_use) == "secret_in_use"
    assert (await api.put("/v1/secrets/-x", json={"value": "v"})).status_code == 422
    too_big = await api.put("/v1/secrets/big", json={"value": "x" * (64 * 1024 + 1)})
    assert too_big.status_code == 422 and code_of(too_big) == "validation_error"
    empty = await api.put("/v1/secrets/empty", json={"value": ""})
    assert empty.status_code == 422

    listed = await api.get("/v1/secrets")
    assert [s["name"] for s in listed.json()["data"]] == ["api-token"]
    one = await api.get("/v1/secrets/api-token")
    audit = await api.get("/v1/audit", params={"object_type": "secret"})
    assert [e["action"] for e in audit.json()["data"]] == ["secret.created", "secret.updated"]
    await api.post(f"/v1/environments/{environment['id']}/archive")
    deleted = await api.delete("/v1/secrets/api-token")
    assert deleted.status_code == 200 and deleted.json() == {"id": "api-token", "deleted": True}
    assert (await api.get("/v1/secrets/api-token")).status_code == 404

    logged = "\n".join(record.getMessage() + str(record.exc_text or "") for record in caplog.records)
    assert "SELECT" in logged, "the statements were captured"
    for response in (made, again, listed, one, audit, deleted):
        assert value not in response.text
    assert value not in logged, "a secret's value was logged"
    engine = create_engine(gateway_settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                query = text(f"SELECT count(*) FROM {table.name} AS t WHERE strpos(t::text, :value) > 0")
                assert not (await conn.execute(query, {"value": value})).scalar(), table.name
    finally:
        await engine.dispose()


async def test_runs_keep_the_version_they_started_in(api: httpx.AsyncClient) -> None:
    environment = await new_environment(api)
    env_id = environment["id"]
    agent = await api.post("/v1/agents", json={**SCRIPTED, "id": "env-agent", "environment": {"id": env_id}})
    assert agent.status_code == 201 and agent.json()["environment"] == {"id": env_id, "version": None}

    first = (await api.post("/v1/runs", json={"agent_id": "env-agent", "input": "go"})).json()
    assert first["environment"] == {"id": env_id, "version": 1}
    await api.post(f"/v1/environments/{env_id}/versions", json={"network": ALLOWLIST})
    later = (await api.post("/v1/runs", json={"agent_id": "env-agent", "input": "go"})).json()
    assert later["environment"] == {"id": env_id, "version": 2}
    assert (await api.get(f"/v1/runs/{first['id']}")).json()["environment"]["version"] == 1
    events = (await api.get(f"/v1/runs/{first['id']}/events")).json()["data"]
    assert events[0]["data"]["environment_id"] == env_id and events[0]["data"]["environment_version"] == 1

    pinned = await api.post(
        "/v1/runs", json={"agent": SCRIPTED, "input": "go", "environment": {"id": env_id, "version": 1}}
    )
    assert pinned.json()["environment"] == {"id": env_id, "version": 1}
    plain = (await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "go"})).json()
    assert plain["environment"] is None

    for ref, code in (
        ({"id": "env_nowhere"}, "environment_not_found"),
        ({"id": env_id, "version": 9}, "environment_version_not_found"),
    ):
        refused = await api.post("/v1/runs", json={"agent": SCRIPTED, "input": "go", "environment": ref})
        assert refused.status_code == 422 and code_of(refused) == code
        agent_refused = await api.post("/v1/agents", json={**SCRIPTED, "environment": ref})
        assert agent_refused.status_code == 422 and code_of(agent_refused) == code
    in_use = await api.delete(f"/v1/environments/{env_id}")
    assert in_use.status_code == 409 and code_of(in_use) == "environment_in_use"
    await api.post(f"/v1/environments/{env_id}/archive")
    archived = await api.post("/v1/runs", json={"agent_id": "env-agent", "input": "go"})
    assert archived.status_code == 422 and code_of(archived) == "environment_archived"
    no_version = await api.post(f"/v1/environments/{env_id}/versions", json={})
    assert no_version.status_code == 409 and code_of(no_version) == "environment_archived"


async def test_viewers_read_and_members_write(gateway_app: FastAPI, api: httpx.AsyncClient) -> None:
    environment = await new_environment(api)
    viewer_key = (await api.post("/v1/keys", json={"name": "v", "role": "viewer"})).json()["key"]
    async with client_of(gateway_app, viewer_key) as viewer:
        assert (await viewer.get(f"/v1/environments/{environment['id']}")).status_code == 200
        assert (await viewer.get("/v1/secrets")).status_code == 200
        assert (await viewer.post("/v1/environments", json={})).status_code == 403
        assert (await viewer.put("/v1/secrets/x", json={"value": "v"})).status_code == 403


async def test_the_managed_agents_view_shows_the_latest_version(api: httpx.AsyncClient) -> None:
    environment = await new_environment(api, network=ALLOWLIST)
    shown = (await api.get(f"/anthropic/v1/environments/{environment['id']}")).json()
    assert shown["config"]["networking"]["type"] == "limited"
    assert shown["config"]["networking"]["allowed_hosts"] == ["api.example.test", "*.example.com"]
    await api.post(f"/v1/environments/{environment['id']}/versions", json={})
    shown = (await api.get(f"/anthropic/v1/environments/{environment['id']}")).json()
    assert shown["config"]["networking"]["allowed_hosts"] == []
    made = (await api.post("/anthropic/v1/environments", json={"name": "ma"})).json()
    native = (await api.get(f"/v1/environments/{made['id']}")).json()
    assert native["version"] == 1 and native["network"]["policy"] == "none"


async def test_environments_page_by_cursor_newest_first(api: httpx.AsyncClient) -> None:
    made = [(await new_environment(api, id=f"page-{i}"))["id"] for i in range(5)]
    await api.post("/v1/environments/page-4/archive")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/environments", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [environment["id"] for environment in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[3::-1], "newest first, each once, archived ones left out"
    everything = (await api.get("/v1/environments", params={"limit": 5, "include_archived": True})).json()
    assert [e["id"] for e in everything["data"]] == made[::-1] and everything["next_cursor"] is None
    for bad in ("nope", "bm9wZQ==", "x" * 1025):
        refused = await api.get("/v1/environments", params={"cursor": bad})
        assert refused.status_code == 422, bad
    assert code_of(await api.get("/v1/environments", params={"cursor": "nope"})) == "invalid_cursor"
