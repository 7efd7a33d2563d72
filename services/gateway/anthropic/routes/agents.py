"""Agents: create, retrieve (latest or a version), update against the version read, list, versions,
archive. Each create or change is a new immutable loopd agent version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.core import agent_store, audit
from services.core.db.engine import autocommit
from services.core.errors import Conflict, InvalidRequest
from services.core.runs import new_id
from services.gateway.anthropic import agent_config, paging, wire
from services.gateway.anthropic.params import CreatedFrom, CreatedTo, Page
from services.gateway.anthropic.responses import answers
from services.gateway.anthropic.responses.agents import Agent, AgentPage
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import AgentId, VersionQuery

router = APIRouter(prefix="/v1/agents", tags=["agents"])

Metadata = dict[str, str]


class CreateAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    model: Any
    description: str | None = Field(None, max_length=10_000)
    system: str | None = Field(None, max_length=200_000)
    tools: list[Any] = Field(default_factory=list, max_length=256)
    metadata: Metadata = Field(default_factory=dict, max_length=16)
    mcp_servers: list[Any] = Field(default_factory=list)
    skills: list[Any] = Field(default_factory=list)
    multiagent: Any = None
    execution_identity: Any = None
    x_loopd: dict[str, Any] | None = None


class UpdateAgent(BaseModel):
    """Each field given replaces the agent's; `metadata` is a patch (null deletes a key)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1)
    name: str | None = Field(None, min_length=1, max_length=200)
    model: Any = None
    description: str | None = Field(None, max_length=10_000)
    system: str | None = Field(None, max_length=200_000)
    tools: list[Any] | None = Field(None, max_length=256)
    metadata: dict[str, str | None] | None = None
    mcp_servers: list[Any] | None = None
    skills: list[Any] | None = None
    multiagent: Any = None
    execution_identity: Any = None
    x_loopd: dict[str, Any] | None = None


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
        raise agent_config.refused(
            "metadata takes at most 16 keys of 64 characters, values of 512", "invalid_metadata"
        )


@router.post("", **answers(Agent, 413))
async def create_agent(body: CreateAgent, caller: Member, services: ServicesDep) -> dict[str, Any]:
    given = body.model_dump()
    agent_config.check_unserved(given)
    _check_metadata(body.metadata)
    config = {
        "name": body.name,
        "model": agent_config.model_config(body.model),
        "system": body.system or None,
        "description": body.description,
        "metadata": body.metadata,
        "tools": agent_config.resolve_tools(body.tools),
    }
    spec = agent_config.spec_of(config, body.x_loopd)
    async with services.engine.begin() as conn:
        row = await agent_store.create_agent(
            conn, caller.tenant_id, new_id("agent"), body.name, spec, agent_config.profile_of(config)
        )
        await audit.record(conn, caller.actor, "agent.created", "agent", row.id, {"version": row.version})
    return wire.agent(row, row.created_at)


