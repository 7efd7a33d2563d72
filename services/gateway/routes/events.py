"""A run's event log: paged reads, and a live SSE stream that resumes from Last-Event-ID and ends once
the key that opened it is revoked or expires."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette.sse import EventSourceResponse

from services.core import events as event_log
from services.core import runs as run_store
from services.core.db.engine import autocommit
from services.core.errors import InvalidRequest
from services.gateway.auth import Caller, Viewer
from services.gateway.deps import GatewayServices, ServicesDep
from services.gateway.live import follow
from services.gateway.params import AfterSeq, RunId, errors, seq_of
from services.gateway.responses import EventPage

router = APIRouter(prefix="/v1/runs/{run_id}/events", tags=["events"])


# Payload fields their writer left out stay out, as they are stored.
@router.get("", response_model=EventPage, response_model_exclude_unset=True, responses=errors(404, 422))
async def list_events(
    run_id: RunId,
    caller: Viewer,
    services: ServicesDep,
    after: AfterSeq = 0,
    limit: int = Query(500, ge=1, le=5000),
) -> dict[str, Any]:
    async with autocommit(services.engine).connect() as conn:
        await run_store.get_run(conn, caller.tenant_id, run_id)
        page = await event_log.read(conn, run_id, after=after, limit=limit)
    next_after = page[-1].seq if len(page) == limit else None
    return {"data": [event.to_wire() for event in page], "next_after": next_after}


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-sent events: each event of the log as JSON (`id` is its seq), live"
            " tool.output deltas without an id, and pings",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(404, 422),
    },
)
async def stream_events(
    run_id: RunId,
    caller: Viewer,
    services: ServicesDep,
    after: AfterSeq = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    start = after
    if last_event_id:
        seq = seq_of(last_event_id)
        if seq is None:
            raise InvalidRequest("Last-Event-ID must be an event seq", code="invalid_last_event_id")
        start = max(start, seq)
    async with autocommit(services.engine).connect() as conn:
        await run_store.get_run(conn, caller.tenant_id, run_id)
    return EventSourceResponse(_stream(services, caller, run_id, start), ping=15)


async def _stream(
    services: GatewayServices, caller: Caller, run_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    async for event in follow(services, caller, run_id, after):
        yield _sse(event)


def _sse(event: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"event": event["type"], "data": json.dumps(event, separators=(",", ":"))}
    if event.get("seq") is not None:
        message["id"] = str(event["seq"])
    return message
