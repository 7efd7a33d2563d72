"""A tenant's max_sandboxes: the most of its runs that hold a sandbox at once, across every hands worker.

A run holds a sandbox, for the quota, from its brain's claim before the first tool call of a drive
until its brain lets go of the run's lease (the run ended, waits, or has nothing to do). The claim is
a flag on the lease, so it lapses with the lease: a brain that dies frees its claims within
LOOPD_LEASE_SECONDS, and a hands worker that dies frees nothing it could leak, because a run keeps
one claim whichever worker its sandbox is on. Claims are counted and taken under the tenant's
advisory lock, so brains on any machine agree.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import leases
from services.core import runs as run_store
from services.core.db.locks import lock_tenant
from services.core.events import Fence

LOCK_PURPOSE = "sandboxes"


class Claim(StrEnum):
    TAKEN = "taken"
    FULL = "full"  # the tenant's other runs hold every sandbox of its quota
    LOST = "lost"  # the run's lease is no longer this brain's


async def claim(conn: AsyncConnection, run_id: str, fence: Fence, tenant: str, limit: int) -> Claim:
    """Claim one of the tenant's `limit` sandboxes for the run, in the caller's transaction."""
    await lock_tenant(conn, LOCK_PURPOSE, tenant)
    if await run_store.sandbox_holders(conn, tenant, excluding=run_id) >= limit:
        return Claim.FULL
    return Claim.TAKEN if await leases.claim_sandbox(conn, run_id, fence) else Claim.LOST


def freed_channel(tenant: str) -> str:
    """Where a brain says that a run of the tenant let go of its claim, for the runs waiting for one."""
    return f"sandboxes-freed:{tenant}"
