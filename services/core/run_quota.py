"""A tenant's max_running_runs: a brain takes a run's lease only while the tenant's other runs that
brains hold are fewer than its quota.

The count and the lease are taken under the tenant's advisory lock, so brains on any machine agree.
A run turned away stays queued, exactly as it was (nothing is appended), and its wake-up is spent:
the brain that lets go of one of the tenant's runs wakes the oldest that wait (`next_in_line`), and
the sweeper does the same in case that brain died first, so a waiting run needs nothing kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core import leases
from services.core import runs as run_store
from services.core.db.engine import autocommit
from services.core.db.locks import lock_tenant
from services.core.events import Fence
from services.core.tenants import Quotas, quotas_of

LOCK_PURPOSE = "running-runs"


@dataclass(frozen=True)
class Taken:
    """What asking for a run's lease came to: `fence` once held; without it, another brain holds the
    lease, or (`deferred`) the tenant's runs are at their quota."""

    run_id: str
    fence: Fence | None
    tenant: str
    quotas: Quotas = field(default_factory=Quotas)
    deferred: bool = False


async def take(engine: AsyncEngine, run_id: str, owner: str, ttl_seconds: float) -> Taken:
    """Take the run's lease if it is free and its tenant has room for one more running run."""
    async with autocommit(engine).connect() as conn:
        tenant = await run_store.tenant_of(conn, run_id)
        if tenant is None:
            return Taken(run_id, None, "")
        quotas = await quotas_of(conn, tenant)
        if quotas.max_running_runs is None:
            return Taken(run_id, await leases.acquire(conn, run_id, owner, ttl_seconds), tenant, quotas)
    async with engine.begin() as conn:
        await lock_tenant(conn, LOCK_PURPOSE, tenant)
        if await run_store.running_count(conn, tenant, excluding=run_id) >= quotas.max_running_runs:
            return Taken(run_id, None, tenant, quotas, deferred=True)
        return Taken(run_id, await leases.acquire(conn, run_id, owner, ttl_seconds), tenant, quotas)


async def next_in_line(
    conn: AsyncConnection, tenant: str, limit: int, *, excluding: str | None = None
) -> list[str]:
    """The tenant's oldest runs waiting for a slot, as many as it has free slots now.

    `excluding` is the run whose brain just let go of it: a run that fails each time it is stepped
    must not wake itself over and over ahead of the others.
    """
    free = limit - await run_store.running_count(conn, tenant)
    if free <= 0:
        return []
    return await run_store.next_in_line(conn, tenant, free, excluding=excluding)


async def waiting_for_slots(conn: AsyncConnection, limits: dict[str, int]) -> list[str]:
    """For the sweeper: the runs to wake of every tenant in `limits` (tenant: max_running_runs)."""
    woken: list[str] = []
    for tenant in await run_store.with_unheld_runs(conn, limits):
        woken += await next_in_line(conn, tenant, limits[tenant])
    return woken
