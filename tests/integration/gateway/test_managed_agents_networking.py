# The SDK types a config and its networking as unions of kinds; the tests check the kind by value.
# mypy: disable-error-code="union-attr,index"
"""An environment's networking in the Managed Agents view, driven by the official `anthropic` SDK: it
is loopd's network policy, written as a new environment version that sessions started afterwards get,
and what the deployment does not give is refused in the API's error envelope."""

from __future__ import annotations

import secrets as random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx
import pytest

from services.core.bus import Bus
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app
from tests.integration.gateway.conftest import client_of
from tests.integration.gateway.test_managed_agents_api import new_agent, sdk

UNRESTRICTED: Any = {"type": "cloud", "networking": {"type": "unrestricted"}}
PACKAGES: Any = {"type": "cloud", "packages": {"pip": ["requests"]}}
REGISTRIES = {"pypi-mirror": ["pkgs.example.test"], "npm-mirror": ["*.npm.example.test"]}


def settings_for(database_url: str, tmp_path: Path, **egress: Any) -> Settings:
    return Settings(
        database_url=database_url,
        bus_url="local://",
        artifacts_dir=tmp_path / "artifacts",
        data_dir=tmp_path / "data",
        tenant=f"tenant-{random.token_hex(4)}",
        admin_key=mint(),
        **egress,
    )


async def _served(
    settings: Settings, bus: Bus
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, httpx.AsyncClient]]:
    app = create_app(settings, bus=bus)
    assert settings.admin_key is not None
    key = settings.admin_key.get_secret_value()
    async with app.router.lifespan_context(app), sdk(app, key) as client, client_of(app, key) as native:
        yield client, native


@pytest.fixture
async def apis(
    database_url: str, tmp_path: Path, local_bus: Bus
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, httpx.AsyncClient]]:
    """The SDK and loopd's own API on a gateway with package registries and no open networks."""
    settings = settings_for(database_url, tmp_path, egress_package_registries=REGISTRIES)
    async for both in _served(settings, local_bus):
        yield both


@pytest.fixture
async def open_apis(
    database_url: str, tmp_path: Path, local_bus: Bus
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, httpx.AsyncClient]]:
    """The same on a gateway whose operator permits open networks and configures no registries."""
    settings = settings_for(database_url, tmp_path, egress_open_allowed=True)
    async for both in _served(settings, local_bus):
        yield both


def limited(**fields: Any) -> Any:
    return {"type": "cloud", "networking": {"type": "limited", **fields}}


async def network_of(native: httpx.AsyncClient, environment_id: str, version: int | None = None) -> Any:
    params = {"version": version} if version else {}
    shown = (await native.get(f"/v1/environments/{environment_id}", params=params)).json()
    return shown["version"], shown["network"]


async def test_allowed_hosts_become_an_allowlist_and_each_change_a_version(
    apis: tuple[anthropic.AsyncAnthropic, httpx.AsyncClient],
) -> None:
    client, native = apis
    hosts = ["api.example.test", "*.example.com:8443", "https://files.example.test"]
    made = await client.beta.environments.create(name="net", config=limited(allowed_hosts=hosts))
    assert made.config.networking.type == "limited" and made.config.networking.allowed_hosts == hosts
    version, network = await network_of(native, made.id)
    assert version == 1 and network["policy"] == "allowlist" and network["package_registries"] == []
    assert network["hosts"] == [
        {"pattern": "api.example.test", "ports": []},
        {"pattern": "*.example.com", "ports": [8443]},
        {"pattern": "files.example.test", "ports": [443]},
    ]

    agent = await new_agent(client)
    before = await client.beta.sessions.create(agent=agent.id, environment_id=made.id)
    updated = await client.beta.environments.update(made.id, config=limited(allow_package_managers=True))
    assert updated.config.networking.allowed_hosts == hosts, "omitted fields keep theirs"
    assert updated.config.networking.allow_package_managers is True
    version, network = await network_of(native, made.id)
    assert version == 2 and network["package_registries"] == ["npm-mirror", "pypi-mirror"]
    assert len(network["hosts"]) == 3
    after = await client.beta.sessions.create(agent=agent.id, environment_id=made.id)
    assert (await native.get(f"/v1/runs/{before.id}")).json()["environment"] == {"id": made.id, "version": 1}
    assert (await native.get(f"/v1/runs/{after.id}")).json()["environment"] == {"id": made.id, "version": 2}

    renamed = await client.beta.environments.update(
        made.id, name="renamed", config=cast(Any, updated.config.model_dump())
    )
    assert renamed.name == "renamed"
    assert (await network_of(native, made.id))[0] == 2, "the same networking makes no version"
    closed = await client.beta.environments.update(
        made.id, config=limited(allowed_hosts=[], allow_package_managers=False)
    )
    assert closed.config.networking.allowed_hosts == []
    version, network = await network_of(native, made.id)
    assert version == 3 and network == {**network, "policy": "none", "hosts": [], "package_registries": []}
    audit = (await native.get("/v1/audit", params={"object_id": made.id})).json()["data"]
    assert [e["action"] for e in audit].count("environment.versioned") == 2


