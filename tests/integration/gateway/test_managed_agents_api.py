# The SDK types each answer as a wide union of event and block kinds; the tests check the kind by value.
# mypy: disable-error-code="union-attr,index"
"""The Managed Agents API at /anthropic, driven by the official `anthropic` SDK against an in-process
gateway on the real PostgreSQL: agents, environments, sessions and their events, paging, the error
classes the SDK raises, and a session seen through both APIs.

No brain runs here, so sessions do not move on their own; the end-to-end flow is in
tests/e2e/test_managed_agents.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from sqlalchemy import event as sqlalchemy_event

from services.core import events as event_log
from services.core import payloads
from services.core.bus import Bus
from services.core.settings import ModelPrice, Settings
from services.core.status import RunStatus
from services.gateway.anthropic.app import create_anthropic_app
from services.gateway.app import create_app

TOOLSET = {
    "type": "agent_toolset_20260401",
    "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
}
LOOKUP = {
    "type": "custom",
    "name": "lookup",
    "description": "Look a word up.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
}


@pytest.fixture
async def gateway(gateway_settings: Settings, local_bus: Bus) -> AsyncIterator[Any]:
    app = create_app(gateway_settings, bus=local_bus)
    async with app.router.lifespan_context(app):
        yield app


def sdk(app: Any, key: str) -> anthropic.AsyncAnthropic:
    transport = httpx2.ASGITransport(app=app)
    return anthropic.AsyncAnthropic(
        base_url="http://loopd.test/anthropic",
        api_key=key,
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=1,
    )


@pytest.fixture
async def client(gateway: Any, gateway_settings: Settings) -> AsyncIterator[anthropic.AsyncAnthropic]:
    assert gateway_settings.admin_key is not None
    async with sdk(gateway, gateway_settings.admin_key.get_secret_value()) as client:
        yield client


@pytest.fixture
async def native(gateway: Any, gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    assert gateway_settings.admin_key is not None
    headers = {"Authorization": f"Bearer {gateway_settings.admin_key.get_secret_value()}"}
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://loopd.test", headers=headers) as api:
        yield api


async def new_agent(client: anthropic.AsyncAnthropic, **fields: Any) -> Any:
    body: dict[str, Any] = {"name": "coder", "model": "claude-sonnet-4-6", "tools": [TOOLSET, LOOKUP]}
    return await client.beta.agents.create(**{**body, **fields})


async def quiet_agent(client: anthropic.AsyncAnthropic) -> Any:
    """An agent of the scripted model: the runs these tests leave queued in the shared database reach no
    model server, should another test's brains step them."""
    script = {"script": [{"text": "done"}]}
    return await new_agent(client, model="scripted", extra_body={"x_loopd": script})


async def test_an_agent_is_versioned_and_reads_back_as_it_was_made(client: anthropic.AsyncAnthropic) -> None:
    agent = await new_agent(client, system="Be brief.", description="writes code", metadata={"team": "a"})
    assert agent.version == 1 and agent.model.id == "claude-sonnet-4-6" and agent.system == "Be brief."
    toolset = agent.tools[0]
    assert toolset.type == "agent_toolset_20260401"
    configs = {config.name: config for config in toolset.configs}
    assert configs["bash"].permission_policy.type == "always_ask"
    assert configs["read"].enabled and configs["read"].permission_policy.type == "always_allow"
    assert not configs["web_fetch"].enabled, "web tools cannot run without a network"
    assert agent.tools[1].type == "custom" and agent.tools[1].name == "lookup"

    updated = await client.beta.agents.update(agent.id, version=1, system="Be thorough.")
    assert updated.version == 2 and updated.system == "Be thorough." and updated.metadata == {"team": "a"}
    same = await client.beta.agents.update(agent.id, version=2, system="Be thorough.")
    assert same.version == 2, "an update that changes nothing makes no version"
    assert (await client.beta.agents.retrieve(agent.id, version=1)).system == "Be brief."
    versions = [v.version async for v in client.beta.agents.versions.list(agent.id, limit=1)]
    assert versions == [2, 1]

    with pytest.raises(anthropic.ConflictError) as stale:
        await client.beta.agents.update(agent.id, version=1, system="again")
    assert stale.value.error_code == "agent_version_stale"
    assert stale.value.response.headers["x-should-retry"] == "false"


