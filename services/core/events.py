"""The append-only, gapless event log: every run is the sequence of its events, seq 1, 2, 3...

Appends lock the run's row, take the next seqs from `runs.last_seq` and insert in one transaction,
so seqs never collide and never skip. A brain's append also checks its fencing token in the same
transaction, so a brain that lost its lease cannot write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.db.schema import events, run_leases, runs
from services.core.errors import Conflict, LeaseLost, NotFound

RUN_CREATED = "run.created"
RUN_STATUS = "run.status"
USER_MESSAGE = "user.message"
MODEL_RESPONSE = "model.response"
TOOL_CALL = "tool.call"
TOOL_OUTPUT = "tool.output"
TOOL_RESULT = "tool.result"
SANDBOX_PROVISIONED = "sandbox.provisioned"
SANDBOX_LOST = "sandbox.lost"
ARTIFACT_CREATED = "artifact.created"
RUN_COMPLETED = "run.completed"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"
RUN_WAITING = "run.waiting"
RUN_FORKED = "run.forked"
TOOL_APPROVAL = "tool.approval"
USER_INTERRUPT = "user.interrupt"
BUDGET_RAISED = "budget.raised"
CHILD_STARTED = "child.started"

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Event:
    run_id: str
    seq: int
    type: str
    at: datetime
    data: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at": self.at.isoformat(), "data": self.data}


@dataclass(frozen=True)
class Fence:
    """A brain's claim on a run: its lease owner id and fencing token."""

    owner: str
    token: int


@dataclass(frozen=True)
class Append:
    """One atomic append: the events plus the run-row columns that change with them."""

    run_id: str
    events: tuple[NewEvent, ...]
    run_changes: dict[str, Any] = field(default_factory=dict)
    fence: Fence | None = None
    # Appending to a finished run is refused unless the append itself reopens it (a new message).
    allow_terminal: bool = False


async def append(conn: AsyncConnection, request: Append) -> list[Event]:
    """Append events in the caller's transaction; raises LeaseLost, NotFound or Conflict."""
    if request.fence is not None:
        await _check_fence(conn, request.run_id, request.fence)
    count = len(request.events)
    where = runs.c.id == request.run_id
    if not request.allow_terminal:
        where = where & runs.c.status.notin_(TERMINAL_STATUSES)
    values: dict[str, Any] = {
        "last_seq": runs.c.last_seq + count,
        "updated_at": func.now(),
        **request.run_changes,
    }
    row = (
        await conn.execute(
            update(runs).where(where).values(**values).returning(runs.c.last_seq, runs.c.updated_at)
        )
    ).first()
    if row is None:
        exists = (await conn.execute(select(runs.c.status).where(runs.c.id == request.run_id))).first()
        if exists is None:
            raise NotFound(f"run {request.run_id} not found", code="run_not_found")
        raise Conflict(f"run {request.run_id} is {exists.status}", code="run_finished")
    first_seq = row.last_seq - count + 1
    at = row.updated_at
    rows = [
        {"run_id": request.run_id, "seq": first_seq + i, "type": e.type, "at": at, "data": e.data}
        for i, e in enumerate(request.events)
    ]
    if rows:
        await conn.execute(events.insert(), rows)
    return [Event(request.run_id, r["seq"], r["type"], at, r["data"]) for r in rows]


async def _check_fence(conn: AsyncConnection, run_id: str, fence: Fence) -> None:
    # FOR UPDATE holds the lease row until commit, so a new owner cannot take over mid-append.
    token = (
        await conn.execute(
            select(run_leases.c.token)
            .where(
                run_leases.c.run_id == run_id,
                run_leases.c.owner == fence.owner,
                run_leases.c.token == fence.token,
            )
            .with_for_update()
        )
    ).scalar()
    if token is None:
        raise LeaseLost(f"fencing token {fence.token} for run {run_id} is stale")


async def read(
    conn: AsyncConnection, run_id: str, *, after: int = 0, limit: int | None = None
) -> list[Event]:
    query = select(events).where(events.c.run_id == run_id, events.c.seq > after).order_by(events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    result = await conn.execute(query)
    return [Event(r.run_id, r.seq, r.type, r.at, r.data) for r in result]
