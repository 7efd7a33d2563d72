"""Environment rows and their versions: the sandbox settings, per tenant, that runs are started in.

Name, description and metadata are edited in place; what the sandbox is (the spec,
core/environment_spec.py) is versioned: each new spec is a new immutable version, and a run keeps
the version it started in. `config` is the latest version as the Managed Agents view shows it. What
a spec or config may say is the gateway's to check, so this store keeps whatever it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import environment_versions, environments, runs
from services.core.errors import Conflict, InvalidRequest, NotFound


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
    spec: dict[str, Any] | None = None,
) -> Row[Any]:
    """A new environment at version 1 (`spec` None: the default spec, no network)."""
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
    try:
        async with conn.begin_nested():
            row = (await conn.execute(statement)).one()
    except IntegrityError:
        raise Conflict(f"environment {environment_id} exists", code="environment_exists") from None
    await _insert_version(conn, tenant, environment_id, 1, spec or {})
    return row


async def _insert_version(
    conn: AsyncConnection, tenant: str, environment_id: str, version: int, spec: dict[str, Any]
) -> Row[Any]:
    statement = (
        environment_versions.insert()
        .values(tenant_id=tenant, environment_id=environment_id, version=version, spec=spec)
        .returning(*environment_versions.c)
    )
    return (await conn.execute(statement)).one()


async def add_version(
    conn: AsyncConnection, tenant: str, environment_id: str, spec: dict[str, Any], config: dict[str, Any]
) -> tuple[Row[Any], Row[Any]]:
    """The environment's next version, now its latest; an archived environment is a Conflict."""
    current = await get(conn, tenant, environment_id, lock=True)
    if current.archived_at is not None:
        raise Conflict(f"environment {environment_id} is archived", code="environment_archived")
    version = await _insert_version(conn, tenant, environment_id, current.version + 1, spec)
    statement = (
        environments.update()
        .where(environments.c.tenant_id == tenant, environments.c.id == environment_id)
        .values(version=version.version, config=config, updated_at=func.now())
        .returning(*environments.c)
    )
    return (await conn.execute(statement)).one(), version


async def get_version(
    conn: AsyncConnection, tenant: str, environment_id: str, version: int | None = None
) -> tuple[Row[Any], Row[Any]]:
    """The environment and one of its versions (None: the latest)."""
    row = await get(conn, tenant, environment_id)
    wanted = row.version if version is None else version
    query = select(environment_versions).where(
        environment_versions.c.tenant_id == tenant,
        environment_versions.c.environment_id == environment_id,
        environment_versions.c.version == wanted,
    )
    found = (await conn.execute(query)).first()
    if found is None:
        raise NotFound(
            f"environment {environment_id} has no version {wanted}", code="environment_version_not_found"
        )
    return row, found


async def versions(conn: AsyncConnection, tenant: str, environment_id: str) -> list[Row[Any]]:
    """The environment's versions, newest first."""
    await get(conn, tenant, environment_id)
    query = (
        select(environment_versions)
        .where(
            environment_versions.c.tenant_id == tenant,
            environment_versions.c.environment_id == environment_id,
        )
        .order_by(environment_versions.c.version.desc())
    )
    return list(await conn.execute(query))


async def usable(conn: AsyncConnection, tenant: str, environment_id: str, version: int | None) -> int:
    """The version a new run or agent gets of the environment (None: its latest), refused with a 422
    when the environment, or that version of it, does not exist or is archived."""
    try:
        row, found = await get_version(conn, tenant, environment_id, version)
    except NotFound as missing:
        raise InvalidRequest(missing.message, code=missing.code) from None
    if row.archived_at is not None:
        raise InvalidRequest(f"environment {environment_id} is archived", code="environment_archived")
    return int(found.version)


async def spec_of(
    conn: AsyncConnection, tenant: str, environment_id: str, version: int
) -> dict[str, Any] | None:
    """One version's stored spec, archived or not (a run keeps its version); None when it is gone."""
    query = select(environment_versions.c.spec).where(
        environment_versions.c.tenant_id == tenant,
        environment_versions.c.environment_id == environment_id,
        environment_versions.c.version == version,
    )
    spec = (await conn.execute(query)).scalar()
    return dict(spec) if spec is not None else None


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
    """The tenant's environments, newest first, after the (created_at, id) `after` of the last one shown,
    each with its latest version's `spec`."""
    latest = and_(
        environment_versions.c.tenant_id == environments.c.tenant_id,
        environment_versions.c.environment_id == environments.c.id,
        environment_versions.c.version == environments.c.version,
    )
    query = (
        select(environments, environment_versions.c.spec)
        .select_from(environments.join(environment_versions, latest))
        .where(environments.c.tenant_id == tenant)
    )
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


def environment_to_wire(row: Row[Any], version: Row[Any]) -> dict[str, Any]:
    """An environment as the native API shows it: its fields, then one version's spec (flattened)."""
    return {
        "id": row.id,
        "tenant": row.tenant_id,
        "name": row.name,
        "description": row.description,
        "metadata": row.metadata,
        "version": version.version,
        "latest_version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "archived_at": row.archived_at.isoformat() if row.archived_at else None,
        **version.spec,
    }


def version_to_wire(version: Row[Any]) -> dict[str, Any]:
    return {"version": version.version, "created_at": version.created_at.isoformat(), **version.spec}
