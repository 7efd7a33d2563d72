"""loopd's time travel under the prefix, in the API's shapes: fork a session at one of its event ids (the
fork is a new session), and diff two sessions as the session events after the point they diverge.

These are extension routes the SDK does not know; they live under `x_loopd` in the path so that no
route of the API can ever collide with them. They reuse the core fork of the native API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.core import agent_store, audit
from services.core import events as event_log
from services.core import runs as run_store
from services.core.db.engine import autocommit
from services.core.errors import InvalidRequest, NotFound
from services.gateway.anthropic import event_pages, projection, wire
from services.gateway.anthropic.responses import answers
from services.gateway.anthropic.responses.events import SessionDiff
from services.gateway.anthropic.responses.sessions import Session
from services.gateway.auth import Member, Viewer
from services.gateway.deps import ServicesDep
from services.gateway.params import RunId

router = APIRouter(prefix="/v1/sessions", tags=["loopd extensions"])

_EVENT_ID = r"^sevt_[0-9]{1,19}_[0-9]{1,4}$"


class ToolResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_use_id: str = Field(pattern=_EVENT_ID)
    output: str = Field(max_length=1_000_000)


class ForkOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=200)
    system: str | None = Field(None, max_length=1_000_000)
    tool_result: ToolResult | None = None


class Fork(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern=_EVENT_ID)
    overrides: ForkOverrides = Field(default_factory=ForkOverrides)


@router.post("/{session_id}/x_loopd/fork", **answers(Session, 404, 409, 413))
async def fork_session(
    session_id: RunId, body: Fork, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    """A new session whose history is this one's up to and including the loopd event behind `event_id`
    (every session event of that loopd event comes along: the log forks between loopd events)."""
    position = projection.position_of(body.event_id)
    assert position is not None, "the pattern admits only event ids"
    seq, index = position
    overrides = body.overrides
    async with services.engine.begin() as conn:
        parent = await run_store.get_run(conn, caller.tenant_id, session_id)
        context = await event_pages.context_of(conn, parent)
        at = await event_log.read(conn, parent.id, after=seq - 1, limit=1)
        if not at or at[0].seq != seq or index >= len(projection.project(at[0], context)):
            raise NotFound(f"session {session_id} has no event {body.event_id}", code="event_not_found")
        if seq < 2:
            raise InvalidRequest("a session cannot fork before its first event", code="invalid_event_id")
        tool_result = None
        if overrides.tool_result is not None:
            call = context.call_of_event(overrides.tool_result.tool_use_id)
            if call is None:
                raise InvalidRequest(
                    f"{overrides.tool_result.tool_use_id} is not a tool use of session {session_id}",
                    code="call_not_pending",
                )
            tool_result = (call.call_id, overrides.tool_result.output)
        row, appended = await run_store.fork_run(
            conn,
            parent,
            seq,
            overrides=overrides.model_dump(exclude_none=True, exclude={"tool_result"}),
            tool_result=tool_result,
        )
        details = {"from_run": session_id, "at_seq": seq, "at_event": body.event_id}
        await audit.record(conn, caller.actor, "run.forked", "run", row.id, details)
        agent = None
        if row.agent_id is not None:
            agent = await agent_store.find_agent(conn, caller.tenant_id, row.agent_id, row.agent_version)
    await services.journal.publish(appended)
    await services.bus.wake(row.id)
    view = wire.session(row, agent)
    view["x_loopd"]["forked_from"] = {**(row.forked_from or {}), "event_id": body.event_id}
    return view


@router.get("/{session_a}/x_loopd/diff/{session_b}", **answers(SessionDiff, 404))
async def diff_sessions(
    session_a: RunId,
    session_b: RunId,
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(200, ge=1, le=5000),
) -> dict[str, Any]:
    """Where two sessions' logs part (the loopd seq, as the native diff finds it) and each one's session
    events from there on, at most `limit` of each."""
    async with autocommit(services.engine).connect() as conn:
        runs = [await run_store.get_run(conn, caller.tenant_id, run_id) for run_id in (session_a, session_b)]
        logs = [await event_log.read(conn, run.id) for run in runs]
        contexts = [await event_pages.context_of(conn, run) for run in runs]
    a, b = logs
    diverges_at = next(
        (x.seq for x, y in zip(a, b, strict=False) if (x.type, x.data) != (y.type, y.data)),
        None if len(a) == len(b) else min(len(a), len(b)) + 1,
    )
    after = diverges_at or (len(a) + 1)
    sides = [
        projection.project_all([e for e in log if e.seq >= after], context)[:limit]
        for log, context in zip(logs, contexts, strict=True)
    ]
    return {
        "type": "session_diff",
        "a": {"session_id": session_a, "events": sides[0]},
        "b": {"session_id": session_b, "events": sides[1]},
        "x_loopd": {"diverges_at_seq": diverges_at},
    }
