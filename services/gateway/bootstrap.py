"""What a gateway makes sure of at start: the root tenant exists, and so does LOOPD_ADMIN_KEY.

Both are idempotent, so gateways starting side by side, and every restart, agree on the same rows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import audit, keys, tenants
from services.core.settings import Settings


async def ensure_root(settings: Settings, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await tenants.ensure_tenant(conn, settings.tenant)
        if settings.admin_key is None:
            return
        key = settings.admin_key.get_secret_value()
        added = await keys.ensure_key(
            conn, key, tenant_id=settings.tenant, name="LOOPD_ADMIN_KEY", role=keys.Role.ADMIN
        )
        if added:
            actor = audit.Actor(settings.tenant, None)
            await audit.record(
                conn, actor, "key.created", "key", keys.configured_key_id(key), {"source": "settings"}
            )