async def test_agents_page_and_archived_ones_are_listed_only_when_asked(
    client: anthropic.AsyncAnthropic,
) -> None:
    made = [(await new_agent(client, name=f"a{i}")).id for i in range(3)]
    archived = await client.beta.agents.archive(made[0])
    assert archived.archived_at is not None
    listed = [a.id async for a in client.beta.agents.list(limit=1)]
    assert made[0] not in listed and {made[1], made[2]} <= set(listed)
    everything = [a.id async for a in client.beta.agents.list(limit=2, include_archived=True)]
    assert set(made) <= set(everything) and len(everything) == len(set(everything))


async def test_what_loopd_cannot_do_is_refused_with_the_apis_errors(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as mcp:
        await new_agent(client, mcp_servers=[{"type": "url", "name": "x", "url": "https://example.com"}])
    assert mcp.value.error_code == "not_served"
    with pytest.raises(anthropic.BadRequestError) as web:
        await new_agent(
            client,
            tools=[{"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "enabled": True}]}],
        )
    assert web.value.error_code == "needs_network"
    with pytest.raises(anthropic.BadRequestError) as auto:
        await new_agent(
            client,
            tools=[
                {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "auto"}}}
            ],
        )
    assert "auto" in str(auto.value.api_message)
    # This gateway's operator permits no open network (test_managed_agents_networking.py has the rest).
    with pytest.raises(anthropic.BadRequestError) as open_network:
        await client.beta.environments.create(
            name="e", config={"type": "cloud", "networking": {"type": "unrestricted"}}
        )
    assert open_network.value.error_code == "open_network_not_allowed"
    with pytest.raises(anthropic.BadRequestError) as address:
        await client.beta.environments.create(
            name="e",
            config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["10.0.0.1"]}},
        )
    assert address.value.error_code == "invalid_allowed_host"
    with pytest.raises(anthropic.BadRequestError) as previews:
        await client.beta.sessions.events.stream("run_missing", event_deltas=["agent.spoken"])  # type: ignore[list-item]
    assert previews.value.error_code == "validation_error"
    with pytest.raises(anthropic.NotFoundError) as vaults:
        await client.beta.vaults.list()
    assert vaults.value.error_code == "not_served"
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.beta.environments.retrieve("env_missing")
    assert type(missing.value).__name__ == "BetaEnvironmentNotFoundError"
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.sessions.retrieve("run_missing")


def sdk_routes() -> set[str]:
    """Every path template the installed SDK's resources call, with its ids written `{}`."""
    package = Path(anthropic.__file__).parent / "resources"
    found = set()
    for source in package.rglob("*.py"):
        found |= {re.sub(r"{[^}]+}", "{}", route) for route in SPAN_ROUTE.findall(source.read_text())}
    return found


SPAN_ROUTE = re.compile(r'span_route="(/v1/[^"]*)"')


async def test_every_resource_loopd_does_not_serve_answers_not_served(
    gateway_settings: Settings, local_bus: Bus
) -> None:
    # Some 500 requests within seconds, past the default rate limit of writes.
    unlimited = gateway_settings.model_copy(update={"rate_limit_writes": "", "rate_limit_reads": ""})
    app = create_app(unlimited, bus=local_bus)
    assert unlimited.admin_key is not None
    async with app.router.lifespan_context(app), sdk(app, unlimited.admin_key.get_secret_value()) as client:
        await _walk_unserved(client)


