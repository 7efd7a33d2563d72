"""Tenants and their quotas. Every statement on `tenants` lives here.

The root tenant (settings.tenant) is where the deployment's own admins live: its admins create the
other tenants. Quotas are set by root admins; a tenant's own admins read them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import tenants
from services.core.errors import Conflict, NotFound

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_BIGINT_MAX = 2**63 - 1


class Quotas(BaseModel):
    """A tenant's shares of the deployment; unset means no limit beyond the server's ceilings."""

    model_config = ConfigDict(extra="forbid")

    max_running_runs: int | None = Field(
        None, ge=1, le=1_000_000, description="runs running at once; more wait in the queue"
    )
    max_sandboxes: int | None = Field(None, ge=1, le=1_000_000, description="sandboxes held at once")
    monthly_tokens: int | None = Field(
        None, ge=0, le=_BIGINT_MAX, description="input plus output tokens per calendar month (UTC)"
    )
    monthly_cost_usd: float | None = Field(
        None, ge=0, le=1e12, description="model spend per calendar month (UTC), in US dollars"
    )


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str | None = None) -> None:
    await conn.execute(insert(tenants).values(id=tenant_id, name=name or tenant_id).on_conflict_do_nothing())


async def create_tenant(conn: AsyncConnection, tenant_id: str, name: str, quotas: Quotas) -> Row[Any]:
    statement = (
        insert(tenants)
        .values(id=tenant_id, name=name, quotas=quotas.model_dump(exclude_none=True))
        .on_conflict_do_nothing()
        .returning(tenants)
    )
    row: Row[Any] | None = (await conn.execute(statement)).first()
    if row is None:
        raise Conflict(f"tenant {tenant_id} exists", code="tenant_exists")
    return row


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> Row[Any]:
    row: Row[Any] | None = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
    if row is None:
        raise NotFound(f"tenant {tenant_id} not found", code="tenant_not_found")
    return row


async def list_tenants(conn: AsyncConnection, *, limit: int = 500) -> list[Row[Any]]:
    return list(await conn.execute(select(tenants).order_by(tenants.c.created_at, tenants.c.id).limit(limit)))


async def update_tenant(
    conn: AsyncConnection, tenant_id: str, *, name: str | None, quotas: Quotas | None
) -> Row[Any]:
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if quotas is not None:
        changes["quotas"] = quotas.model_dump(exclude_none=True)
    if not changes:
        return await get_tenant(conn, tenant_id)
    row: Row[Any] | None = (
        await conn.execute(
            update(tenants).where(tenants.c.id == tenant_id).values(**changes).returning(tenants)
        )
    ).first()
    if row is None:
        raise NotFound(f"tenant {tenant_id} not found", code="tenant_not_found")
    return row


async def quotas_of(conn: AsyncConnection, tenant_id: str) -> Quotas:
    """A tenant's quotas; a tenant without a row (runs older than tenants) has none."""
    value = (await conn.execute(select(tenants.c.quotas).where(tenants.c.id == tenant_id))).scalar()
    return Quotas.model_validate(value or {})


async def running_limits(conn: AsyncConnection) -> dict[str, int]:
    """Every tenant that limits its running runs, with its max_running_runs."""
    query = select(tenants.c.id, tenants.c.quotas).where(tenants.c.quotas.has_key("max_running_runs"))
    limits = {row.id: Quotas.model_validate(row.quotas).max_running_runs for row in await conn.execute(query)}
    return {tenant: limit for tenant, limit in limits.items() if limit is not None}


def tenant_to_wire(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "quotas": Quotas.model_validate(row.quotas).model_dump(),
        "created_at": row.created_at.isoformat(),
    }
