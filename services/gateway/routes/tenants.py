"""Tenants: the deployment's root admins create them (with a first admin key), list them and set
their quotas; a tenant's own admins read their tenant. New quotas let the tenant's runs that wait for
a monthly quota go on (the brain checks them again)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.core import audit, tenants
from services.core.db.engine import autocommit
from services.core.errors import NotFound
from services.core.keys import Role
from services.core.tenants import TENANT_ID_PATTERN, Quotas
from services.gateway.auth import Admin, require_root
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, TenantId, errors
from services.gateway.responses import NewApiKey, NewTenant, Tenant, TenantList
from services.gateway.routes.keys import CreateKey, mint_key
from services.gateway.waiting import requeue_quota_waits

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class CreateTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=TENANT_ID_PATTERN, description="lower case letters, digits, - and _")
    name: str | None = Field(None, min_length=1, max_length=200)
    quotas: Quotas = Field(default_factory=Quotas)


class UpdateTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    quotas: Quotas | None = Field(None, description="replaces the tenant's quotas as a whole")


@router.post(
    "", status_code=201, response_model=NewTenant, responses=errors(*BODY_ERRORS, 401, 403, 409, 429)
)
async def create_tenant(body: CreateTenant, caller: Admin, services: ServicesDep) -> dict[str, Any]:
    require_root(caller)
    async with services.engine.begin() as conn:
        row = await tenants.create_tenant(conn, body.id, body.name or body.id, body.quotas)
        details = {"name": row.name, "quotas": row.quotas}
        await audit.record(conn, caller.actor, "tenant.created", "tenant", row.id, details)
        await audit.record(conn, caller.actor, "tenant.created", "tenant", row.id, details, tenant_id=row.id)
        first = CreateKey(name=f"{row.id} admin", role=Role.ADMIN)
        key = await mint_key(conn, caller, row.id, first)
    return {**tenants.tenant_to_wire(row), "admin_key": key}


@router.get("", response_model=TenantList, responses=errors(401, 403, 429))
async def list_tenants(caller: Admin, services: ServicesDep) -> dict[str, Any]:
    require_root(caller)
    async with autocommit(services.engine).connect() as conn:
        rows = await tenants.list_tenants(conn)
    return {"data": [tenants.tenant_to_wire(row) for row in rows]}


@router.get("/{tenant_id}", response_model=Tenant, responses=errors(401, 403, 404, 422, 429))
async def get_tenant(tenant_id: TenantId, caller: Admin, services: ServicesDep) -> dict[str, Any]:
    if not caller.root and tenant_id != caller.tenant_id:
        raise NotFound(f"tenant {tenant_id} not found", code="tenant_not_found")
    async with autocommit(services.engine).connect() as conn:
        return tenants.tenant_to_wire(await tenants.get_tenant(conn, tenant_id))


@router.patch("/{tenant_id}", response_model=Tenant, responses=errors(*BODY_ERRORS, 401, 403, 404, 429))
async def update_tenant(
    tenant_id: TenantId, body: UpdateTenant, caller: Admin, services: ServicesDep
) -> dict[str, Any]:
    require_root(caller)
    async with services.engine.begin() as conn:
        row = await tenants.update_tenant(conn, tenant_id, name=body.name, quotas=body.quotas)
        changes = body.model_dump(exclude_none=True)
        await audit.record(conn, caller.actor, "tenant.updated", "tenant", row.id, changes)
        await audit.record(conn, caller.actor, "tenant.updated", "tenant", row.id, changes, tenant_id=row.id)
        requeued = await requeue_quota_waits(conn, row.id) if body.quotas is not None else []
    await services.journal.publish(requeued)
    for run_id in dict.fromkeys(event.run_id for event in requeued):
        await services.bus.wake(run_id)
    return tenants.tenant_to_wire(row)


@router.post(
    "/{tenant_id}/keys",
    status_code=201,
    response_model=NewApiKey,
    responses=errors(*BODY_ERRORS, 401, 403, 404, 429),
)
async def create_tenant_key(
    tenant_id: TenantId, body: CreateKey, caller: Admin, services: ServicesDep
) -> dict[str, Any]:
    """A key of another tenant's, for root admins: a tenant that lost its admin keys gets a new one."""
    require_root(caller)
    async with services.engine.begin() as conn:
        await tenants.get_tenant(conn, tenant_id)
        return await mint_key(conn, caller, tenant_id, body)
