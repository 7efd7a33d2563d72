"""The append-only, gapless event log: every run is the sequence of its events, seq 1, 2, 3...

Appends lock the run's row, take the next seqs from `runs.last_seq` and insert in one transaction,
so seqs never collide and never skip. A brain's append also checks its fencing token in the same
transaction, so a brain that lost its lease cannot write. What an append uses (tokens, cost, tool
calls, sandbox time) is added to the run's usage row for the day in the same statement (core/usage.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import func, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement

from services.core import payloads, usage
from services.core.db.schema import events, runs
from services.core.errors import Conflict, LeaseLost, NotFound, Unstorable
from services.core.status import TERMINAL_STATUSES
from services.core.text import jsonb_dumps, jsonb_text, storable

# Event types; each one's payload is the model of that name in services.core.payloads.
RUN_CREATED = payloads.RunCreated.TYPE
RUN_UPDATED = payloads.RunUpdated.TYPE
RUN_ARCHIVED = payloads.RunArchived.TYPE
RUN_STATUS = payloads.RunStatusChanged.TYPE
USER_MESSAGE = payloads.UserMessage.TYPE
MODEL_RESPONSE = payloads.ModelResponse.TYPE
TOOL_CALL = payloads.ToolCall.TYPE
TOOL_OUTPUT = payloads.ToolOutput.TYPE
TOOL_RESULT = payloads.ToolResult.TYPE
SANDBOX_PROVISIONED = payloads.SandboxProvisioned.TYPE
SANDBOX_LOST = payloads.SandboxLost.TYPE
EGRESS_ALLOWED = payloads.EgressAllowed.TYPE
EGRESS_DENIED = payloads.EgressDenied.TYPE
ARTIFACT_CREATED = payloads.ArtifactCreated.TYPE
RUN_COMPLETED = payloads.RunCompleted.TYPE
RUN_FAILED = payloads.RunFailed.TYPE
RUN_CANCELLED = payloads.RunCancelled.TYPE
RUN_WAITING = payloads.RunWaiting.TYPE
RUN_FORKED = payloads.RunForked.TYPE
TOOL_APPROVAL = payloads.ToolApproval.TYPE
USER_INTERRUPT = payloads.UserInterrupt.TYPE
BUDGET_RAISED = payloads.BudgetRaised.TYPE
CHILD_STARTED = payloads.ChildStarted.TYPE


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, payload: payloads.Payload) -> NewEvent:
        """The event that stores a typed payload."""
        return cls(payload.TYPE, payload.dump())


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
class Increment:
    """A run-row counter that grows by `amount` with this append (steps, tokens, cost)."""

    amount: float


class _Now:
    def __repr__(self) -> str:
        return "NOW"


NOW = _Now()
"""A run-row change to the committing transaction's clock."""

_JSONB_COLUMNS = frozenset(c.name for c in runs.c if isinstance(c.type, JSONB))


@dataclass(frozen=True)
class Append:
    """One atomic append: the events plus the run-row columns that change with them (each a value,
    an Increment or NOW)."""

    run_id: str
    events: tuple[NewEvent, ...]
    run_changes: dict[str, Any] = field(default_factory=dict)
    fence: Fence | None = None
    # Appending to a finished run is refused unless the append itself reopens it (a new message).
    allow_terminal: bool = False


