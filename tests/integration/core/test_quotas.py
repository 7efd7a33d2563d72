"""Tenant quotas on PostgreSQL: brains racing for a tenant's runs take no more leases than its
max_running_runs; the runs waiting for a slot are named oldest first, only as many as are free; and a
sandbox claim lives exactly as long as the lease that carries it."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from harness.waiting import eventually
from services.core import leases, run_quota, sandbox_quota, tenants
from services.core.db.engine import autocommit
from services.core.events import Fence
from services.core.runs import create_run
from services.core.sandbox_quota import Claim
from services.core.tenants import Quotas


async def new_tenant(engine: AsyncEngine, **quotas: int) -> str:
    tenant = f"t-{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        await tenants.create_tenant(conn, tenant, tenant, Quotas.model_validate(quotas))
    return tenant


async def new_run(engine: AsyncEngine, tenant: str) -> str:
    async with engine.begin() as conn:
        row, _ = await create_run(
            conn,
            tenant=tenant,
            spec={"model": "scripted"},
            agent_id=None,
            agent_version=None,
            user_input="hi",
            metadata={},
        )
    return str(row.id)


async def test_brains_racing_for_a_tenants_runs_take_no_more_than_its_quota(engine: AsyncEngine) -> None:
    tenant = await new_tenant(engine, max_running_runs=2)
    run_ids = [await new_run(engine, tenant) for _ in range(5)]

    taken = await asyncio.gather(
        *(run_quota.take(engine, run_id, f"brain-{n}", ttl_seconds=30) for n, run_id in enumerate(run_ids))
    )

    assert sum(t.fence is not None for t in taken) == 2
    assert sum(t.deferred for t in taken) == 3


async def test_a_tenant_without_a_quota_is_not_counted(engine: AsyncEngine) -> None:
    tenant = await new_tenant(engine)
    run_ids = [await new_run(engine, tenant) for _ in range(3)]

    taken = [await run_quota.take(engine, run_id, "brain-a", ttl_seconds=30) for run_id in run_ids]

    assert all(t.fence is not None and not t.deferred for t in taken)


async def test_the_runs_waiting_for_a_slot_are_the_oldest_and_only_as_many_as_are_free(
    engine: AsyncEngine,
) -> None:
    tenant = await new_tenant(engine, max_running_runs=2)
    first, second, third, fourth = [await new_run(engine, tenant) for _ in range(4)]
    held = await run_quota.take(engine, second, "brain-a", ttl_seconds=30)
    assert held.fence is not None

    async with autocommit(engine).connect() as conn:
        assert await run_quota.next_in_line(conn, tenant, 2) == [first]
        assert await run_quota.next_in_line(conn, tenant, 3) == [first, third]
        assert await run_quota.next_in_line(conn, tenant, 3, excluding=first) == [third, fourth]
        assert await run_quota.waiting_for_slots(conn, {tenant: 1}) == []
        await leases.release(conn, second, held.fence)
        assert await run_quota.waiting_for_slots(conn, {tenant: 1}) == [first]


async def claim(engine: AsyncEngine, run_id: str, fence: Fence, tenant: str, limit: int) -> Claim:
    async with engine.begin() as conn:
        return await sandbox_quota.claim(conn, run_id, fence, tenant, limit)


async def take(engine: AsyncEngine, run_id: str, owner: str, ttl_seconds: float = 30) -> Fence:
    async with autocommit(engine).connect() as conn:
        fence = await leases.acquire(conn, run_id, owner, ttl_seconds)
    assert fence is not None
    return fence


async def test_a_sandbox_claim_ends_with_its_lease(engine: AsyncEngine) -> None:
    tenant = await new_tenant(engine, max_sandboxes=1)
    holder, other = [await new_run(engine, tenant) for _ in range(2)]
    held = await take(engine, holder, "brain-a")
    waiting = await take(engine, other, "brain-b")

    assert await claim(engine, holder, held, tenant, 1) is Claim.TAKEN
    assert await claim(engine, holder, held, tenant, 1) is Claim.TAKEN
    assert await claim(engine, other, waiting, tenant, 1) is Claim.FULL
    async with autocommit(engine).connect() as conn:
        await leases.release(conn, holder, held)
    assert await claim(engine, other, waiting, tenant, 1) is Claim.TAKEN


async def test_a_dead_brains_claim_lapses_with_its_lease_and_a_new_owner_starts_without_one(
    engine: AsyncEngine,
) -> None:
    tenant = await new_tenant(engine, max_sandboxes=1)
    holder, other = [await new_run(engine, tenant) for _ in range(2)]
    dead = await take(engine, holder, "brain-dead", ttl_seconds=0.3)
    assert await claim(engine, holder, dead, tenant, 1) is Claim.TAKEN
    waiting = await take(engine, other, "brain-b")

    async def claimed() -> bool:
        return await claim(engine, other, waiting, tenant, 1) is Claim.TAKEN

    await eventually(claimed, timeout=5)
    successor = await take(engine, holder, "brain-c")
    assert await claim(engine, holder, successor, tenant, 1) is Claim.FULL
    assert await claim(engine, holder, dead, tenant, 2) is Claim.LOST
