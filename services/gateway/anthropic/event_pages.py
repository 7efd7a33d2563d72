"""Pages of a session's event list: the projection of the run's log read in batches, in either order,
filtered by type and time, with a token that names the last event shown (its seq and index)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import events as event_log
from services.core.errors import InvalidRequest
from services.gateway.anthropic import paging, projection

_BATCH = 200


@dataclass(frozen=True)
class EventQuery:
    limit: int
    descending: bool = False
    page: str | None = None
    types: Collection[str] = ()
    after: datetime | None = None  # exclusive
    since: datetime | None = None  # inclusive
    before: datetime | None = None  # exclusive
    until: datetime | None = None  # inclusive

    def keeps(self, item: dict[str, Any], at: datetime) -> bool:
        if self.types and item["type"] not in self.types:
            return False
        return not (
            (self.after is not None and at <= self.after)
            or (self.since is not None and at < self.since)
            or (self.before is not None and at >= self.before)
            or (self.until is not None and at > self.until)
        )


async def context_of(conn: AsyncConnection, run: Row[Any]) -> projection.Context:
    responses = await event_log.of_types(conn, run.id, (event_log.MODEL_RESPONSE,))
    return projection.Context.of(run.agent_spec, responses)


def _past(position: tuple[int, int] | None, seq: int, index: int, descending: bool) -> bool:
    """Whether (seq, index) comes after the token's position in the list's order."""
    if position is None:
        return True
    return (seq, index) < position if descending else (seq, index) > position


async def _batches(
    conn: AsyncConnection, run_id: str, start: int | None, descending: bool
) -> AsyncIterator[list[event_log.Event]]:
    """The log in batches from seq `start` (included), in the list's order."""
    while True:
        if descending:
            before = None if start is None else start + 1
            batch = await event_log.read_back(conn, run_id, before=before, limit=_BATCH)
        else:
            batch = await event_log.read(conn, run_id, after=max(0, (start or 1) - 1), limit=_BATCH)
        yield batch
        if len(batch) < _BATCH:
            return
        start = batch[-1].seq - 1 if descending else batch[-1].seq + 1


async def page(
    conn: AsyncConnection, run: Row[Any], query: EventQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the session's events and the token of the next (None: this is the last)."""
    order = "desc" if query.descending else "asc"
    position = None
    if query.page is not None:
        seq, index, token_order = paging.decode(f"events:{run.id}", query.page, int, int, str)
        if token_order != order:
            raise InvalidRequest("page was given out for the other order", code="invalid_page")
        position = (seq, index)
    context = await context_of(conn, run)
    found: list[dict[str, Any]] = []
    async for batch in _batches(conn, run.id, position[0] if position else None, query.descending):
        for event in batch:
            indexed = list(enumerate(projection.project(event, context)))
            for index, item in reversed(indexed) if query.descending else indexed:
                if _past(position, event.seq, index, query.descending) and query.keeps(item, event.at):
                    found.append(item)
        if len(found) > query.limit:
            break
    shown = found[: query.limit]
    if len(found) <= query.limit:
        return shown, None
    last = projection.position_of(shown[-1]["id"])
    assert last is not None, "every listed event has the id of its position"
    return shown, paging.encode(f"events:{run.id}", last[0], last[1], order)
