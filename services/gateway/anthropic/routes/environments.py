"""Environments: create, retrieve, update, list, archive, delete. A config's networking is loopd's
network policy (environment_config.py): creating one writes version 1, and an update that changes
the networking writes the next version, which the sessions started after it get."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import audit, environments
from services.core.db.engine import autocommit
from services.core.environment_spec import EnvironmentSpec
from services.core.errors import InvalidRequest
from services.core.runs import new_id
from services.gateway.anthropic import environment_config, paging, wire
from services.gateway.anthropic.params import Page
from services.gateway.anthropic.responses import answers
from services.gateway.anthropic.responses.environments import (
    Environment,
    EnvironmentDeleted,
    EnvironmentPage,
)
from services.gateway.auth import Caller, Member, Viewer
from services.gateway.deps import GatewayServices, ServicesDep
from services.gateway.environment_checks import checked
from services.gateway.params import ID_PATTERN

router = APIRouter(prefix="/v1/environments", tags=["environments"])

EnvironmentId = Annotated[str, Path(pattern=ID_PATTERN, description="an environment id")]


class CreateEnvironment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=10_000)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    scope: str | None = None


class UpdateEnvironment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=10_000)
    metadata: dict[str, str | None] | None = None
    scope: str | None = None


def _check_scope(scope: str | None) -> None:
    if scope not in (None, "organization"):
        raise InvalidRequest("scope must be organization", code="invalid_scope")


@router.post("", **answers(Environment, 413))
async def create_environment(
    body: CreateEnvironment, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    _check_scope(body.scope)
    config = environment_config.resolve(body.config)
    spec = environment_config.spec_for(config, services.settings, EnvironmentSpec())
    async with services.engine.begin() as conn:
        stored = await checked(conn, services.settings, caller.tenant_id, spec)
        row = await environments.create(
            conn,
            caller.tenant_id,
            new_id("env"),
            name=body.name,
            description=body.description,
            config=config,
            metadata=body.metadata,
            spec=stored,
        )
        await audit.record(conn, caller.actor, "environment.created", "environment", row.id, {"version": 1})
    return wire.environment(row)


@router.get("/{environment_id}", **answers(Environment, 404))
async def retrieve_environment(
    environment_id: EnvironmentId, caller: Viewer, services: ServicesDep
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        return wire.environment(await environments.get(conn, caller.tenant_id, environment_id))


@router.post("/{environment_id}", **answers(Environment, 404, 409, 413))
async def update_environment(
    environment_id: EnvironmentId, body: UpdateEnvironment, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    _check_scope(body.scope)
    async with services.engine.begin() as conn:
        current = await environments.get(conn, caller.tenant_id, environment_id, lock=True)
        config = None
        if body.config is not None:
            config = environment_config.resolve(body.config, current.config)
            if config["networking"] != current.config["networking"]:
                await _new_version(conn, services, caller, current, config)
                config = None
        metadata = None
        if body.metadata is not None:
            merged = {**current.metadata, **body.metadata}
            metadata = {k: v for k, v in merged.items() if v}
        change = environments.EnvironmentChange(
            name=body.name,
            config=config,
            metadata=metadata,
            description=body.description,
            set_description="description" in body.model_fields_set,
        )
        row = await environments.update(conn, caller.tenant_id, environment_id, change)
        await audit.record(conn, caller.actor, "environment.updated", "environment", row.id)
    return wire.environment(row)


async def _new_version(
    conn: AsyncConnection,
    services: GatewayServices,
    caller: Caller,
    current: Row[Any],
    config: dict[str, Any],
) -> None:
    """The next version: the latest one's spec with the network `config` asks for, and `config` shown."""
    _, latest = await environments.get_version(conn, caller.tenant_id, current.id)
    spec = environment_config.spec_for(config, services.settings, EnvironmentSpec.model_validate(latest.spec))
    stored = await checked(conn, services.settings, caller.tenant_id, spec)
    _, version = await environments.add_version(conn, caller.tenant_id, current.id, stored, config)
    details = {"version": version.version}
    await audit.record(conn, caller.actor, "environment.versioned", "environment", current.id, details)


@router.get("", **answers(EnvironmentPage))
async def list_environments(
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=100),
    page: Page = None,
    include_archived: bool = False,
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows = await environments.page(
            conn,
            caller.tenant_id,
            include_archived=include_archived,
            after=paging.decode_at("environments", page),
            limit=limit + 1,
        )
    shown = rows[:limit]
    next_page = (
        paging.encode_at("environments", shown[-1].created_at, shown[-1].id) if len(rows) > limit else None
    )
    return {"data": [wire.environment(row) for row in shown], "next_page": next_page}


@router.post("/{environment_id}/archive", **answers(Environment, 404, 409))
async def archive_environment(
    environment_id: EnvironmentId, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        row = await environments.archive(conn, caller.tenant_id, environment_id)
        await audit.record(conn, caller.actor, "environment.archived", "environment", row.id)
    return wire.environment(row)


@router.delete("/{environment_id}", **answers(EnvironmentDeleted, 404, 409))
async def delete_environment(
    environment_id: EnvironmentId, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        await environments.delete(conn, caller.tenant_id, environment_id)
        await audit.record(conn, caller.actor, "environment.deleted", "environment", environment_id)
    return {"type": "environment_deleted", "id": environment_id}
