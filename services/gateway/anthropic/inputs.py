"""What a client sends into a session, as loopd appends: a user message, a tool confirmation, a custom
tool's result, an interrupt. Each is checked against what the run waits for, as the native routes check
theirs, and echoed back with the id it has in the session's event list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import audit, payloads, schemas, sessions
from services.core import events as event_log
from services.core import runs as run_store
from services.core.audit import Actor
from services.core.errors import Conflict, InvalidRequest, NotFound
from services.core.status import RUNNABLE_STATUSES, RunStatus
from services.gateway.anthropic import projection
from services.gateway.waiting import answer_question, ensure_call, receive_message, settle_call

MAX_TEXT_CHARS = 200_000
_UNSERVED = ("user.define_outcome", "user.tool_result", "system.message")


@dataclass
class Batch:
    """The events a send appended, and each sent event as the session lists it."""

    appended: list[event_log.Event] = field(default_factory=list)
    echoes: list[dict[str, Any]] = field(default_factory=list)


def text_of(blocks: Any, what: str) -> str:
    """The text of a list of content blocks; other kinds of block are not served."""
    if not isinstance(blocks, list):
        raise InvalidRequest(f"{what} must be a list of content blocks", code="invalid_event")
    parts = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{what}: only text blocks are served, not {kind!r}", code="not_served")
        parts.append(block["text"])
    text = "\n".join(parts)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequest(f"{what} is longer than {MAX_TEXT_CHARS} characters", code="invalid_event")
    return text


def _call(context: projection.Context, event_id: Any, what: str) -> projection.Call:
    call = context.call_of_event(str(event_id)) if isinstance(event_id, str) else None
    if call is None:
        raise NotFound(f"{what} {event_id!r} names no tool use of this session", code="tool_use_not_found")
    return call


async def apply(
    conn: AsyncConnection,
    run: Row[Any],
    sent: list[dict[str, Any]],
    context: projection.Context,
    actor: Actor,
    limits: schemas.SchemaLimits,
) -> Batch:
    """Apply each sent event in turn to a run the caller has locked."""
    sessions.ensure_open(run)
    batch = Batch()
    for index, event in enumerate(sent):
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in _UNSERVED:
            raise InvalidRequest(f"{kind} events are not served by loopd", code="not_served")
        handler = _HANDLERS.get(str(kind))
        if handler is None:
            raise InvalidRequest(f"events[{index}]: unknown event type {kind!r}", code="invalid_event")
        appended = await handler(conn, run, event, context, actor, limits)
        echo = {**event, "processed_at": None}
        if appended:
            echo.update(id=projection.event_id(appended[0].seq, 0), processed_at=appended[0].at.isoformat())
        else:
            echo["id"] = f"sevt_{run.last_seq}_noop{index}"
        batch.appended += appended
        batch.echoes.append(echo)
        run = await run_store.get_run(conn, run.tenant_id, run.id)
    return batch


async def _message(
    conn: AsyncConnection,
    run: Row[Any],
    event: dict[str, Any],
    _: projection.Context,
    actor: Actor,
    limits: schemas.SchemaLimits,
) -> list[event_log.Event]:
    text = text_of(event.get("content"), "user.message content")
    if not text.strip():
        raise InvalidRequest("a user.message needs some text", code="invalid_event")
    if run.status == RunStatus.CANCELLED:
        raise Conflict(f"session {run.id} is terminated", code="run_cancelled")
    return await receive_message(conn, run, text, str, limits, actor)


async def _confirmation(
    conn: AsyncConnection,
    run: Row[Any],
    event: dict[str, Any],
    context: projection.Context,
    actor: Actor,
    _: schemas.SchemaLimits,
) -> list[event_log.Event]:
    call = _call(context, event.get("tool_use_id"), "tool_use_id")
    decision = event.get("result")
    if decision not in ("allow", "deny"):
        raise InvalidRequest("result must be allow or deny", code="invalid_event")
    message = event.get("deny_message") or ""
    if not isinstance(message, str):
        raise InvalidRequest("deny_message must be text", code="invalid_event")
    if message and decision != "deny":
        raise InvalidRequest("deny_message goes only with a deny", code="invalid_event")
    await ensure_call(conn, run.id, call.call_id)
    remaining = settle_call(run, call.call_id, "approval", "not_waiting_for_approval")
    approval = payloads.ToolApproval(call_id=call.call_id, decision=decision, message=message)
    appended = await run_store.settle_wait(conn, run.id, [event_log.NewEvent.of(approval)], remaining)
    action = "tool.approved" if decision == "allow" else "tool.denied"
    await audit.record(conn, actor, action, "run", run.id, {"call_id": call.call_id})
    return appended


async def _custom_result(
    conn: AsyncConnection,
    run: Row[Any],
    event: dict[str, Any],
    context: projection.Context,
    actor: Actor,
    limits: schemas.SchemaLimits,
) -> list[event_log.Event]:
    call = _call(context, event.get("custom_tool_use_id"), "custom_tool_use_id")
    text = text_of(event.get("content") or [], "user.custom_tool_result content")
    if not isinstance(event.get("is_error", False), bool | None):
        raise InvalidRequest("is_error must be true or false", code="invalid_event")
    ok = not event.get("is_error")
    waiting = run.waiting_for or {}
    if (
        run.status == RunStatus.WAITING
        and waiting.get("type") == "input"
        and waiting["call_id"] == call.call_id
    ):
        return await answer_question(conn, run, text, limits)
    tool_call = await ensure_call(conn, run.id, call.call_id)
    remaining = settle_call(run, call.call_id, "tool_result", "not_waiting_for_tool_result")
    result = payloads.ToolResult(
        call_id=call.call_id,
        name=tool_call["name"],
        ok=ok,
        output=text,
        error=None if ok else "client_tool_error",
    )
    appended = await run_store.settle_wait(
        conn, run.id, [event_log.NewEvent.of(result)], remaining, tool_calls=event_log.Increment(1)
    )
    await audit.record(
        conn, actor, "tool_result.submitted", "run", run.id, {"call_id": call.call_id, "ok": ok}
    )
    return appended


async def _interrupt(
    conn: AsyncConnection,
    run: Row[Any],
    _: dict[str, Any],
    __: projection.Context,
    actor: Actor,
    ___: schemas.SchemaLimits,
) -> list[event_log.Event]:
    # An idle session has nothing to interrupt.
    if run.status not in RUNNABLE_STATUSES:
        return []
    interrupt = event_log.NewEvent.of(payloads.UserInterrupt(message=None))
    appended = await event_log.append(conn, event_log.Append(run.id, (interrupt,)))
    await audit.record(conn, actor, "run.interrupted", "run", run.id)
    return appended


_HANDLERS = {
    "user.message": _message,
    "user.tool_confirmation": _confirmation,
    "user.custom_tool_result": _custom_result,
    "user.interrupt": _interrupt,
}
