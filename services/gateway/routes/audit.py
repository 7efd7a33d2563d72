"""The tenant's audit log, for its admins: oldest first, paged by entry id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.core import audit
from services.core.db.engine import autocommit
from services.gateway.auth import Admin
from services.gateway.deps import ServicesDep
from services.gateway.params import BIGINT_MAX, ID_PATTERN, errors
from services.gateway.responses import AuditPage

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Name = Annotated[str | None, Query(pattern=r"^[a-z_.]{1,64}$")]
ObjectId = Annotated[str | None, Query(pattern=ID_PATTERN)]


@router.get("", response_model=AuditPage, responses=errors(401, 403, 422, 429))
async def read_audit(
    caller: Admin,
    services: ServicesDep,
    action: Name = None,
    object_type: Name = None,
    object_id: ObjectId = None,
    key_id: ObjectId = None,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="only entries after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    wanted = audit.AuditFilter(action, object_type, object_id, key_id, after, limit)
    async with autocommit(services.engine).connect() as conn:
        rows = await audit.read(conn, caller.tenant_id, wanted)
    next_after = rows[-1].id if len(rows) == limit else None
    return {"data": [audit.entry_to_wire(row) for row in rows], "next_after": next_after}
