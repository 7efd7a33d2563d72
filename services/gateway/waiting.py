"""Unblocking runs that wait for people or callers: each answer is checked against what the run waits
for, appended with the run row locked, and the run is queued again once nothing is left to wait for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import audit, payloads, schemas
from services.core import events as event_log
from services.core import runs as run_store
from services.core.agents import BudgetLimits
from services.core.audit import Actor
from services.core.errors import Conflict, InvalidRequest, NotFound
from services.core.settings import Ceilings
from services.core.status import RunStatus
from services.core.tools import Tool


def waiting_for(run: Any, kind: str, code: str) -> dict[str, Any]:
    """What the run waits for, if it waits for `kind`; otherwise a 409 with `code`."""
    waiting = run.waiting_for or {}
    if run.status != RunStatus.WAITING or waiting.get("type") != kind:
        state = f"waiting for {waiting.get('type')}" if run.status == RunStatus.WAITING else run.status
        raise Conflict(f"run {run.id} is not waiting for {kind.replace('_', ' ')} (it is {state})", code=code)
    return dict(waiting)


def settle_call(run: Any, call_id: str, kind: str, code: str) -> dict[str, Any] | None:
    """What the run still waits for once `call_id` is settled (None: nothing left), or a 409."""
    waiting = waiting_for(run, kind, code)
    if call_id not in waiting["call_ids"]:
        raise Conflict(f"call {call_id} is not waiting for {kind.replace('_', ' ')}", code=code)
    left = [c for c in waiting["call_ids"] if c != call_id]
    calls = [c for c in waiting["calls"] if c["call_id"] != call_id]
    return {**waiting, "call_ids": left, "calls": calls} if left else None


async def ensure_call(conn: AsyncConnection, run_id: str, call_id: str) -> dict[str, Any]:
    """The tool.call event of `call_id` in this run, or a 404."""
    call = await event_log.find_tool_call(conn, run_id, call_id)
    if call is None:
        raise NotFound(f"run {run_id} has no tool call {call_id!r}", code="call_not_found")
    return call


async def answer_question(
    conn: AsyncConnection, run: Any, content: Any, limits: schemas.SchemaLimits
) -> list[event_log.Event]:
    """Settle an `ask_user` wait with `content`, checked against its schema without blocking the loop."""
    waiting = waiting_for(run, "input", "not_waiting_for_input")
    schema = waiting.get("schema")
    if schema:
        await schemas.validate_off_loop(content, schema, limits)
    elif not isinstance(content, str) or not content.strip():
        raise InvalidRequest("the answer must be a non-empty string", code="answer_invalid")
    output = content if isinstance(content, str) else json.dumps(content)
    result = payloads.ToolResult(
        call_id=waiting["call_id"], name=str(Tool.ASK_USER), ok=True, output=output, answer=content
    )
    return await run_store.settle_wait(
        conn, run.id, [event_log.NewEvent.of(result)], None, tool_calls=event_log.Increment(1)
    )


async def receive_message(
    conn: AsyncConnection,
    run: Any,
    content: Any,
    as_text: Callable[[Any], str],
    limits: schemas.SchemaLimits,
    actor: Actor,
) -> list[event_log.Event]:
    """A person's message to a run, audited: the answer to its question when it waits for one
    (checked against the question's schema), else a new user message (`as_text(content)`)."""
    waiting = run.waiting_for or {}
    if run.status == RunStatus.WAITING and waiting.get("type") == "input":
        appended = await answer_question(conn, run, content, limits)
        await audit.record(conn, actor, "run.answered", "run", run.id, {"call_id": waiting.get("call_id")})
        return appended
    appended = await run_store.add_user_message(conn, run, as_text(content))
    await audit.record(conn, actor, "run.messaged", "run", run.id)
    return appended


def check_wall_time(limits: BudgetLimits, ceilings: Ceilings) -> None:
    """A wall time past the tenant's ceiling could never be used: the ceiling ends the run first."""
    wanted = limits.max_wall_time_seconds
    if wanted is not None and wanted > ceilings.run_wall_time_seconds:
        raise InvalidRequest(
            f"max_wall_time_seconds {wanted:g} is past this tenant's ceiling of "
            f"{ceilings.run_wall_time_seconds:g}s",
            code="above_ceiling",
        )


async def requeue_quota_waits(conn: AsyncConnection, tenant_id: str) -> list[event_log.Event]:
    """Queue again every run of the tenant that waits for a monthly quota, once its quotas changed;
    each run's brain checks the new quotas before its next model call."""
    appended: list[event_log.Event] = []
    while waiting := await run_store.quota_waits(conn, tenant_id=tenant_id, limit=500):
        for run_id in waiting:
            appended += await run_store.requeue_quota_wait(conn, run_id)
    return appended
