"""A session's events: send a batch, list the history in pages, and stream what happens from now on
(a stream never replays: clients list the history and de-duplicate by id)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from services.core import events as event_log
from services.core import runs as run_store
from services.core import schemas
from services.core.db.engine import autocommit
from services.gateway.anthropic import event_pages, inputs, projection
from services.gateway.anthropic.params import CreatedAfter, CreatedBefore, CreatedFrom, CreatedTo, Page
from services.gateway.anthropic.responses import answers
from services.gateway.anthropic.responses.events import EventPage, SentEvents
from services.gateway.auth import Caller, Member, Viewer
from services.gateway.deps import GatewayServices, ServicesDep
from services.gateway.live import follow
from services.gateway.params import RunId

router = APIRouter(prefix="/v1/sessions/{session_id}/events", tags=["session events"])


class SendEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=100)


@router.post("", **answers(SentEvents, 404, 409, 413))
async def send_events(
    session_id: RunId, body: SendEvents, caller: Member, services: ServicesDep
) -> dict[str, Any]:
    async with services.engine.begin() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id, lock=True)
        context = await event_pages.context_of(conn, run)
        limits = schemas.SchemaLimits.of(services.settings)
        batch = await inputs.apply(conn, run, body.events, context, caller.actor, limits)
    await services.journal.publish(batch.appended)
    if batch.appended:
        await services.bus.wake(session_id)
    return {"data": batch.echoes}


Types = Annotated[list[str] | None, Query(alias="types[]", max_length=50)]


@router.get("", **answers(EventPage, 404))
async def list_events(
    session_id: RunId,
    caller: Viewer,
    services: ServicesDep,
    limit: int = Query(20, ge=1, le=1000),
    page: Page = None,
    order: str = Query("asc", pattern="^(asc|desc)$"),
    types: Types = None,
    created_at_gt: CreatedAfter = None,
    created_at_gte: CreatedFrom = None,
    created_at_lt: CreatedBefore = None,
    created_at_lte: CreatedTo = None,
) -> dict[str, Any]:
    query = event_pages.EventQuery(
        limit=limit,
        descending=order == "desc",
        page=page,
        types=frozenset(types or ()),
        after=created_at_gt,
        since=created_at_gte,
        before=created_at_lt,
        until=created_at_lte,
    )
    async with autocommit(services.engine).connect() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id)
        data, next_page = await event_pages.page(conn, run, query)
    return {"data": data, "next_page": next_page}


# loopd's model calls answer whole, so every event arrives complete: no event_start or event_delta
# previews follow, which the API allows (its deltas are best-effort).
EventDeltas = Annotated[
    list[Literal["agent.message", "agent.thinking"]] | None,
    Query(alias="event_deltas[]", max_length=2, description="accepted; loopd streams whole events only"),
]


@router.get("/stream", response_class=EventSourceResponse, **answers(None, 404))
async def stream_events(
    session_id: RunId,
    caller: Viewer,
    services: ServicesDep,
    event_deltas: EventDeltas = None,
) -> EventSourceResponse:
    async with autocommit(services.engine).connect() as conn:
        run = await run_store.get_run(conn, caller.tenant_id, session_id)
        context = await event_pages.context_of(conn, run)
    return EventSourceResponse(_stream(services, caller, run.id, run.last_seq, context), ping=15)


async def _stream(
    services: GatewayServices, caller: Caller, run_id: str, after: int, context: projection.Context
) -> AsyncIterator[dict[str, Any]]:
    async for message in follow(services, caller, run_id, after):
        if message.get("seq") is None:
            continue  # a live tool.output delta: the session's events carry whole results only
        event = event_log.Event(
            run_id, message["seq"], message["type"], datetime.fromisoformat(message["at"]), message["data"]
        )
        for item in projection.project(event, context):
            yield {"event": item["type"], "data": json.dumps(item, separators=(",", ":"))}
