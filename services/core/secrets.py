"""A tenant's secrets: every statement on `secrets` lives here.

Values arrive sealed (core/secret_box.py) and leave sealed, only towards hands: what the API shows of a
secret is its name and times, never its value or its ciphertext.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Row, and_, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import environment_versions, environments, secrets
from services.core.errors import Conflict, NotFound

_SHOWN = (secrets.c.name, secrets.c.created_at, secrets.c.updated_at)


async def put(
    conn: AsyncConnection, tenant: str, name: str, sealed: bytes
) -> tuple[Row[Any, Any, Any], bool]:
    """Store the secret's sealed value, replacing any before it; True when it is new."""
    values = insert(secrets).values(tenant_id=tenant, name=name, sealed=sealed)
    statement = values.on_conflict_do_update(
        index_elements=[secrets.c.tenant_id, secrets.c.name],
        set_={"sealed": values.excluded.sealed, "updated_at": func.now()},
    ).returning(*_SHOWN, literal_column("(xmax = 0)").label("created"))
    row = (await conn.execute(statement)).one()
    return row, bool(row.created)


async def get(conn: AsyncConnection, tenant: str, name: str) -> Row[Any, Any, Any]:
    query = select(*_SHOWN).where(secrets.c.tenant_id == tenant, secrets.c.name == name)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"secret {name} not found", code="secret_not_found")
    return row


async def list_names(conn: AsyncConnection, tenant: str) -> list[Row[Any, Any, Any]]:
    query = select(*_SHOWN).where(secrets.c.tenant_id == tenant).order_by(secrets.c.name)
    return list(await conn.execute(query))


async def delete(conn: AsyncConnection, tenant: str, name: str) -> None:
    """Delete the secret; one the latest version of an environment that is not archived names is a
    Conflict (its runs would reach their host without it)."""
    await get(conn, tenant, name)
    latest = and_(
        environment_versions.c.tenant_id == environments.c.tenant_id,
        environment_versions.c.environment_id == environments.c.id,
        environment_versions.c.version == environments.c.version,
    )
    users = (
        await conn.execute(
            select(environments.c.id)
            .select_from(environments.join(environment_versions, latest))
            .where(
                environments.c.tenant_id == tenant,
                environments.c.archived_at.is_(None),
                environment_versions.c.spec["secrets"].contains([{"secret": name}]),
            )
            .order_by(environments.c.id)
            .limit(5)
        )
    ).scalars()
    named = list(users)
    if named:
        raise Conflict(f"secret {name} is used by environments {named}", code="secret_in_use")
    await conn.execute(secrets.delete().where(secrets.c.tenant_id == tenant, secrets.c.name == name))


async def missing(conn: AsyncConnection, tenant: str, names: Collection[str]) -> set[str]:
    """Which of `names` the tenant has no secret of."""
    if not names:
        return set()
    query = select(secrets.c.name).where(secrets.c.tenant_id == tenant, secrets.c.name.in_(list(names)))
    return set(names) - set((await conn.execute(query)).scalars())


async def sealed(conn: AsyncConnection, tenant: str, names: Collection[str]) -> dict[str, bytes]:
    """The sealed values of those of `names` that exist, for hands to open at egress."""
    if not names:
        return {}
    query = select(secrets.c.name, secrets.c.sealed).where(
        secrets.c.tenant_id == tenant, secrets.c.name.in_(list(names))
    )
    return {row.name: bytes(row.sealed) for row in await conn.execute(query)}


def secret_to_wire(row: Row[Any, Any, Any]) -> dict[str, Any]:
    return {
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
