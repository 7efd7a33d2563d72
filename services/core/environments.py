"""Environment rows: the sandbox settings, per tenant, that Managed Agents sessions name.

An environment is edited in place (the API has no versions of it); what a config may say is the
gateway's to check, so this store keeps whatever config it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import environments, runs
from services.core.errors import Conflict, NotFound


@dataclass(frozen=True)
class EnvironmentChange:
    """The fields an update sets; None leaves a field as it is (description is set when `set_description`)."""

    name: str | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    description: str | None = None
    set_description: bool = False


async def create(
    conn: AsyncConnection,
    tenant: str,
    environment_id: str,
    *,
    name: str,
    description: str | None,
    config: dict[str, Any],
    metadata: dict[str, Any],
) -> Row[Any]:
    statement = (
        environments.insert()
        .values(
            tenant_id=tenant,
            id=environment_id,
            name=name,
            description=description,
            config=config,
            metadata=metadata,
        )
        .returning(*environments.c)
    )
    return (await conn.execute(statement)).one()


async def get(conn: AsyncConnection, tenant: str, environment_id: str, *, lock: bool = False) -> Row[Any]:
    query = select(environments).where(
        environments.c.tenant_id == tenant, environments.c.id == environment_id
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"environment {environment_id} not found", code="environment_not_found")
    return row


async def update(
    conn: AsyncConnection, tenant: str, environment_id: str, change: EnvironmentChange
) -> Row[Any]:
    """Apply `change` to a live environment; an archived one is a Conflict."""
    current = await get(conn, tenant, environment_id, lock=True)
    if current.archived_at is not None:
        raise Conflict(f"environment {environment_id} is archived", code="environment_archived")
    values: dict[str, Any] = {"updated_at": func.now()}
    for name in ("name", "config", "metadata"):
        if getattr(change, name) is not None:
            values[name] = getattr(change, name)
    if change.set_description:
        values["description"] = change.description
    statement = (
        environments.update()
        .where(environments.c.tenant_id == tenant, environments.c.id == environment_id)
        .values(**values)
        .returning(*environments.c)
    )
    return (await conn.execute(statement)).one()


async def archive(conn: AsyncConnection, tenant: str, environment_id: str) -> Row[Any]:
    """Archive the environment (once: archiving again keeps the first time)."""
    await get(conn, tenant, environment_id, lock=True)
    statement = (
        environments.update()
        .where(
            environments.c.tenant_id == tenant,
            environments.c.id == environment_id,
            environments.c.archived_at.is_(None),
        )
        .values(archived_at=func.now(), updated_at=func.now())
    )
    await conn.execute(statement)
    return await get(conn, tenant, environment_id)


async def delete(conn: AsyncConnection, tenant: str, environment_id: str) -> None:
    """Delete the environment; one that a live (unarchived) run still names is a Conflict."""
    await get(conn, tenant, environment_id, lock=True)
    in_use = (
        await conn.execute(
            select(func.count())
            .select_from(runs)
            .where(
                runs.c.tenant_id == tenant,
                runs.c.environment_id == environment_id,
                runs.c.archived_at.is_(None),
            )
        )
    ).scalar()
    if in_use:
        raise Conflict(
            f"environment {environment_id} is used by {in_use} session(s) that are not archived",
            code="environment_in_use",
        )
    await conn.execute(
        environments.delete().where(environments.c.tenant_id == tenant, environments.c.id == environment_id)
    )


async def page(
    conn: AsyncConnection,
    tenant: str,
    *,
    include_archived: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Row[Any]]:
    """The tenant's environments, newest first, after the (created_at, id) `after` of the last one shown."""
    query = select(environments).where(environments.c.tenant_id == tenant)
    if not include_archived:
        query = query.where(environments.c.archived_at.is_(None))
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                environments.c.created_at < at,
                and_(environments.c.created_at == at, environments.c.id < last_id),
            )
        )
    query = query.order_by(environments.c.created_at.desc(), environments.c.id.desc()).limit(limit)
    return list(await conn.execute(query))