async def test_a_new_version_keeps_what_loopds_own_api_set(
    apis: tuple[anthropic.AsyncAnthropic, httpx.AsyncClient],
) -> None:
    client, native = apis
    body = {
        "name": "own",
        "runtime": "runsc",
        "limits": {"cpus": 1},
        "network": {"policy": "none", "byte_budget": 5},
    }
    made = (await native.post("/v1/environments", json=body)).json()
    await client.beta.environments.update(made["id"], config=limited(allowed_hosts=["api.example.test"]))
    shown = (await native.get(f"/v1/environments/{made['id']}")).json()
    assert shown["version"] == 2 and shown["runtime"] == "runsc" and shown["limits"]["cpus"] == 1
    assert shown["network"]["policy"] == "allowlist" and shown["network"]["byte_budget"] == 5

    assert (await native.put("/v1/secrets/token", json={"value": "v"})).status_code == 200
    use = {"secret": "token", "host": "api.example.test", "header": "Authorization", "env_name": "TOKEN"}
    network = {"policy": "allowlist", "hosts": [{"pattern": "api.example.test"}]}
    with_secret = (await native.post("/v1/environments", json={"network": network, "secrets": [use]})).json()
    for config, code in (
        (limited(allowed_hosts=["other.example.test"]), "secret_host_not_allowed"),
        (limited(allowed_hosts=[]), "invalid_environment_config"),
    ):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.beta.environments.update(with_secret["id"], config=config)
        assert refused.value.error_code == code
    await client.beta.environments.archive(made["id"])
    with pytest.raises(anthropic.BadRequestError) as archived:
        await client.beta.environments.update(made["id"], config=limited(allowed_hosts=["b.example.test"]))
    assert archived.value.error_code == "environment_archived"
    assert (await network_of(native, with_secret["id"]))[0] == 1 and (await network_of(native, made["id"]))[
        0
    ] == 2


async def test_what_the_deployment_does_not_give_is_refused_in_the_apis_envelope(
    apis: tuple[anthropic.AsyncAnthropic, httpx.AsyncClient],
) -> None:
    client, native = apis
    for config, code in (
        (UNRESTRICTED, "open_network_not_allowed"),
        (limited(allowed_hosts=["10.0.0.1"]), "invalid_allowed_host"),
        (limited(allowed_hosts=["API.example.test"]), "invalid_allowed_host"),
        (limited(allowed_hosts=["api.example.test:0"]), "invalid_allowed_host"),
        (limited(allowed_hosts=["api.example.test:http"]), "invalid_allowed_host"),
        (limited(allowed_hosts=["https://api.example.test/path"]), "invalid_allowed_host"),
        (limited(allowed_hosts=["localhost"]), "invalid_allowed_host"),
        (limited(allow_mcp_servers=True), "not_served"),
        (PACKAGES, "not_served"),
    ):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.beta.environments.create(name="e", config=config)
        assert refused.value.error_code == code, config
        assert refused.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as open_network:
        await client.beta.environments.create(name="e", config=UNRESTRICTED)
    assert "LOOPD_EGRESS_OPEN_ALLOWED" in str(open_network.value.api_message)
    made = await client.beta.environments.create(name="e")
    with pytest.raises(anthropic.BadRequestError) as widened:
        await client.beta.environments.update(made.id, config=UNRESTRICTED)
    assert widened.value.error_code == "open_network_not_allowed"
    assert (await network_of(native, made.id))[0] == 1, "a refused update writes no version"


async def test_unrestricted_is_open_where_the_operator_permits_it(
    open_apis: tuple[anthropic.AsyncAnthropic, httpx.AsyncClient],
) -> None:
    client, native = open_apis
    made = await client.beta.environments.create(name="open", config=UNRESTRICTED)
    assert made.config.networking.type == "unrestricted"
    assert (await network_of(native, made.id))[1]["policy"] == "open"
    with pytest.raises(anthropic.BadRequestError) as no_registries:
        await client.beta.environments.update(made.id, config=limited(allow_package_managers=True))
    assert no_registries.value.error_code == "no_package_registries"
    narrowed = await client.beta.environments.update(
        made.id, config=limited(allowed_hosts=["api.example.test"])
    )
    assert narrowed.config.networking.type == "limited"
    assert narrowed.config.networking.allow_package_managers is False, "a limited network starts from nothing"
    version, network = await network_of(native, made.id)
    assert version == 2 and network["policy"] == "allowlist"