async def _walk_unserved(client: anthropic.AsyncAnthropic) -> None:
    served = {re.sub(r"{[^}]+}", "{}", path) for path in create_anthropic_app().openapi()["paths"]}
    unserved = sorted(sdk_routes() - served)
    assert "/v1/vaults" in unserved and "/v1/sessions/{}/threads" in unserved, "the SDK's routes were read"
    assert not {"/v1/agents", "/v1/sessions/{}/events"} & set(unserved)
    for route in unserved:
        path = route.replace("{}", "x_1")
        for call in (client.get, client.post, client.delete):
            with pytest.raises(anthropic.NotFoundError) as refused:
                await call(path, cast_to=object)
            assert refused.value.error_code == "not_served", (call.__name__, path)
            assert refused.value.body["error"]["type"] == "not_found_error"
    # A path no version of the API has is a plain not_found, in the same envelope.
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await client.get("/v1/nothing_here", cast_to=object)
    assert unknown.value.error_code == "not_found"


async def test_keys_and_roles_come_back_as_the_sdks_classes(
    gateway: Any, client: anthropic.AsyncAnthropic, native: httpx.AsyncClient
) -> None:
    async with sdk(gateway, "lk_" + "0" * 43) as stranger:
        with pytest.raises(anthropic.AuthenticationError) as unknown:
            await stranger.beta.agents.list()
        assert unknown.value.error_code == "invalid_api_key"
    made = await native.post("/v1/keys", json={"name": "reader", "role": "viewer"})
    async with sdk(gateway, made.json()["key"]) as reader:
        assert isinstance((await reader.beta.agents.list()).data, list)
        with pytest.raises(anthropic.PermissionDeniedError):
            await reader.beta.agents.create(name="x", model="claude-sonnet-4-6")


async def test_environments_are_created_updated_archived_and_deleted(
    client: anthropic.AsyncAnthropic,
) -> None:
    environment = await client.beta.environments.create(name="sandbox", metadata={"k": "v"})
    assert environment.config.type == "cloud"
    assert (
        environment.config.networking.type == "limited" and environment.config.networking.allowed_hosts == []
    )
    renamed = await client.beta.environments.update(
        environment.id, name="box", metadata={"k": None, "j": "w"}
    )
    assert renamed.name == "box" and renamed.metadata == {"j": "w"}
    listed = [e.id async for e in client.beta.environments.list(limit=1)]
    assert environment.id in listed
    archived = await client.beta.environments.archive(environment.id)
    assert archived.archived_at is not None
    assert environment.id not in [e.id async for e in client.beta.environments.list()]
    deleted = await client.beta.environments.delete(environment.id)
    assert deleted.type == "environment_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.environments.retrieve(environment.id)


