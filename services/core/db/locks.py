"""Per-tenant PostgreSQL advisory locks, held until the transaction ends.

A quota is a count checked and then acted on; taking the tenant's lock first makes the check and the
act one step for every process that follows the same rule, on any machine, and needs no row to lock.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection


def lock_key(purpose: str, tenant: str) -> int:
    """A signed 64-bit key, the same in every process; tenants that collide only wait for each other."""
    digest = hashlib.sha256(f"{purpose}\0{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_tenant(conn: AsyncConnection, purpose: str, tenant: str) -> None:
    """Wait for the tenant's lock for `purpose`; it is released when the transaction commits or rolls back."""
    await conn.execute(select(func.pg_advisory_xact_lock(lock_key(purpose, tenant))))
