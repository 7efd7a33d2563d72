"""Agents: create, read, list; a PUT makes a new immutable version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import agent_store, audit, environments
from services.core.agents import AgentSpec
from services.core.db.engine import autocommit
from services.core.runs import new_id
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, AgentId, IdField, VersionQuery, errors
from services.gateway.responses import Agent, AgentPage

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class CreateAgent(AgentSpec):
    id: IdField | None = None


@router.post("", status_code=201, response_model=Agent, responses=errors(*BODY_ERRORS, 409))
async def create_agent(body: CreateAgent, caller: Member, services: ServicesDep) -> dict[str, Any]:
    agent_id = body.id or new_id("agt")
    spec = body.model_dump(mode="json", exclude={"id"})
    async with services.engine.begin() as conn:
        await _check_environment(conn, caller.tenant_id, body)
        row = await agent_store.create_agent(conn, caller.tenant_id, agent_id, body.name, spec)
        await audit.record(conn, caller.actor, "agent.created", "agent", row.id, {"version": row.version})
    return agent_store.agent_to_wire(row)


@router.put("/{agent_id}", status_code=201, response_model=Agent, responses=errors(*BODY_ERRORS))
async def new_agent_version(
    agent_id: AgentId, body: AgentSpec, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    spec = body.model_dump(mode="json")
    async with services.engine.begin() as conn:
        await _check_environment(conn, caller.tenant_id, body)
        row = await agent_store.add_version(conn, caller.tenant_id, agent_id, body.name, spec)
        await audit.record(conn, caller.actor, "agent.versioned", "agent", row.id, {"version": row.version})
    return agent_store.agent_to_wire(row)


async def _check_environment(conn: AsyncConnection, tenant: str, spec: AgentSpec) -> None:
    """An agent names an environment of its tenant's that exists, at a version it has (422 if not)."""
    if spec.environment is not None:
        await environments.usable(conn, tenant, spec.environment.id, spec.environment.version)


@router.get("", response_model=AgentPage, responses=errors(422))
async def list_agents(
    caller: Viewer, services: ServicesDep, limit: int = Query(50, ge=1, le=500)
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows = await agent_store.list_latest(conn, caller.tenant_id, limit=limit)
    return {"data": [agent_store.agent_to_wire(row) for row in rows], "next_cursor": None}


@router.get("/{agent_id}", response_model=Agent, responses=errors(404, 422))
async def get_agent(
    agent_id: AgentId, caller: Viewer, services: ServicesDep, version: VersionQuery = None
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        row = await agent_store.get_agent(conn, caller.tenant_id, agent_id, version)
    return agent_store.agent_to_wire(row)