async def test_a_new_session_is_idle_with_no_events_until_its_first_message(
    client: anthropic.AsyncAnthropic,
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    session = await client.beta.sessions.create(
        agent=agent.id, environment_id=environment.id, title="first", metadata={"ticket": "42"}
    )
    assert session.status == "idle" and session.agent.id == agent.id and session.agent.version == 1
    assert session.title == "first" and session.metadata == {"ticket": "42"}
    assert [e async for e in client.beta.sessions.events.list(session.id)] == []

    sent = await client.beta.sessions.events.send(
        session.id,
        events=[
            {"type": "user.interrupt"},
            {"type": "user.message", "content": [{"type": "text", "text": "hi"}]},
        ],
    )
    assert [e.type for e in sent.data] == ["user.interrupt", "user.message"]
    assert (await client.beta.sessions.retrieve(session.id)).status == "running"
    listed = [e async for e in client.beta.sessions.events.list(session.id)]
    assert [(e.id, e.type) for e in listed] == [(sent.data[1].id, "user.message")]
    assert listed[0].content[0].text == "hi"

    updated = await client.beta.sessions.update(session.id, title="renamed", metadata={"ticket": None})
    assert updated.title == "renamed" and updated.metadata == {}
    kinds = [e.type async for e in client.beta.sessions.events.list(session.id, order="desc")]
    assert kinds == ["session.updated", "user.message"]


async def test_a_session_runs_its_agent_with_overrides_and_leaves_the_agent_as_it_was(
    client: anthropic.AsyncAnthropic, native: httpx.AsyncClient
) -> None:
    agent = await new_agent(client, system="Be brief.", extra_body={"x_loopd": {"limits": {"max_steps": 7}}})
    environment = await client.beta.environments.create(name="overrides")
    every_tool_asks: Any = {
        "type": "agent_toolset_20260401",
        "default_config": {"permission_policy": {"type": "always_ask"}},
    }
    session = await client.beta.sessions.create(
        agent={
            "type": "agent_with_overrides",
            "id": agent.id,
            "version": agent.version,
            "model": "claude-opus-4-1",
            "system": "Be thorough.",
            "tools": [every_tool_asks],
        },
        environment_id=environment.id,
    )
    shown = session.agent
    assert (shown.id, shown.version, shown.model.id, shown.system) == (
        agent.id,
        1,
        "claude-opus-4-1",
        "Be thorough.",
    )
    assert [tool.type for tool in shown.tools] == ["agent_toolset_20260401"]
    assert {c.name for c in shown.tools[0].configs if c.enabled} == {
        "bash",
        "read",
        "write",
        "edit",
        "glob",
        "grep",
    }
    assert {c.permission_policy.type for c in shown.tools[0].configs if c.enabled} == {"always_ask"}
    assert (await client.beta.sessions.retrieve(session.id)).agent == shown

    run = (await native.get(f"/v1/runs/{session.id}")).json()
    assert run["model"] == "anthropic/claude-opus-4-1" and run["agent_id"] == agent.id
    same = await client.beta.agents.retrieve(agent.id)
    assert (same.version, same.system, same.model.id) == (1, "Be brief.", "claude-sonnet-4-6")
    assert [tool.type for tool in same.tools] == ["agent_toolset_20260401", "custom"]

    # An override of the prompt alone keeps the agent's model and tools as they were written.
    prompt_only = await client.beta.sessions.create(
        agent={"type": "agent_with_overrides", "id": agent.id, "system": None}, environment_id=environment.id
    )
    assert prompt_only.agent.system is None
    assert prompt_only.agent.tools == same.tools and prompt_only.agent.model == same.model

    with pytest.raises(anthropic.BadRequestError) as mcp:
        await client.beta.sessions.create(
            agent={
                "type": "agent_with_overrides",
                "id": agent.id,
                "mcp_servers": [{"type": "url", "name": "x", "url": "https://example.com"}],
            },
            environment_id=environment.id,
        )
    assert mcp.value.error_code == "not_served"
    renamed: Any = {"type": "agent_with_overrides", "id": agent.id, "name": "other"}
    with pytest.raises(anthropic.BadRequestError) as unknown:
        await client.beta.sessions.create(agent=renamed, environment_id=environment.id)
    assert unknown.value.error_code == "invalid_agent"
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.sessions.create(
            agent={"type": "agent_with_overrides", "id": agent.id, "version": 9},
            environment_id=environment.id,
        )


async def test_a_sessions_budget_is_replaced_mid_session_and_wakes_a_session_that_waits_for_it(
    gateway_settings: Settings, local_bus: Bus
) -> None:
    priced = gateway_settings.model_copy(
        update={"model_prices": {"scripted": ModelPrice(input_per_mtok=1, output_per_mtok=1)}}
    )
    app = create_app(priced, bus=local_bus)
    assert priced.admin_key is not None
    async with app.router.lifespan_context(app), sdk(app, priced.admin_key.get_secret_value()) as client:
        agent = await quiet_agent(client)
        environment = await client.beta.environments.create(name="budgets")
        limit: Any = {"type": "limit", "max_list_cost": {"amount": "1.00", "currency": "USD"}}
        session = await client.beta.sessions.create(
            agent=agent.id, environment_id=environment.id, budget=limit
        )
        assert session.budget is not None and session.budget.max_list_cost.amount == "1.00"

        # The session spends its dollar and waits, as a brain leaves it at its ceiling.
        waiting_for = {"type": "budget", "limit": "max_cost_usd", "used": 1.0, "allowed": 1.0}
        async with app.state.services.engine.begin() as conn:
            waits = event_log.NewEvent.of(payloads.RunWaiting.parse({"waiting_for": waiting_for}))
            changes = {"status": RunStatus.WAITING, "waiting_for": waiting_for, "cost_usd": 1.0}
            await event_log.append(conn, event_log.Append(session.id, (waits,), changes))
        idle = await client.beta.sessions.events.list(session.id, order="desc", limit=1)
        assert (
            idle.data[0].type == "session.status_idle" and idle.data[0].stop_reason.type == "budget_reached"
        )

        with pytest.raises(anthropic.BadRequestError) as not_raised:
            await client.beta.sessions.update(session.id, budget=limit)
        assert not_raised.value.error_code == "budget_not_raised"
        raised = await client.beta.sessions.update(
            session.id, budget={"type": "limit", "max_list_cost": {"amount": "2.50", "currency": "USD"}}
        )
        assert raised.budget is not None and raised.budget.max_list_cost.amount == "2.50"
        assert raised.status == "running" and raised.x_loopd["status"] == "queued"  # type: ignore[attr-defined]
        updated = [e async for e in client.beta.sessions.events.list(session.id, types=["session.updated"])]
        assert [e.budget.max_list_cost.amount for e in updated] == ["2.50"]

        with pytest.raises(anthropic.BadRequestError) as removed:
            await client.beta.sessions.update(session.id, budget=None)
        assert removed.value.error_code == "not_served"
        unbudgeted = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        with pytest.raises(anthropic.BadRequestError) as too_late:
            await client.beta.sessions.update(unbudgeted.id, budget=limit)
        assert too_late.value.error_code == "budget_create_only"
        await client.beta.sessions.archive(unbudgeted.id)
        with pytest.raises(anthropic.ConflictError):
            await client.beta.sessions.update(unbudgeted.id, budget=limit)


async def test_sessions_list_by_agent_and_status_and_archive_and_delete(
    client: anthropic.AsyncAnthropic,
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    ids = [
        (await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)).id
        for _ in range(3)
    ]
    await client.beta.sessions.events.send(
        ids[2], events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
    )
    by_agent = [s.id async for s in client.beta.sessions.list(agent_id=agent.id, limit=2)]
    assert by_agent == ids[::-1]
    oldest_first = [s.id async for s in client.beta.sessions.list(agent_id=agent.id, order="asc", limit=2)]
    assert oldest_first == ids
    idle = [s.id async for s in client.beta.sessions.list(agent_id=agent.id, statuses=["idle"])]
    assert idle == [ids[1], ids[0]]

    with pytest.raises(anthropic.ConflictError):
        await client.beta.sessions.archive(ids[2])  # it is running
    archived = await client.beta.sessions.archive(ids[0])
    assert archived.archived_at is not None
    with pytest.raises(anthropic.ConflictError) as refused:
        await client.beta.sessions.events.send(
            ids[0], events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]
        )
    assert refused.value.error_code == "run_archived"
    assert ids[0] not in [s.id async for s in client.beta.sessions.list(agent_id=agent.id)]
    assert ids[0] in [s.id async for s in client.beta.sessions.list(agent_id=agent.id, include_archived=True)]
    deleted = await client.beta.sessions.delete(ids[1])
    assert deleted.type == "session_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.sessions.retrieve(ids[1])


