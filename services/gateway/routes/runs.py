"""Runs: launch (idempotently), read, list, send a message, cancel."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.core import agent_store, audit, environments, sessions
from services.core import runs as run_store
from services.core.agents import AgentSpec, BudgetLimits, EnvironmentRef
from services.core.db.engine import autocommit
from services.core.errors import Conflict, IdempotencyKeyTaken, InvalidRequest
from services.core.schemas import SchemaLimits
from services.core.status import TERMINAL_STATUSES, RunStatus
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import BODY_ERRORS, Cursor, IdempotencyKey, IdField, RunId, Version, errors
from services.gateway.responses import Run, RunPage
from services.gateway.waiting import check_wall_time, receive_message

router = APIRouter(prefix="/v1/runs", tags=["runs"])

MAX_INPUT_CHARS = 200_000


class CreateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: IdField | None = None
    agent_version: Version | None = None
    agent: AgentSpec | None = None
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetLimits | None = None
    environment: EnvironmentRef | None = Field(
        None, description="the environment to run in, instead of the agent's own (docs/environments.md)"
    )

    @model_validator(mode="after")
    def _one_agent(self) -> CreateRun:
        if (self.agent_id is None) == (self.agent is None):
            raise ValueError("give exactly one of agent_id or agent (an inline spec)")
        return self


class SendMessage(BaseModel):
    """A user message; for a run waiting on `ask_user`, the answer (any JSON, checked against its schema)."""

    model_config = ConfigDict(extra="forbid")

    content: Any


class CancelRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("cancelled by user", max_length=2000)


@router.post("", status_code=201, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409))
async def create_run(
    body: CreateRun,
    caller: Member,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    tenant = caller.tenant_id
    if body.budget is not None:
        check_wall_time(body.budget, services.settings.ceilings_for(tenant))
    request_hash = hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    if idempotency_key is not None:
        async with autocommit(services.engine).connect() as conn:
            existing = await run_store.find_by_idempotency_key(conn, tenant, idempotency_key)
        if existing is not None:
            return _replayed(existing, request_hash, response)
    try:
        async with services.engine.begin() as conn:
            spec, agent_id, version = await _resolve_agent(conn, tenant, body)
            environment = await _resolve_environment(conn, tenant, body.environment, spec)
            row, appended = await run_store.create_run(
                conn,
                tenant=tenant,
                spec=spec,
                agent_id=agent_id,
                agent_version=version,
                user_input=body.input,
                metadata=body.metadata,
                budget=body.budget.model_dump(exclude_none=True) if body.budget else None,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                environment=environment,
            )
            details: dict[str, Any] = {"agent_id": agent_id, "agent_version": version}
            if environment is not None:
                details["environment"] = {"id": environment[0], "version": environment[1]}
            await audit.record(conn, caller.actor, "run.created", "run", row.id, details)
    except IdempotencyKeyTaken:
        # A concurrent request with the same Idempotency-Key won the race: answer with its run.
        async with autocommit(services.engine).connect() as conn:
            existing = await run_store.find_by_idempotency_key(conn, tenant, idempotency_key or "")
        if existing is None:
            raise
        return _replayed(existing, request_hash, response)
    await services.journal.publish(appended)
    await services.bus.wake(row.id)
    return run_store.run_to_wire(row)


def _replayed(existing: Any, request_hash: str, response: Response) -> dict[str, Any]:
    if existing.request_hash != request_hash:
        raise Conflict(
            "this Idempotency-Key was used with a different request body", code="idempotency_key_reused"
        )
    response.headers["Idempotent-Replayed"] = "true"
    return run_store.run_to_wire(existing)


async def _resolve_agent(
    conn: Any, tenant: str, body: CreateRun
) -> tuple[dict[str, Any], str | None, int | None]:
    if body.agent is not None:
        return body.agent.model_dump(mode="json"), None, None
    assert body.agent_id is not None
    row = await agent_store.get_agent(conn, tenant, body.agent_id, body.agent_version)
    return row.spec, row.id, row.version


async def _resolve_environment(
    conn: Any, tenant: str, override: EnvironmentRef | None, spec: dict[str, Any]
) -> tuple[str, int] | None:
    """The run's environment and version: the run's own, else its agent's; None for the default."""
    named = spec.get("environment")
    ref = override or (EnvironmentRef.model_validate(named) if named else None)
    if ref is None:
        return None
    return ref.id, await environments.usable(conn, tenant, ref.id, ref.version)


@router.get("", response_model=RunPage, responses=errors(422))
async def list_runs(
    caller: Viewer,
    services: ServicesDep,
    status: RunStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: Cursor = None,
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        rows, next_cursor = await run_store.list_runs(
            conn, caller.tenant_id, status=status, limit=limit, cursor=cursor
        )
    return {"data": [run_store.run_to_wire(row) for row in rows], "next_cursor": next_cursor}


@router.get("/{run_id}", response_model=Run, responses=errors(404, 422))
async def get_run(run_id: RunId, caller: Viewer, services: ServicesDep) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        return run_store.run_to_wire(await run_store.get_run(conn, caller.tenant_id, run_id))


@router.post(
    "/{run_id}/messages", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409)
)
async def send_message(
    run_id: RunId, body: SendMessage, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, run_id, lock=True)
        if run.status == RunStatus.CANCELLED:
            raise Conflict(f"run {run_id} was cancelled", code="run_cancelled")
        sessions.ensure_open(run)
        limits = SchemaLimits.of(services.settings)
        appended = await receive_message(conn, run, body.content, _message_text, limits, caller.actor)
        row = await run_store.get_run(conn, caller.tenant_id, run_id)
    await services.journal.publish(appended)
    await services.bus.wake(run_id)
    return run_store.run_to_wire(row)


def _message_text(content: Any) -> str:
    if not isinstance(content, str) or not content.strip() or len(content) > MAX_INPUT_CHARS:
        raise InvalidRequest(f"content must be a non-empty string of at most {MAX_INPUT_CHARS} characters")
    return content


@router.post(
    "/{run_id}/cancel", status_code=202, response_model=Run, responses=errors(*BODY_ERRORS, 404, 409)
)
async def cancel_run(
    run_id: RunId, caller: Member, services: ServicesDep, body: CancelRun | None = None
) -> dict[str, Any]:
    reason = (body or CancelRun()).reason
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, run_id, lock=True)
        if run.status in TERMINAL_STATUSES:
            raise Conflict(f"run {run_id} is already {run.status}", code="run_finished")
        cancelled = await run_store.cancel_tree(conn, run_id, reason)
        await audit.record(conn, caller.actor, "run.cancelled", "run", run_id, {"reason": reason})
        row = await run_store.get_run(conn, caller.tenant_id, run_id)
    for appended in cancelled.values():
        await services.journal.publish(appended)
    # Wake-ups let brains stop calls in flight and release the runs' sandboxes promptly.
    for cancelled_id in cancelled:
        await services.bus.wake(cancelled_id)
    return run_store.run_to_wire(row)