async def append(conn: AsyncConnection, request: Append) -> list[Event]:
    """Append events in the caller's transaction; raises LeaseLost, NotFound or Conflict.

    One prepared statement does it all (lock the lease row and check the token, bump the run row,
    add to the run's usage for the day, insert the events), so on an autocommit connection a step's
    commit is a single round trip.
    The statement goes to the driver directly: building and compiling it through SQLAlchemy cost
    more than PostgreSQL spends executing it.
    """
    count = len(request.events)
    if count == 0:
        raise ValueError("an append needs at least one event")
    shape = tuple((name, _change_kind(value)) for name, value in sorted(request.run_changes.items()))
    # What is stored is what the caller gets back, so a brain's folded state matches a rebuild from the log.
    try:
        dumped, stored = jsonb_text([{"type": e.type, "data": e.data} for e in request.events])
    except ValueError as error:  # e.g. an integer too long to write as JSON
        raise Unstorable(f"the events for run {request.run_id} cannot be written as JSON: {error}") from None
    params: dict[str, Any] = {
        "run_id": request.run_id,
        "count": count,
        "new_events": Jsonb(stored, dumps=lambda _: dumped),
    }
    increments: dict[str, float] = {}
    for name, value in request.run_changes.items():
        if isinstance(value, Increment):
            params[f"set_{name}"] = increments[name] = value.amount
        elif value is not NOW:
            params[f"set_{name}"] = _column_value(name, value)
    used = usage.measure(increments, [(e.type, e.data) for e in request.events])
    for name, amount in used.items():
        params[f"use_{name}"] = amount
    if request.fence is not None:
        params["owner"], params["token"] = request.fence.owner, request.fence.token
    statement = _append_statement(
        shape, tuple(sorted(used)), request.fence is not None, request.allow_terminal
    )
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        cursor = await driver.execute(statement, params, prepare=True)
    except (psycopg.DataError, UnicodeEncodeError) as error:
        # What is left after making text storable (a counter past its column's range, say) fails the
        # same way on every retry: a distinct error, so callers end the step instead of retrying it.
        why = _reason(error)
        raise Unstorable(f"the database refused the append to run {request.run_id}: {why}") from None
    inserted = sorted(await cursor.fetchall())
    if not inserted:
        await _explain_refusal(conn, request)
    return [
        Event(request.run_id, seq, new["type"], at, new["data"])
        for (seq, at), new in zip(inserted, stored, strict=True)
    ]


def _column_value(name: str, value: Any) -> Any:
    if name in _JSONB_COLUMNS and value is not None:
        return Jsonb(value, dumps=jsonb_dumps)
    return storable(value) if isinstance(value, str) else value


def _reason(error: Exception) -> str:
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        return storable(error.diag.message_primary)
    return storable(str(error))


def _change_kind(value: Any) -> str:
    if isinstance(value, Increment):
        return "add"
    if value is NOW:
        return "now"
    if isinstance(value, ClauseElement):
        raise TypeError("run changes are values, Increment or NOW, not SQL expressions")
    return "set"


@functools.lru_cache(maxsize=256)
def _append_statement(
    shape: tuple[tuple[str, str], ...], used: tuple[str, ...], fenced: bool, allow_terminal: bool
) -> str:
    """The append's SQL for one shape of run changes and usage; psycopg prepares it once per connection."""
    assignments = ["last_seq = last_seq + %(count)s", "updated_at = now()"]
    for name, kind in shape:
        if name not in runs.c or name in ("id", "last_seq", "updated_at"):
            raise ValueError(f"runs.{name} cannot change with an append")
        assignments.append(
            {
                "set": f"{name} = %(set_{name})s",
                "add": f"{name} = {name} + %(set_{name})s",
                "now": f"{name} = now()",
            }[kind]
        )
    conditions = ["id = %(run_id)s"]
    if not allow_terminal:
        conditions.append("status NOT IN (" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")")
    fence = ""
    if fenced:
        # FOR UPDATE holds the lease row until commit, so a new owner cannot take over mid-append.
        fence = (
            "fence AS (SELECT token FROM run_leases WHERE run_id = %(run_id)s"
            " AND owner = %(owner)s AND token = %(token)s FOR UPDATE), "
        )
        conditions.append("EXISTS (SELECT 1 FROM fence)")
    # Data-modifying CTEs run whether or not the main statement reads them; this one reads `bumped`,
    # so usage is only counted when the run row (fence and status checked) was.
    counted = f", {usage.upsert_cte(used, 'bumped')}" if used else ""
    return (
        f"WITH {fence}bumped AS (UPDATE runs SET {', '.join(assignments)}"
        f" WHERE {' AND '.join(conditions)} RETURNING id, tenant_id, agent_id, last_seq, updated_at)"
        f"{counted} "
        "INSERT INTO events (run_id, seq, type, at, data) "
        "SELECT %(run_id)s, bumped.last_seq - %(count)s + new_rows.ord, new_rows.value ->> 'type',"
        " bumped.updated_at, new_rows.value -> 'data' "
        "FROM bumped CROSS JOIN jsonb_array_elements(%(new_events)s) WITH ORDINALITY AS new_rows(value, ord) "
        "RETURNING seq, at"
    )


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


async def read_back(conn: AsyncConnection, run_id: str, *, before: int | None, limit: int) -> list[Event]:
    """Events before seq `before` (the whole log when None), newest first."""
    query = select(events).where(events.c.run_id == run_id)
    if before is not None:
        query = query.where(events.c.seq < before)
    result = await conn.execute(query.order_by(events.c.seq.desc()).limit(limit))
    return [Event(r.run_id, r.seq, r.type, r.at, r.data) for r in result]


