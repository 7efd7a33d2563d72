"""Runs as Managed Agents sessions: their phase (running, idle, terminated), title and metadata changes,
archiving, deletion and filtered listing.

Changes are appends (run.updated, run.archived) that set the run-row columns with them, so the log
stays the truth; runs.py makes the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from services.core import events as event_log
from services.core import payloads
from services.core.db.schema import runs
from services.core.errors import Conflict
from services.core.runs import get_run
from services.core.status import RunStatus


class Phase(StrEnum):
    """What a client that only asks "is it working, waiting for me, or over?" sees of a run."""

    RUNNING = "running"
    IDLE = "idle"
    TERMINATED = "terminated"


# A run waiting on its own children is still at work; every other wait is the caller's turn.
_BUSY_WAITS = frozenset({"child"})


def phase_of(status: str, waiting_for: Mapping[str, Any] | None) -> Phase:
    if status == RunStatus.CANCELLED:
        return Phase.TERMINATED
    if status in (RunStatus.QUEUED, RunStatus.RUNNING):
        return Phase.RUNNING
    if status == RunStatus.WAITING and (waiting_for or {}).get("type") in _BUSY_WAITS:
        return Phase.RUNNING
    return Phase.IDLE


def _phase_clause(phase: Phase) -> ColumnElement[bool]:
    busy_wait = and_(
        runs.c.status == RunStatus.WAITING, runs.c.waiting_for["type"].astext.in_(sorted(_BUSY_WAITS))
    )
    if phase is Phase.TERMINATED:
        return runs.c.status == RunStatus.CANCELLED
    if phase is Phase.RUNNING:
        return or_(runs.c.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)), busy_wait)
    return or_(
        runs.c.status.in_((RunStatus.COMPLETED, RunStatus.FAILED)),
        and_(runs.c.status == RunStatus.WAITING, ~busy_wait),
    )


def ensure_open(run: Row[Any]) -> None:
    """A Conflict unless the run still takes new messages (it is not archived)."""
    if run.archived_at is not None:
        raise Conflict(f"run {run.id} is archived and takes no new events", code="run_archived")


async def update(
    conn: AsyncConnection,
    run: Row[Any],
    *,
    title: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> list[event_log.Event]:
    """Set the title and/or the whole metadata of a run the caller has locked."""
    ensure_open(run)
    changes = {name: value for name, value in (("title", title), ("metadata", metadata)) if value is not None}
    if not changes:
        return []
    updated = event_log.NewEvent.of(payloads.RunUpdated(**changes))
    appended = event_log.Append(run.id, (updated,), changes, allow_terminal=True)
    return await event_log.append(conn, appended)


async def archive(conn: AsyncConnection, run: Row[Any]) -> list[event_log.Event]:
    """Archive a run the caller has locked; one at work must be stopped (or finish) first."""
    if run.archived_at is not None:
        return []
    if phase_of(run.status, run.waiting_for) is Phase.RUNNING:
        raise Conflict(f"run {run.id} is running; interrupt it or let it finish first", code="run_running")
    archived = event_log.NewEvent.of(payloads.RunArchived())
    return await event_log.append(
        conn, event_log.Append(run.id, (archived,), {"archived_at": event_log.NOW}, allow_terminal=True)
    )


async def delete(conn: AsyncConnection, tenant: str, run_id: str) -> None:
    """Delete a run and its log; one at work must be stopped (or finish) first."""
    run = await get_run(conn, tenant, run_id, lock=True)
    if phase_of(run.status, run.waiting_for) is Phase.RUNNING:
        raise Conflict(f"run {run.id} is running; interrupt it or let it finish first", code="run_running")
    await conn.execute(runs.delete().where(runs.c.id == run.id, runs.c.tenant_id == tenant))


@dataclass(frozen=True)
class SessionFilter:
    agent_id: str | None = None
    agent_version: int | None = None
    phases: Collection[Phase] = ()
    include_archived: bool = False
    created_after: datetime | None = None  # exclusive
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    created_to: datetime | None = None  # inclusive
    # Only runs opened as sessions (with an environment), not every run of the tenant.
    sessions_only: bool = False


def _where(tenant: str, where: SessionFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [runs.c.tenant_id == tenant, runs.c.parent_run_id.is_(None)]
    if where.agent_id is not None:
        clauses.append(runs.c.agent_id == where.agent_id)
        if where.agent_version is not None:
            clauses.append(runs.c.agent_version == where.agent_version)
    if where.phases:
        clauses.append(or_(false(), *(_phase_clause(phase) for phase in where.phases)))
    if not where.include_archived:
        clauses.append(runs.c.archived_at.is_(None))
    if where.sessions_only:
        clauses.append(runs.c.environment_id.is_not(None))
    bounds = (
        (where.created_after, runs.c.created_at.__gt__),
        (where.created_from, runs.c.created_at.__ge__),
        (where.created_before, runs.c.created_at.__lt__),
        (where.created_to, runs.c.created_at.__le__),
    )
    clauses += [compare(value) for value, compare in bounds if value is not None]
    return clauses


async def page(
    conn: AsyncConnection,
    tenant: str,
    where: SessionFilter,
    *,
    after: tuple[datetime, str] | None,
    ascending: bool,
    limit: int,
) -> list[Row[Any]]:
    """Runs by creation time (newest first unless `ascending`), after the (created_at, id) `after`."""
    query = select(runs).where(*_where(tenant, where))
    if after is not None:
        at, last_id = after
        if ascending:
            query = query.where(
                or_(runs.c.created_at > at, and_(runs.c.created_at == at, runs.c.id > last_id))
            )
        else:
            query = query.where(
                or_(runs.c.created_at < at, and_(runs.c.created_at == at, runs.c.id < last_id))
            )
    order = (
        (runs.c.created_at.asc(), runs.c.id.asc())
        if ascending
        else (runs.c.created_at.desc(), runs.c.id.desc())
    )
    return list(await conn.execute(query.order_by(*order).limit(limit)))
