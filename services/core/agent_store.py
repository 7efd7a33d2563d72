"""Agent rows: each agent is a series of immutable versions of its spec, numbered from 1."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import agents
from services.core.errors import Conflict, NotFound


async def create_agent(
    conn: AsyncConnection, tenant: str, agent_id: str, name: str, spec: dict[str, Any]
) -> Row[Any]:
    """Store version 1 of a new agent; a Conflict if the id is taken."""
    statement = (
        agents.insert()
        .values(tenant_id=tenant, id=agent_id, version=1, name=name, spec=spec)
        .returning(*agents.c)
    )
    try:
        return (await conn.execute(statement)).one()
    except IntegrityError:
        raise Conflict(
            f"agent {agent_id} exists; PUT /v1/agents/{agent_id} makes a new version", code="agent_exists"
        ) from None


async def add_version(
    conn: AsyncConnection, tenant: str, agent_id: str, name: str, spec: dict[str, Any]
) -> Row[Any]:
    """Store the next version of an agent (version 1 if it is new)."""
    # Serialise concurrent versions of one agent so their numbers never collide.
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant}/{agent_id}"))))
    latest = (
        await conn.execute(
            select(func.max(agents.c.version)).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
        )
    ).scalar()
    statement = (
        agents.insert()
        .values(tenant_id=tenant, id=agent_id, version=(latest or 0) + 1, name=name, spec=spec)
        .returning(*agents.c)
    )
    return (await conn.execute(statement)).one()


async def find_agent(
    conn: AsyncConnection, tenant: str, agent_id: str, version: int | None = None
) -> Row[Any] | None:
    """One version of an agent (the latest when `version` is None), or None."""
    query = select(agents).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
    query = query.where(agents.c.version == version) if version else query.order_by(agents.c.version.desc())
    return (await conn.execute(query.limit(1))).first()


async def get_agent(
    conn: AsyncConnection, tenant: str, agent_id: str, version: int | None = None
) -> Row[Any]:
    """Like `find_agent`, but a missing agent is a NotFound."""
    row = await find_agent(conn, tenant, agent_id, version)
    if row is None:
        suffix = f" version {version}" if version else ""
        raise NotFound(f"agent {agent_id}{suffix} not found", code="agent_not_found")
    return row


async def list_latest(conn: AsyncConnection, tenant: str, *, limit: int) -> list[Row[Any]]:
    """The latest version of each of the tenant's agents, newest first."""
    latest = (
        select(agents.c.id, func.max(agents.c.version).label("version"))
        .where(agents.c.tenant_id == tenant)
        .group_by(agents.c.id)
        .subquery()
    )
    query = (
        select(agents)
        .join(latest, (agents.c.id == latest.c.id) & (agents.c.version == latest.c.version))
        .where(agents.c.tenant_id == tenant)
        .order_by(agents.c.created_at.desc())
        .limit(limit)
    )
    return list(await conn.execute(query))


def agent_to_wire(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "version": row.version, "created_at": row.created_at.isoformat(), **row.spec}