async def of_types(
    conn: AsyncConnection, run_id: str, event_types: tuple[str, ...], *, upto: int | None = None
) -> list[Event]:
    """The run's events of these types (up to seq `upto` when given), oldest first."""
    query = select(events).where(events.c.run_id == run_id, events.c.type.in_(event_types))
    if upto is not None:
        query = query.where(events.c.seq <= upto)
    result = await conn.execute(query.order_by(events.c.seq))
    return [Event(r.run_id, r.seq, r.type, r.at, r.data) for r in result]


async def data_of_type(conn: AsyncConnection, run_id: str, event_type: str) -> list[dict[str, Any]]:
    """The payloads of one type of event in a run, oldest first."""
    query = (
        select(events.c.data)
        .where(events.c.run_id == run_id, events.c.type == event_type)
        .order_by(events.c.seq)
    )
    return [row.data for row in await conn.execute(query)]


async def first_of_types(
    conn: AsyncConnection, run_id: str, event_types: tuple[str, ...], *, after: int
) -> str | None:
    """The type of some event of these types appended after `after`, or None."""
    query = (
        select(events.c.type)
        .where(events.c.run_id == run_id, events.c.seq > after, events.c.type.in_(event_types))
        .limit(1)
    )
    return (await conn.execute(query)).scalar()


async def find_tool_call(conn: AsyncConnection, run_id: str, call_id: str) -> dict[str, Any] | None:
    """The payload of the run's tool.call event for `call_id`, or None."""
    query = select(events.c.data).where(
        events.c.run_id == run_id, events.c.type == TOOL_CALL, events.c.data["call_id"].astext == call_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else dict(row.data)


async def call_pending_at(conn: AsyncConnection, run_id: str, call_id: str, at_seq: int) -> bool:
    """Whether `call_id` was called and still owed its result at `at_seq`."""
    query = select(events.c.type).where(
        events.c.run_id == run_id,
        events.c.seq <= at_seq,
        events.c.data["call_id"].astext == call_id,
        events.c.type.in_((TOOL_CALL, TOOL_RESULT)),
    )
    kinds = (await conn.execute(query)).scalars().all()
    return TOOL_CALL in kinds and TOOL_RESULT not in kinds


async def counters_upto(conn: AsyncConnection, run_id: str, at_seq: int) -> dict[str, int]:
    """The run-row counters (steps, tokens, tool calls) that the log up to `at_seq` adds up to."""
    upto = (events.c.run_id == run_id) & (events.c.seq <= at_seq)
    responses = select(events.c.data).where(upto, events.c.type == MODEL_RESPONSE).subquery()
    usage = responses.c.data["usage"]
    steps, input_tokens, output_tokens = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(usage["input_tokens"].as_integer()), 0),
                func.coalesce(func.sum(usage["output_tokens"].as_integer()), 0),
            ).select_from(responses)
        )
    ).one()
    results = (await conn.execute(select(func.count()).where(upto, events.c.type == TOOL_RESULT))).scalar()
    return {
        "step": steps,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tool_calls": results or 0,
    }


# Every string value anywhere in a payload that looks like a sha256: whatever field names a blob
# (a snapshot, an output, an artifact, or one added later) keeps it from the collector.
_BLOB_REFERENCES = text(
    "SELECT DISTINCT found #>> '{}' FROM events, jsonb_path_query(events.data, "
    '\'strict $.** ? (@.type() == "string" && @ like_regex "^[0-9a-f]{64}$")\') AS found'
)


async def blob_references(conn: AsyncConnection) -> set[str]:
    """Every artifact-store blob some event of any run names."""
    return {str(value) for value in (await conn.execute(_BLOB_REFERENCES)).scalars()}


async def copy_prefix(conn: AsyncConnection, source_run_id: str, target_run_id: str, at_seq: int) -> None:
    """Copy a run's events up to `at_seq`, seqs and times unchanged, into another run's empty log.

    The target's row already counts them (`last_seq = at_seq`), so this is not an append.
    """
    copied = select(literal(target_run_id), events.c.seq, events.c.type, events.c.at, events.c.data).where(
        events.c.run_id == source_run_id, events.c.seq <= at_seq
    )
    await conn.execute(events.insert().from_select(["run_id", "seq", "type", "at", "data"], copied))
