"""API keys of the caller's tenant: mint (the key is shown once), list, revoke. Admins only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import audit, keys
from services.core.db.engine import autocommit
from services.core.errors import InvalidRequest
from services.core.keys import Role
from services.gateway.auth import Admin, Caller
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, KeyIdPath, errors
from services.gateway.responses import ApiKey, ApiKeyList, NewApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. ci-nightly")
    role: Role = Role.MEMBER
    expires_at: AwareDatetime | None = Field(None, description="when the key stops working (ISO 8601)")


async def mint_key(conn: AsyncConnection, caller: Caller, tenant_id: str, body: CreateKey) -> dict[str, Any]:
    """A new key of `tenant_id`, audited in that tenant, as the one response that shows it."""
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise InvalidRequest("expires_at must be in the future", code="invalid_expiry")
    row, key = await keys.create_key(
        conn,
        tenant_id=tenant_id,
        name=body.name,
        role=body.role,
        created_by=caller.key_id,
        expires_at=body.expires_at,
    )
    details = {"name": body.name, "role": body.role.value, "prefix": row.prefix}
    await audit.record(conn, caller.actor, "key.created", "key", row.id, details, tenant_id=tenant_id)
    return {**keys.key_to_wire(row), "key": key}


@router.post("", status_code=201, response_model=NewApiKey, responses=errors(*BODY_ERRORS, 401, 403, 429))
async def create_key(body: CreateKey, caller: Admin, services: ServicesDep) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        return await mint_key(conn, caller, caller.tenant_id, body)


@router.get("", response_model=ApiKeyList, responses=errors(401, 403, 429))
async def list_keys(caller: Admin, services: ServicesDep) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows = await keys.list_keys(conn, caller.tenant_id)
    return {"data": [keys.key_to_wire(row) for row in rows]}


@router.delete("/{key_id}", response_model=ApiKey, responses=errors(401, 403, 404, 422, 429))
async def revoke_key(key_id: KeyIdPath, caller: Admin, services: ServicesDep) -> dict[str, Any]:
    """Revoked keys are refused from the next request on, by every gateway; revoking twice is a no-op."""
    async with services.engine.begin() as conn:
        row = await keys.revoke(conn, caller.tenant_id, key_id)
        await audit.record(conn, caller.actor, "key.revoked", "key", row.id, {"prefix": row.prefix})
    return keys.key_to_wire(row)
