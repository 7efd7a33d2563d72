"""Fenced run leases: at most one brain steps a run, and every new owner gets a higher token.

A lease is taken only when the previous one has lapsed, and tokens only grow, so an append
that checks its token (see events.append) can never come from a stale owner. A lease may also carry
its run's claim on one of the tenant's sandboxes (`claim_sandbox`): a new owner starts without one,
and the claim ends when the lease is released or lapses.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import run_leases
from services.core.events import Fence


async def acquire(conn: AsyncConnection, run_id: str, owner: str, ttl_seconds: float) -> Fence | None:
    """Take the run's lease if it is free or lapsed; None if another owner holds it."""
    expires = func.now() + timedelta(seconds=ttl_seconds)
    statement = (
        insert(run_leases)
        .values(run_id=run_id, owner=owner, token=1, expires_at=expires, sandbox=False)
        .on_conflict_do_update(
            index_elements=[run_leases.c.run_id],
            set_={"owner": owner, "token": run_leases.c.token + 1, "expires_at": expires, "sandbox": False},
            where=run_leases.c.expires_at < func.now(),
        )
        .returning(run_leases.c.token)
    )
    token = (await conn.execute(statement)).scalar()
    return None if token is None else Fence(owner=owner, token=int(token))


async def renew(conn: AsyncConnection, run_id: str, fence: Fence, ttl_seconds: float) -> bool:
    """Extend a held lease; False means it was lost (lapsed and taken by another owner)."""
    statement = (
        update(run_leases)
        .where(
            run_leases.c.run_id == run_id,
            run_leases.c.owner == fence.owner,
            run_leases.c.token == fence.token,
        )
        .values(expires_at=func.now() + timedelta(seconds=ttl_seconds))
        .returning(run_leases.c.token)
    )
    return (await conn.execute(statement)).scalar() is not None


async def holds(conn: AsyncConnection, run_id: str, fence: Fence) -> bool:
    """Whether the lease is still ours and unexpired: a read, so it costs no disk flush."""
    statement = select(run_leases.c.token).where(
        run_leases.c.run_id == run_id,
        run_leases.c.owner == fence.owner,
        run_leases.c.token == fence.token,
        run_leases.c.expires_at > func.now(),
    )
    return (await conn.execute(statement)).scalar() is not None


async def release(conn: AsyncConnection, run_id: str, fence: Fence) -> None:
    """Give the lease up at once so the next wake-up need not wait for it to lapse."""
    await conn.execute(
        update(run_leases)
        .where(
            run_leases.c.run_id == run_id,
            run_leases.c.owner == fence.owner,
            run_leases.c.token == fence.token,
        )
        .values(expires_at=func.now() - timedelta(seconds=1), sandbox=False)
    )


async def claim_sandbox(conn: AsyncConnection, run_id: str, fence: Fence) -> bool:
    """Mark the held lease as holding a sandbox; False means the lease was lost."""
    statement = (
        update(run_leases)
        .where(
            run_leases.c.run_id == run_id,
            run_leases.c.owner == fence.owner,
            run_leases.c.token == fence.token,
            run_leases.c.expires_at > func.now(),
        )
        .values(sandbox=True)
        .returning(run_leases.c.token)
    )
    return (await conn.execute(statement)).scalar() is not None
