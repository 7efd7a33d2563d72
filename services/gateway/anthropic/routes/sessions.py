"""Sessions: create (idle, with no events, unless initial events are given), retrieve, update title and
metadata, list, archive, delete. A session is a loopd run with the same id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import agent_store, audit, environments, schemas, sessions
from services.core import events as event_log
from services.core import runs as run_store
from services.core.agents import BudgetLimits
from services.core.db.engine import autocommit
from services.core.errors import Conflict, InvalidRequest
from services.core.settings import Settings
from services.gateway.anthropic import agent_overrides, budgets, event_pages, inputs, paging, wire
from services.gateway.anthropic.params import CreatedAfter, CreatedBefore, CreatedFrom, CreatedTo, Page
from services.gateway.anthropic.responses import answers
from services.gateway.anthropic.responses.sessions import Session, SessionDeleted, SessionPage
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import ID_PATTERN, RunId
from services.gateway.waiting import check_wall_time

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

SessionId = RunId


class SessionExtras(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: BudgetLimits | None = None


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | dict[str, Any]
    environment_id: str = Field(pattern=ID_PATTERN)
    title: str | None = Field(None, max_length=1000)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    budget: dict[str, Any] | None = None
    initial_events: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    resources: list[Any] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    x_loopd: SessionExtras | None = None


class UpdateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=1000)
    metadata: dict[str, str | None] | None = None
    budget: dict[str, Any] | None = None
    agent: dict[str, Any] | None = None
    vault_ids: list[str] | None = None


async def _agent_of(
    conn: AsyncConnection, tenant: str, agent: str | dict[str, Any]
) -> tuple[Row[Any], dict[str, Any]]:
    """The agent version a session runs, and the spec it runs it with (the version's, or the version's
    with the session's overrides)."""
    overrides = None
    if isinstance(agent, str):
        row = await agent_store.get_agent(conn, tenant, agent)
    elif agent.get("type") == "agent" and isinstance(agent.get("id"), str):
        version = agent.get("version")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise InvalidRequest("agent.version must be a positive integer", code="invalid_agent")
        row = await agent_store.get_agent(conn, tenant, agent["id"], version)
    elif agent.get("type") == "agent_with_overrides":
        overrides = agent_overrides.parse(agent)
        row = await agent_store.get_agent(conn, tenant, overrides.id, overrides.version)
    else:
        raise InvalidRequest(
            "agent is an agent id, {type: agent, id, version} or {type: agent_with_overrides, id, ...}",
            code="invalid_agent",
        )
    if row.archived_at is not None:
        raise Conflict(f"agent {row.id} is archived", code="agent_archived")
    spec = row.spec if overrides is None else agent_overrides.spec_with(row.spec, row.profile, overrides)
    return row, spec


def _budget(body: CreateSession, spec: dict[str, Any], settings: Settings, tenant: str) -> dict[str, Any]:
    budget: dict[str, Any] = {}
    if body.x_loopd is not None and body.x_loopd.budget is not None:
        check_wall_time(body.x_loopd.budget, settings.ceilings_for(tenant))
        budget.update(body.x_loopd.budget.model_dump(exclude_none=True))
    if body.budget is not None:
        budget["max_cost_usd"] = budgets.max_cost_of(body.budget, spec["model"], settings)
    return budget


@router.post("", **answers(Session, 404, 409, 413))
async def create_session(body: CreateSession, caller: Member, services: ServicesDep) -> dict[str, Any]:
    if body.resources or body.vault_ids:
        raise InvalidRequest("session resources and vaults are not served by loopd", code="not_served")
    tenant = caller.tenant_id
    async with services.engine.begin() as conn:
        agent, spec = await _agent_of(conn, tenant, body.agent)
        environment = await environments.get(conn, tenant, body.environment_id)
        if environment.archived_at is not None:
            raise InvalidRequest(f"environment {environment.id} is archived", code="environment_archived")
        run, appended = await run_store.open_run(
            conn,
            tenant=tenant,
            spec=spec,
            agent_id=agent.id,
            agent_version=agent.version,
            metadata=body.metadata,
            title=body.title,
            environment_id=environment.id,
            environment_version=environment.version,
            budget=_budget(body, spec, services.settings, tenant),
        )
        details = {"agent_id": agent.id, "agent_version": agent.version, "environment_id": environment.id}
        await audit.record(conn, caller.actor, "run.created", "run", run.id, details)
        if body.initial_events:
            if any(event.get("type") != "user.message" for event in body.initial_events):
                raise InvalidRequest("initial_events take user.message events only", code="not_served")
            context = await event_pages.context_of(conn, run)
            limits = schemas.SchemaLimits.of(services.settings)
            batch = await inputs.apply(conn, run, body.initial_events, context, caller.actor, limits)
            appended += batch.appended
        run = await run_store.get_run(conn, tenant, run.id)
    await services.journal.publish(appended)
    await services.bus.wake(run.id)
    return wire.session(run, agent)


async def session_view(conn: AsyncConnection, tenant: str, run: Row[Any]) -> dict[str, Any]:
    agent = None
    if run.agent_id is not None:
        agent = await agent_store.find_agent(conn, tenant, run.agent_id, run.agent_version)
    return wire.session(run, agent)


@router.get("/{session_id}", **answers(Session, 404))
async def retrieve_session(session_id: SessionId, caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id)
        return await session_view(conn, caller.tenant_id, run)


@router.post("/{session_id}", **answers(Session, 404, 409, 413))
async def update_session(
    session_id: SessionId, body: UpdateSession, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    given = body.model_fields_set
    if given & {"agent", "vault_ids"}:
        raise InvalidRequest(
            "only a session's title, metadata and budget can be changed here", code="not_served"
        )
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id, lock=True)
        metadata = None
        if body.metadata is not None:
            merged = {**(run.metadata or {}), **body.metadata}
            metadata = {k: v for k, v in merged.items() if v is not None}
            if len(metadata) > 16:
                raise InvalidRequest("metadata takes at most 16 keys", code="invalid_metadata")
        appended = await sessions.update(
            conn, run, title=body.title if "title" in given else None, metadata=metadata
        )
        if appended:
            await audit.record(conn, caller.actor, "run.updated", "run", run.id)
        if "budget" in given:
            run = await run_store.get_run(conn, caller.tenant_id, session_id)
            raised = await budgets.replace(conn, run, body.budget, services.settings)
            details = {"max_cost_usd": (raised[0].data or {}).get("max_cost_usd")}
            await audit.record(conn, caller.actor, "run.budget_raised", "run", run.id, details)
            appended += raised
        run = await run_store.get_run(conn, caller.tenant_id, session_id)
        view = await session_view(conn, caller.tenant_id, run)
    await services.journal.publish(appended)
    if any(event.type == event_log.RUN_STATUS for event in appended):
        await services.bus.wake(session_id)
    return view


Statuses = Annotated[list[sessions.Phase] | None, Query(alias="statuses[]")]


@router.get("", **answers(SessionPage))
async def list_sessions(
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=100),
    page: Page = None,
    order: str = Query("desc", pattern="^(asc|desc)$"),
    agent_id: str | None = Query(None, pattern=ID_PATTERN),
    agent_version: int | None = Query(None, ge=1),
    include_archived: bool = False,
    statuses: Statuses = None,
    created_at_gt: CreatedAfter = None,
    created_at_gte: CreatedFrom = None,
    created_at_lt: CreatedBefore = None,
    created_at_lte: CreatedTo = None,
) -> dict[str, Any]:
    where = sessions.SessionFilter(
        agent_id=agent_id,
        agent_version=agent_version,
        phases=tuple(statuses or ()),
        include_archived=include_archived,
        created_after=created_at_gt,
        created_from=created_at_gte,
        created_before=created_at_lt,
        created_to=created_at_lte,
        sessions_only=True,
    )
    kind = f"sessions:{order}"
    ascending = order == "asc"
    async with autocommit(services.engine).connect() as conn:

        async def fetch(after: paging.Position | None, reverse: bool, count: int) -> list[Row[Any]]:
            return await sessions.page(
                conn, caller.tenant_id, where, after=after, ascending=ascending != reverse, limit=count
            )

        found = await paging.two_way(kind, page, limit, fetch, lambda row: (row.created_at, row.id))
        # One query for the agent versions of the whole page, not one per session.
        versions = await agent_store.find_versions(
            conn, caller.tenant_id, [(row.agent_id, row.agent_version) for row in found.shown if row.agent_id]
        )
    data = [wire.session(row, versions.get((row.agent_id, row.agent_version or None))) for row in found.shown]
    return {"data": data, "next_page": found.next_page, "prev_page": found.prev_page}


@router.post("/{session_id}/archive", **answers(Session, 404, 409))
async def archive_session(session_id: SessionId, caller: Member, services: ServicesDep) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id, lock=True)
        appended = await sessions.archive(conn, run)
        if appended:
            await audit.record(conn, caller.actor, "run.archived", "run", run.id)
        run = await run_store.get_run(conn, caller.tenant_id, session_id)
        view = await session_view(conn, caller.tenant_id, run)
    await services.journal.publish(appended)
    return view


@router.delete("/{session_id}", **answers(SessionDeleted, 404, 409))
async def delete_session(session_id: SessionId, caller: Member, services: ServicesDep) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        await sessions.delete(conn, caller.tenant_id, session_id)
        await audit.record(conn, caller.actor, "run.deleted", "run", session_id)
    return {"type": "session_deleted", "id": session_id}