@router.get("/{agent_id}", **answers(Agent, 404))
async def retrieve_agent(
    agent_id: AgentId, caller: Viewer, services: ServicesDep, version: VersionQuery = None
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        row = await agent_store.get_agent(conn, caller.tenant_id, agent_id, version)
        first = await agent_store.first_created(conn, caller.tenant_id, agent_id)
    return wire.agent(row, first or row.created_at)


def _updated(current: dict[str, Any], body: UpdateAgent) -> dict[str, Any]:
    given = body.model_fields_set
    config = dict(current)
    if "name" in given and body.name is not None:
        config["name"] = body.name
    if "model" in given and body.model is not None:
        config["model"] = agent_config.model_config(body.model)
    if "system" in given:
        config["system"] = body.system or None
    if "description" in given:
        config["description"] = body.description or None
    if "tools" in given:
        config["tools"] = agent_config.resolve_tools(body.tools or [])
    if "metadata" in given and body.metadata is not None:
        merged = {**current["metadata"], **body.metadata}
        config["metadata"] = {k: v for k, v in merged.items() if v is not None}
        _check_metadata(config["metadata"])
    return config


@router.post("/{agent_id}", **answers(Agent, 404, 409, 413))
async def update_agent(
    agent_id: AgentId, body: UpdateAgent, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    agent_config.check_unserved(body.model_dump(exclude_unset=True))
    async with services.engine.begin() as conn:
        await agent_store.lock_agent(conn, caller.tenant_id, agent_id)
        row = await agent_store.get_agent(conn, caller.tenant_id, agent_id)
        first = await agent_store.first_created(conn, caller.tenant_id, agent_id) or row.created_at
        if body.version is not None and body.version != row.version:
            raise Conflict(
                f"agent {agent_id} is at version {row.version}, not {body.version}: read it again",
                code="agent_version_stale",
            )
        if row.archived_at is not None:
            raise Conflict(f"agent {agent_id} is archived", code="agent_archived")
        current = agent_config.config_of(row.spec, row.profile)
        config = _updated(current, body)
        extras = body.x_loopd if body.x_loopd is not None else agent_config.extras_of(row.spec)
        spec = agent_config.spec_of(config, extras)
        if spec == row.spec and agent_config.profile_of(config) == (
            row.profile or agent_config.profile_of(current)
        ):
            return wire.agent(row, first)
        new = await agent_store.add_version(
            conn, caller.tenant_id, agent_id, config["name"], spec, agent_config.profile_of(config)
        )
        await audit.record(conn, caller.actor, "agent.versioned", "agent", new.id, {"version": new.version})
    return wire.agent(new, first)


@router.get("", **answers(AgentPage))
async def list_agents(
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=100),
    page: Page = None,
    include_archived: bool = False,
    created_at_gte: CreatedFrom = None,
    created_at_lte: CreatedTo = None,
) -> dict[str, Any]:
    where = agent_store.AgentFilter(include_archived, created_at_gte, created_at_lte)
    async with autocommit(services.engine).connect() as conn:
        rows = await agent_store.page_latest(
            conn, caller.tenant_id, where, after=paging.decode_at("agents", page), limit=limit + 1
        )
    shown = rows[:limit]
    next_page = (
        paging.encode_at("agents", shown[-1].first_created_at, shown[-1].id) if len(rows) > limit else None
    )
    return {"data": [wire.agent(row, row.first_created_at) for row in shown], "next_page": next_page}


@router.get("/{agent_id}/versions", **answers(AgentPage, 404))
async def list_versions(
    agent_id: AgentId,
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=100),
    page: Page = None,
) -> dict[str, Any]:
    before = paging.decode("versions", page, str, int) if page else None
    if before is not None and before[0] != agent_id:
        raise InvalidRequest("page is a token of another agent's versions", code="invalid_page")
    async with autocommit(services.engine).connect() as conn:
        await agent_store.get_agent(conn, caller.tenant_id, agent_id)
        first = await agent_store.first_created(conn, caller.tenant_id, agent_id)
        rows = await agent_store.page_versions(
            conn, caller.tenant_id, agent_id, before=before[1] if before else None, limit=limit + 1
        )
    shown = rows[:limit]
    next_page = paging.encode("versions", agent_id, shown[-1].version) if len(rows) > limit else None
    return {"data": [wire.agent(row, first or row.created_at) for row in shown], "next_page": next_page}


@router.post("/{agent_id}/archive", **answers(Agent, 404, 409))
async def archive_agent(agent_id: AgentId, caller: Member, services: ServicesDep) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        await agent_store.get_agent(conn, caller.tenant_id, agent_id)
        await agent_store.archive_agent(conn, caller.tenant_id, agent_id)
        await audit.record(conn, caller.actor, "agent.archived", "agent", agent_id)
        row = await agent_store.get_agent(conn, caller.tenant_id, agent_id)
        first = await agent_store.first_created(conn, caller.tenant_id, agent_id)
    return wire.agent(row, first or row.created_at)
