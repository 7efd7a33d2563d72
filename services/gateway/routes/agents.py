"""Agents: create, read, list; a PUT makes a new immutable version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from services.core.agents import AgentSpec
from services.core.db.engine import autocommit
from services.core.db.schema import agents
from services.core.errors import Conflict, NotFound
from services.core.runs import new_id
from services.gateway.deps import ServicesDep

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class CreateAgent(AgentSpec):
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def agent_to_wire(row: Any) -> dict[str, Any]:
    return {"id": row.id, "version": row.version, "created_at": row.created_at.isoformat(), **row.spec}


@router.post("", status_code=201)
async def create_agent(body: CreateAgent, services: ServicesDep) -> dict[str, Any]:
    agent_id = body.id or new_id("agt")
    spec = body.model_dump(mode="json", exclude={"id"})
    try:
        async with services.engine.begin() as conn:
            row = (
                await conn.execute(
                    agents.insert()
                    .values(
                        tenant_id=services.settings.tenant, id=agent_id, version=1, name=body.name, spec=spec
                    )
                    .returning(*agents.c)
                )
            ).one()
    except IntegrityError:
        raise Conflict(
            f"agent {agent_id} exists; PUT /v1/agents/{agent_id} makes a new version", code="agent_exists"
        ) from None
    return agent_to_wire(row)


@router.put("/{agent_id}", status_code=201)
async def new_agent_version(agent_id: str, body: AgentSpec, services: ServicesDep) -> dict[str, Any]:
    tenant = services.settings.tenant
    async with services.engine.begin() as conn:
        # Serialise concurrent PUTs of one agent so versions never collide.
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant}/{agent_id}"))))
        latest = (
            await conn.execute(
                select(func.max(agents.c.version)).where(
                    agents.c.tenant_id == tenant, agents.c.id == agent_id
                )
            )
        ).scalar()
        row = (
            await conn.execute(
                agents.insert()
                .values(
                    tenant_id=tenant,
                    id=agent_id,
                    version=(latest or 0) + 1,
                    name=body.name,
                    spec=body.model_dump(mode="json"),
                )
                .returning(*agents.c)
            )
        ).one()
    return agent_to_wire(row)


@router.get("")
async def list_agents(services: ServicesDep, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    latest = (
        select(agents.c.id, func.max(agents.c.version).label("version"))
        .where(agents.c.tenant_id == services.settings.tenant)
        .group_by(agents.c.id)
        .subquery()
    )
    query = (
        select(agents)
        .join(latest, (agents.c.id == latest.c.id) & (agents.c.version == latest.c.version))
        .where(agents.c.tenant_id == services.settings.tenant)
        .order_by(agents.c.created_at.desc())
        .limit(limit)
    )
    async with autocommit(services.engine).connect() as conn:
        rows = (await conn.execute(query)).all()
    return {"data": [agent_to_wire(row) for row in rows], "next_cursor": None}


@router.get("/{agent_id}")
async def get_agent(
    agent_id: str, services: ServicesDep, version: int | None = Query(None, ge=1)
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        row = await load_agent(conn, services.settings.tenant, agent_id, version)
    return agent_to_wire(row)


async def load_agent(conn: Any, tenant: str, agent_id: str, version: int | None) -> Any:
    query = select(agents).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
    query = query.where(agents.c.version == version) if version else query.order_by(agents.c.version.desc())
    row = (await conn.execute(query.limit(1))).first()
    if row is None:
        suffix = f" version {version}" if version else ""
        raise NotFound(f"agent {agent_id}{suffix} not found", code="agent_not_found")
    return row