def token(page: str | None) -> str:
    assert page is not None, "a page lies on that side"
    return page


async def test_session_pages_lead_back_through_prev_page_and_forward_again(
    client: anthropic.AsyncAnthropic,
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="pages")
    made = [
        (await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)).id
        for _ in range(5)
    ]
    newest_first = made[::-1]

    first = await client.beta.sessions.list(agent_id=agent.id, limit=2)
    second = await first.get_next_page()
    third = await second.get_next_page()
    assert [[s.id for s in p.data] for p in (first, second, third)] == [
        newest_first[:2],
        newest_first[2:4],
        newest_first[4:],
    ]
    assert first.prev_page is None and not third.has_next_page()

    back = await client.beta.sessions.list(agent_id=agent.id, limit=2, page=token(third.prev_page))
    assert [s.id for s in back.data] == newest_first[2:4]
    start = await client.beta.sessions.list(agent_id=agent.id, limit=2, page=token(back.prev_page))
    assert [s.id for s in start.data] == newest_first[:2] and start.prev_page is None
    forward = await start.get_next_page()
    assert [s.id for s in forward.data] == newest_first[2:4]

    oldest = await client.beta.sessions.list(agent_id=agent.id, order="asc", limit=3)
    rest = await oldest.get_next_page()
    assert [s.id for s in rest.data] == made[3:] and rest.next_page is None
    again = await client.beta.sessions.list(
        agent_id=agent.id, order="asc", limit=3, page=token(rest.prev_page)
    )
    assert [s.id for s in again.data] == made[:3] and again.prev_page is None
    assert [s.id async for s in client.beta.sessions.list(agent_id=agent.id, limit=2)] == newest_first

    with pytest.raises(anthropic.BadRequestError) as other_order:
        await client.beta.sessions.list(agent_id=agent.id, order="desc", page=token(rest.prev_page))
    assert other_order.value.error_code == "invalid_page"


