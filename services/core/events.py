"""The append-only, gapless event log: every run is the sequence of its events, seq 1, 2, 3...

Appends lock the run's row, take the next seqs from `runs.last_seq` and insert in one transaction,
so seqs never collide and never skip. A brain's append also checks its fencing token in the same
transaction, so a brain that lost its lease cannot write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, column, exists, func, insert, literal, select, true, update
from sqlalchemy.dialects.postgresql import JSONB
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
    """Append events in the caller's transaction; raises LeaseLost, NotFound or Conflict.

    One statement does it all (lock the lease row and check the token, bump the run row, insert the
    events), so a step's commit costs a single round trip before COMMIT.
    """
    count = len(request.events)
    if count == 0:
        raise ValueError("an append needs at least one event")
    where = runs.c.id == request.run_id
    if not request.allow_terminal:
        where = where & runs.c.status.notin_(TERMINAL_STATUSES)
    if request.fence is not None:
        # FOR UPDATE holds the lease row until commit, so a new owner cannot take over mid-append.
        fence = (
            select(run_leases.c.token)
            .where(
                run_leases.c.run_id == request.run_id,
                run_leases.c.owner == request.fence.owner,
                run_leases.c.token == request.fence.token,
            )
            .with_for_update()
            .cte("fence")
        )
        where = where & exists(select(fence.c.token))
    values: dict[str, Any] = {
        "last_seq": runs.c.last_seq + count,
        "updated_at": func.now(),
        **request.run_changes,
    }
    bumped = (
        update(runs).where(where).values(**values).returning(runs.c.last_seq, runs.c.updated_at).cte("bumped")
    )
    payload = [{"type": e.type, "data": e.data} for e in request.events]
    new_rows = (
        func.jsonb_array_elements(bindparam("new_events", payload, type_=JSONB))
        .table_valued(column("value", JSONB), with_ordinality="ord")
        .render_derived(name="new_rows")
    )
    rows = select(
        literal(request.run_id).label("run_id"),
        (bumped.c.last_seq - count + new_rows.c.ord).label("seq"),
        new_rows.c.value["type"].astext.label("type"),
        bumped.c.updated_at.label("at"),
        new_rows.c.value["data"].label("data"),
    ).select_from(bumped.join(new_rows, true()))
    statement = (
        insert(events)
        .from_select(["run_id", "seq", "type", "at", "data"], rows)
        .returning(events.c.seq, events.c.type, events.c.at, events.c.data)
    )
    inserted = (await conn.execute(statement)).all()
    if not inserted:
        await _explain_refusal(conn, request)
    return [Event(request.run_id, r.seq, r.type, r.at, r.data) for r in sorted(inserted, key=lambda r: r.seq)]


async def _explain_refusal(conn: AsyncConnection, request: Append) -> None:
    """Nothing was appended: say why (the run is missing or finished, or the lease was lost)."""
    status = (await conn.execute(select(runs.c.status).where(runs.c.id == request.run_id))).scalar()
    if status is None:
        raise NotFound(f"run {request.run_id} not found", code="run_not_found")
    if status in TERMINAL_STATUSES and not request.allow_terminal:
        raise Conflict(f"run {request.run_id} is {status}", code="run_finished")
    if request.fence is not None:
        raise LeaseLost(f"fencing token {request.fence.token} for run {request.run_id} is stale")
    raise Conflict(f"nothing was appended to run {request.run_id}", code="append_refused")


async def read(
    conn: AsyncConnection, run_id: str, *, after: int = 0, limit: int | None = None
) -> list[Event]:
    query = select(events).where(events.c.run_id == run_id, events.c.seq > after).order_by(events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    result = await conn.execute(query)
    return [Event(r.run_id, r.seq, r.type, r.at, r.data) for r in result]
