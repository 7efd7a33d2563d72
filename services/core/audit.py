"""The audit log: who (a key id, never a key) did what to which object, and when. Every statement
on `audit_log` lives here; rows are appended in the same transaction as the change they record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import audit_log


@dataclass(frozen=True)
class Actor:
    """Who acts: a key of a tenant, or the server itself (key_id None)."""

    tenant_id: str
    key_id: str | None


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    key_id: str | None = None
    after: int = 0
    limit: int = 100


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
) -> None:
    """`tenant_id` names the tenant the entry belongs to when it is not the actor's (a root admin
    creating a tenant: the new tenant's admins see it too)."""
    await conn.execute(
        insert(audit_log).values(
            tenant_id=tenant_id or actor.tenant_id,
            key_id=actor.key_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or {},
        )
    )


async def read(conn: AsyncConnection, tenant_id: str, wanted: AuditFilter) -> list[Row[Any]]:
    """The tenant's entries after `wanted.after`, oldest first."""
    query = select(audit_log).where(audit_log.c.tenant_id == tenant_id, audit_log.c.id > wanted.after)
    for column, value in (
        (audit_log.c.action, wanted.action),
        (audit_log.c.object_type, wanted.object_type),
        (audit_log.c.object_id, wanted.object_id),
        (audit_log.c.key_id, wanted.key_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return list(await conn.execute(query.order_by(audit_log.c.id).limit(wanted.limit)))


def entry_to_wire(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "key_id": row.key_id,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "details": row.details,
    }
