"""Environments: create (version 1), read (the latest or one version), list, new versions, archive,
delete. A spec is checked against the deployment and its secrets must exist before it is stored
(environment_checks.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from services.core import audit, environments
from services.core.db.engine import autocommit
from services.core.environment_spec import EnvironmentSpec
from services.core.runs import decode_cursor, encode_cursor, new_id
from services.gateway.anthropic import environment_config
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.environment_checks import checked
from services.gateway.params import BODY_ERRORS, ID_PATTERN, Cursor, IdField, VersionQuery, errors
from services.gateway.responses import Deleted, Environment, EnvironmentPage, EnvironmentVersionList

router = APIRouter(prefix="/v1/environments", tags=["environments"])

EnvironmentId = Annotated[str, Path(pattern=ID_PATTERN, description="an environment id")]


class CreateEnvironment(EnvironmentSpec):
    id: IdField | None = None
    name: str = Field("environment", min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    metadata: dict[str, Annotated[str, Field(max_length=512)]] = Field(default_factory=dict, max_length=16)

    def spec(self) -> EnvironmentSpec:
        return EnvironmentSpec.model_validate(
            self.model_dump(exclude={"id", "name", "description", "metadata"})
        )


@router.post("", status_code=201, response_model=Environment, responses=errors(*BODY_ERRORS, 409))
async def create_environment(
    body: CreateEnvironment, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    spec = body.spec()
    async with services.engine.begin() as conn:
        stored = await checked(conn, services.settings, caller.tenant_id, spec)
        row = await environments.create(
            conn,
            caller.tenant_id,
            body.id or new_id("env"),
            name=body.name,
            description=body.description,
            config=environment_config.of_spec(spec),
            metadata=body.metadata,
            spec=stored,
        )
        await audit.record(conn, caller.actor, "environment.created", "environment", row.id, {"version": 1})
        row, version = await environments.get_version(conn, caller.tenant_id, row.id)
    return environments.environment_to_wire(row, version)


@router.post(
    "/{environment_id}/versions",
    status_code=201,
    response_model=Environment,
    responses=errors(*BODY_ERRORS, 404, 409),
)
async def new_environment_version(
    environment_id: EnvironmentId, body: EnvironmentSpec, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        stored = await checked(conn, services.settings, caller.tenant_id, body)
        row, version = await environments.add_version(
            conn, caller.tenant_id, environment_id, stored, environment_config.of_spec(body)
        )
        details = {"version": version.version}
        await audit.record(conn, caller.actor, "environment.versioned", "environment", row.id, details)
    return environments.environment_to_wire(row, version)


@router.get("", response_model=EnvironmentPage, responses=errors(422))
async def list_environments(
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: Cursor = None,
    include_archived: bool = False,
) -> dict[str, Any]:
    """Newest first; `next_cursor` is null on the last page (pass the same include_archived with it)."""
    after = decode_cursor(cursor) if cursor is not None else None
    async with autocommit(services.engine).connect() as conn:
        rows = await environments.page(
            conn, caller.tenant_id, include_archived=include_archived, after=after, limit=limit + 1
        )
    shown = rows[:limit]
    next_cursor = encode_cursor(shown[-1].created_at, shown[-1].id) if len(rows) > limit else None
    return {"data": [environments.environment_to_wire(row, row) for row in shown], "next_cursor": next_cursor}


@router.get("/{environment_id}", response_model=Environment, responses=errors(404, 422))
async def get_environment(
    environment_id: EnvironmentId, caller: Viewer, services: ServicesDep, version: VersionQuery = None
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        row, found = await environments.get_version(conn, caller.tenant_id, environment_id, version)
    return environments.environment_to_wire(row, found)


@router.get("/{environment_id}/versions", response_model=EnvironmentVersionList, responses=errors(404, 422))
async def list_environment_versions(
    environment_id: EnvironmentId, caller: Viewer, services: ServicesDep
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows = await environments.versions(conn, caller.tenant_id, environment_id)
    return {"data": [environments.version_to_wire(row) for row in rows]}


@router.post("/{environment_id}/archive", response_model=Environment, responses=errors(404, 422))
async def archive_environment(
    environment_id: EnvironmentId, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    """New runs and agents cannot name an archived environment; runs started in it keep it."""
    async with services.engine.begin() as conn:
        await environments.archive(conn, caller.tenant_id, environment_id)
        await audit.record(conn, caller.actor, "environment.archived", "environment", environment_id)
        row, version = await environments.get_version(conn, caller.tenant_id, environment_id)
    return environments.environment_to_wire(row, version)


@router.delete("/{environment_id}", response_model=Deleted, responses=errors(404, 409, 422))
async def delete_environment(
    environment_id: EnvironmentId, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    """Only an environment no unarchived run was started in can go (409 environment_in_use)."""
    async with services.engine.begin() as conn:
        await environments.delete(conn, caller.tenant_id, environment_id)
        await audit.record(conn, caller.actor, "environment.deleted", "environment", environment_id)
    return {"id": environment_id, "deleted": True}
