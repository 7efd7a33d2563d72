"""Agent rows: each agent is a series of immutable versions of its spec, numbered from 1."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import agents
from services.core.errors import Conflict, NotFound


async def create_agent(
    conn: AsyncConnection,
    tenant: str,
    agent_id: str,
    name: str,
    spec: dict[str, Any],
    profile: dict[str, Any] | None = None,
) -> Row[Any]:
    """Store version 1 of a new agent; a Conflict if the id is taken."""
    statement = (
        agents.insert()
        .values(tenant_id=tenant, id=agent_id, version=1, name=name, spec=spec, profile=profile)
        .returning(*agents.c)
    )
    try:
        return (await conn.execute(statement)).one()
    except IntegrityError:
        raise Conflict(
            f"agent {agent_id} exists; PUT /v1/agents/{agent_id} makes a new version", code="agent_exists"
        ) from None


async def add_version(
    conn: AsyncConnection,
    tenant: str,
    agent_id: str,
    name: str,
    spec: dict[str, Any],
    profile: dict[str, Any] | None = None,
) -> Row[Any]:
    """Store the next version of an agent (version 1 if it is new)."""
    # Serialise concurrent versions of one agent so their numbers never collide.
    await lock_agent(conn, tenant, agent_id)
    latest = (
        await conn.execute(
            select(func.max(agents.c.version)).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
        )
    ).scalar()
    statement = (
        agents.insert()
        .values(
            tenant_id=tenant, id=agent_id, version=(latest or 0) + 1, name=name, spec=spec, profile=profile
        )
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


async def find_versions(
    conn: AsyncConnection, tenant: str, wanted: Iterable[tuple[str, int | None]]
) -> dict[tuple[str, int | None], Row[Any]]:
    """Many agent versions in one query, keyed as asked; a None version is the latest, as in
    `find_agent`. What is not found is left out."""
    wanted = {(agent_id, version or None) for agent_id, version in wanted}
    pinned = [(agent_id, version) for agent_id, version in wanted if version]
    floating = {agent_id for agent_id, version in wanted if not version}
    if not wanted:
        return {}
    conditions = []
    if pinned:
        conditions.append(tuple_(agents.c.id, agents.c.version).in_(pinned))
    if floating:
        conditions.append(agents.c.id.in_(floating))
    query = select(agents).where(agents.c.tenant_id == tenant, or_(*conditions)).order_by(agents.c.version)
    found: dict[tuple[str, int | None], Row[Any]] = {}
    for row in await conn.execute(query):
        if (row.id, row.version) in wanted:
            found[(row.id, row.version)] = row
        if row.id in floating:
            found[(row.id, None)] = row  # ascending versions: the last one kept is the latest
    return found


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


async def lock_agent(conn: AsyncConnection, tenant: str, agent_id: str) -> None:
    """Hold off other new versions of this agent until the caller's transaction ends."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant}/{agent_id}"))))


async def first_created(conn: AsyncConnection, tenant: str, agent_id: str) -> datetime | None:
    """When version 1 of the agent was stored: the agent's own creation time."""
    query = select(func.min(agents.c.created_at)).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
    first: datetime | None = (await conn.execute(query)).scalar()
    return first


@dataclass(frozen=True)
class AgentFilter:
    include_archived: bool = False
    created_from: datetime | None = None
    created_to: datetime | None = None


async def page_latest(
    conn: AsyncConnection, tenant: str, where: AgentFilter, *, after: tuple[datetime, str] | None, limit: int
) -> list[Row[Any]]:
    """The latest version of each agent, newest agent first, with `first_created_at`; `after` is the
    (creation time, id) of the last agent of the previous page."""
    latest = (
        select(
            agents.c.id,
            func.max(agents.c.version).label("version"),
            func.min(agents.c.created_at).label("first_created_at"),
        )
        .where(agents.c.tenant_id == tenant)
        .group_by(agents.c.id)
        .subquery()
    )
    query = (
        select(agents, latest.c.first_created_at)
        .join(latest, (agents.c.id == latest.c.id) & (agents.c.version == latest.c.version))
        .where(agents.c.tenant_id == tenant)
    )
    if not where.include_archived:
        query = query.where(agents.c.archived_at.is_(None))
    if where.created_from is not None:
        query = query.where(latest.c.first_created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(latest.c.first_created_at <= where.created_to)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                latest.c.first_created_at < at,
                and_(latest.c.first_created_at == at, agents.c.id < last_id),
            )
        )
    query = query.order_by(latest.c.first_created_at.desc(), agents.c.id.desc()).limit(limit)
    return list(await conn.execute(query))


async def page_versions(
    conn: AsyncConnection, tenant: str, agent_id: str, *, before: int | None, limit: int
) -> list[Row[Any]]:
    """An agent's versions, newest first, below version `before` when it is given."""
    query = select(agents).where(agents.c.tenant_id == tenant, agents.c.id == agent_id)
    if before is not None:
        query = query.where(agents.c.version < before)
    return list(await conn.execute(query.order_by(agents.c.version.desc()).limit(limit)))


async def archive_agent(conn: AsyncConnection, tenant: str, agent_id: str) -> None:
    """Archive every version of the agent (once: a second archive keeps the first time)."""
    statement = (
        agents.update()
        .where(agents.c.tenant_id == tenant, agents.c.id == agent_id, agents.c.archived_at.is_(None))
        .values(archived_at=func.now())
    )
    await conn.execute(statement)


def agent_to_wire(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "version": row.version, "created_at": row.created_at.isoformat(), **row.spec}