async def test_a_session_is_a_run_both_apis_see(
    client: anthropic.AsyncAnthropic, native: httpx.AsyncClient
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    session = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="shared")
    await client.beta.sessions.events.send(
        session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "hello"}]}]
    )

    run = (await native.get(f"/v1/runs/{session.id}")).json()
    assert run["status"] == "queued" and run["agent_id"] == agent.id and run["agent_version"] == 1
    assert run["model"] == "scripted"
    log = (await native.get(f"/v1/runs/{session.id}/events")).json()["data"]
    assert [e["type"] for e in log] == ["run.created", "run.waiting", "user.message", "run.status"]

    # A message sent natively shows in the session's events, under the id of its seq.
    await native.post(f"/v1/runs/{session.id}/messages", json={"content": "and more"})
    listed = [e async for e in client.beta.sessions.events.list(session.id)]
    assert [e.content[0].text for e in listed if e.type == "user.message"] == ["hello", "and more"]

    # A native fork of the session is a session too, in the same environment.
    forked = await native.post(f"/v1/runs/{session.id}/fork", json={"at_seq": 3})
    assert forked.status_code == 201
    fork = await client.beta.sessions.retrieve(forked.json()["id"])
    assert fork.environment_id == environment.id and fork.title == "shared" and fork.status == "running"
    assert [
        e.content[0].text async for e in client.beta.sessions.events.list(fork.id) if e.type == "user.message"
    ] == ["hello"]


async def test_a_session_forks_at_an_event_id_and_diffs_under_the_prefix(
    gateway: Any, client: anthropic.AsyncAnthropic, native: httpx.AsyncClient
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    session = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="origin")
    for text in ("first", "second"):
        await client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}]
        )
    messages = [e async for e in client.beta.sessions.events.list(session.id) if e.type == "user.message"]
    at = messages[0].id
    seq = messages[0].model_extra["x_loopd"]["seq"]

    fork: Any = await client.post(
        f"/v1/sessions/{session.id}/x_loopd/fork", body={"event_id": at}, cast_to=object
    )
    assert fork["type"] == "session" and fork["id"] != session.id
    assert fork["x_loopd"]["forked_from"] == {
        "run_id": session.id,
        "seq": seq,
        "event_id": at,
    }
    assert fork["title"] == "origin" and fork["environment_id"] == environment.id
    # The fork is a session like any other, to the SDK and to the native API.
    retrieved = await client.beta.sessions.retrieve(fork["id"])
    assert retrieved.agent.id == agent.id and retrieved.agent.version == 1
    forked_texts = [
        e.content[0].text
        async for e in client.beta.sessions.events.list(fork["id"])
        if e.type == "user.message"
    ]
    assert forked_texts == ["first"]
    assert (await native.get(f"/v1/runs/{fork['id']}")).json()["forked_from"]["run_id"] == session.id

    diff: Any = await client.get(f"/v1/sessions/{session.id}/x_loopd/diff/{fork['id']}", cast_to=object)
    assert diff["type"] == "session_diff"
    assert diff["x_loopd"]["diverges_at_seq"] == seq + 1
    assert diff["a"]["session_id"] == session.id and diff["b"]["session_id"] == fork["id"]
    assert "second" in [e["content"][0]["text"] for e in diff["a"]["events"] if e["type"] == "user.message"]
    assert all(
        e["id"].startswith("sevt_") and "x_loopd" in e for e in diff["a"]["events"] + diff["b"]["events"]
    )
    same: Any = await client.get(f"/v1/sessions/{session.id}/x_loopd/diff/{session.id}", cast_to=object)
    assert same["x_loopd"]["diverges_at_seq"] is None and same["a"]["events"] == []

    last = messages[-1].model_extra["x_loopd"]["seq"]
    with pytest.raises(anthropic.NotFoundError) as beyond:
        await client.post(
            f"/v1/sessions/{session.id}/x_loopd/fork",
            body={"event_id": f"sevt_{last + 50}_0"},
            cast_to=object,
        )
    assert beyond.value.error_code == "event_not_found"
    with pytest.raises(anthropic.BadRequestError):
        await client.post(
            f"/v1/sessions/{session.id}/x_loopd/fork", body={"event_id": "seq 3"}, cast_to=object
        )

    # Another tenant sees neither session: a 404 in the API's envelope, for the fork and the diff.
    made = await native.post("/v1/tenants", json={"id": f"other-{agent.id[-8:]}", "name": "other"})
    assert made.status_code == 201, made.text
    async with sdk(gateway, made.json()["admin_key"]["key"]) as stranger:
        with pytest.raises(anthropic.NotFoundError) as hidden:
            await stranger.post(
                f"/v1/sessions/{session.id}/x_loopd/fork", body={"event_id": at}, cast_to=object
            )
        assert hidden.value.body["type"] == "error"
        with pytest.raises(anthropic.NotFoundError):
            await stranger.get(f"/v1/sessions/{session.id}/x_loopd/diff/{fork['id']}", cast_to=object)


async def test_refusals_before_the_routes_come_back_as_the_sdks_classes(
    client: anthropic.AsyncAnthropic, native: httpx.AsyncClient
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    session = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    with pytest.raises(anthropic.ContentTooLargeError) as large:
        await client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": "x" * 100_000}]}],
        )
    assert large.value.error_code == "body_too_large" and large.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError) as unstorable:
        await client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "a\x00b"}]}]
        )
    assert unstorable.value.error_code == "unstorable_input"
    # loopd's own API keeps its own envelope and statuses.
    too_large = await native.post("/v1/runs", content=b"{" + b" " * 100_000 + b"}")
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
    nul = await native.post(f"/v1/runs/{session.id}/messages", json={"content": "a\x00b"})
    assert nul.status_code == 422 and nul.json()["error"]["code"] == "unstorable_input"


async def test_a_page_of_sessions_reads_its_agents_in_one_query(
    gateway: Any, client: anthropic.AsyncAnthropic
) -> None:
    agent = await quiet_agent(client)
    environment = await client.beta.environments.create(name="box")
    pinned: Any = {"type": "agent", "id": agent.id, "version": 1}
    made = [await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)]
    await client.beta.agents.update(agent.id, version=agent.version, system="changed")
    made.append(await client.beta.sessions.create(agent=agent.id, environment_id=environment.id))
    made.append(await client.beta.sessions.create(agent=pinned, environment_id=environment.id))
    statements: list[str] = []

    def note(_: Any, __: Any, statement: str, *___: Any) -> None:
        statements.append(statement)

    engine = gateway.state.services.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", note)
    try:
        page = await client.beta.sessions.list(agent_id=agent.id, limit=3)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", note)
    assert [s.id for s in page.data] == [s.id for s in made[::-1]]
    assert [(s.agent.version, s.agent.system) for s in page.data] == [(1, None), (2, "changed"), (1, None)]
    assert len([s for s in statements if "FROM agents" in s]) == 1
