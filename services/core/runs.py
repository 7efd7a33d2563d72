"""Run rows: creation (new runs, sub-agents and forks), lookup, listing, and their public JSON shape.

Every statement on `runs` lives here; its changes that go with an append are made by events.append.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, DateTime, Row, and_, cast, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import events as event_log
from services.core import payloads
from services.core.agents import AgentSpec
from services.core.db.schema import run_leases, runs
from services.core.errors import IdempotencyKeyTaken, InvalidRequest, NotFound
from services.core.status import RUNNABLE_STATUSES, TERMINAL_STATUSES, RunStatus
from services.core.text import is_storable


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


async def create_run(
    conn: AsyncConnection,
    *,
    tenant: str,
    spec: dict[str, Any],
    agent_id: str | None,
    agent_version: int | None,
    user_input: str,
    metadata: dict[str, Any],
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    budget: dict[str, Any] | None = None,
    environment: tuple[str, int] | None = None,
) -> tuple[Row[Any], list[event_log.Event]]:
    """A new run, queued, its log opened with run.created and the user's message; `environment` is the
    (id, version) of the environment it runs in (None: the default sandbox, without network).

    Raises IdempotencyKeyTaken when a concurrent request took `idempotency_key` first.
    """
    environment_id, environment_version = environment or (None, None)
    run_id = new_id("run")
    try:
        await _insert_run(
            conn,
            {
                "id": run_id,
                "tenant_id": tenant,
                "agent_id": agent_id,
                "agent_version": agent_version,
                "agent_spec": spec,
                "input": user_input,
                "metadata": metadata,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
                "budget": budget or {},
                "environment_id": environment_id,
                "environment_version": environment_version,
            },
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        raise IdempotencyKeyTaken(f"Idempotency-Key {idempotency_key!r} is taken") from None
    created = run_created(user_input, agent_id, agent_version, metadata=metadata)
    if environment is not None:
        created = payloads.RunCreated(
            **created.model_dump(exclude_unset=True),
            environment_id=environment_id,
            environment_version=environment_version,
        )
    appended = await _open_log(conn, run_id, created, user_input)
    return await get_run(conn, tenant, run_id), appended


async def open_run(
    conn: AsyncConnection,
    *,
    tenant: str,
    spec: dict[str, Any],
    agent_id: str,
    agent_version: int,
    metadata: dict[str, Any],
    title: str | None,
    environment_id: str,
    environment_version: int,
    budget: dict[str, Any] | None = None,
) -> tuple[Row[Any], list[event_log.Event]]:
    """A new run without input (a Managed Agents session): its log is run.created and a wait for the
    first user message, which starts it like any message that reopens a run."""
    run_id = new_id("run")
    await _insert_run(
        conn,
        {
            "id": run_id,
            "tenant_id": tenant,
            "agent_id": agent_id,
            "agent_version": agent_version,
            "agent_spec": spec,
            "input": "",
            "metadata": metadata,
            "budget": budget or {},
            "title": title,
            "environment_id": environment_id,
            "environment_version": environment_version,
        },
    )
    created = payloads.RunCreated(
        input="",
        agent_id=agent_id,
        agent_version=agent_version,
        metadata=metadata,
        title=title,
        environment_id=environment_id,
        environment_version=environment_version,
    )
    waiting = event_log.NewEvent.of(payloads.RunWaiting(waiting_for=payloads.WaitingForMessage()))
    appended = await event_log.append(
        conn,
        event_log.Append(
            run_id,
            (event_log.NewEvent.of(created), waiting),
            {"status": RunStatus.WAITING, "waiting_for": waiting.data["waiting_for"]},
        ),
    )
    return await get_run(conn, tenant, run_id), appended


async def create_child(
    conn: AsyncConnection,
    parent: Row[Any],
    child_id: str,
    *,
    spec: dict[str, Any],
    agent_id: str | None,
    agent_version: int | None,
    user_input: str,
) -> list[event_log.Event]:
    """A sub-agent's run under `parent`; nothing if `child_id` exists (an earlier attempt started it)."""
    inserted = await _insert_run(
        conn,
        {
            "id": child_id,
            "tenant_id": parent.tenant_id,
            "agent_id": agent_id,
            "agent_version": agent_version,
            "agent_spec": spec,
            "input": user_input,
            "metadata": {},
            "parent_run_id": parent.id,
            # A sub-agent works in its parent's sandbox settings.
            "environment_id": parent.environment_id,
            "environment_version": parent.environment_version,
        },
        if_absent=True,
    )
    if not inserted:
        return []
    created = run_created(user_input, agent_id, agent_version, parent_run_id=parent.id)
    return await _open_log(conn, child_id, created, user_input)


async def fork_run(
    conn: AsyncConnection,
    parent: Row[Any],
    at_seq: int,
    *,
    overrides: dict[str, Any],
    tool_result: tuple[str, str] | None = None,
) -> tuple[Row[Any], list[event_log.Event]]:
    """A new run whose log is `parent`'s up to `at_seq`, then run.forked; queued to continue from there.

    `overrides` may change the spec's `model` and `system`; `tool_result` (call id, output) answers a
    call that was still pending at `at_seq`.
    """
    if at_seq > parent.last_seq:
        raise InvalidRequest(
            f"at_seq {at_seq} is beyond the end of run {parent.id} (seq {parent.last_seq})",
            code="invalid_seq",
        )
    spec = _overridden_spec(parent.agent_spec, overrides)
    if tool_result is not None and not await event_log.call_pending_at(
        conn, parent.id, tool_result[0], at_seq
    ):
        raise InvalidRequest(
            f"call {tool_result[0]!r} is not waiting for its result at seq {at_seq}", code="call_not_pending"
        )
    fork_id = new_id("run")
    origin = {"run_id": parent.id, "seq": at_seq}
    await _insert_run(
        conn,
        {
            "id": fork_id,
            "tenant_id": parent.tenant_id,
            "agent_id": parent.agent_id,
            "agent_version": parent.agent_version,
            "agent_spec": spec,
            "input": parent.input,
            "metadata": parent.metadata,
            "budget": parent.budget,
            "last_seq": at_seq,
            "forked_from": origin,
            "title": parent.title,
            "environment_id": parent.environment_id,
            "environment_version": parent.environment_version,
            # The fork's usage starts where the parent's was at `at_seq`.
            **await event_log.counters_upto(conn, parent.id, at_seq),
        },
    )
    await event_log.copy_prefix(conn, parent.id, fork_id, at_seq)
    forked = payloads.RunForked.parse({"from": origin, "overrides": overrides})
    new_events = [event_log.NewEvent.of(forked)]
    if tool_result is not None:
        call_id, output = tool_result
        answer = payloads.ToolResult(call_id=call_id, ok=True, output=output, overridden=True)
        new_events.append(event_log.NewEvent.of(answer))
    appended = await event_log.append(conn, event_log.Append(fork_id, tuple(new_events), allow_terminal=True))
    return await get_run(conn, parent.tenant_id, fork_id), appended


def _overridden_spec(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    changed = {**spec, **{k: v for k, v in overrides.items() if k in ("model", "system")}}
    if "model" in overrides and not str(overrides["model"]).startswith("scripted"):
        changed["script"] = None
    try:
        return AgentSpec.model_validate(changed).model_dump(mode="json")
    except ValidationError as error:
        raise InvalidRequest(f"overrides: {error.errors()[0].get('msg')}", code="validation_error") from None


def run_created(
    user_input: str,
    agent_id: str | None,
    agent_version: int | None,
    *,
    metadata: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> payloads.RunCreated:
    """The run.created payload: a run started by a caller carries its metadata, a child its parent."""
    if parent_run_id is None:
        return payloads.RunCreated(
            input=user_input, agent_id=agent_id, agent_version=agent_version, metadata=metadata or {}
        )
    return payloads.RunCreated(
        input=user_input, agent_id=agent_id, agent_version=agent_version, parent_run_id=parent_run_id
    )


async def _insert_run(conn: AsyncConnection, values: dict[str, Any], *, if_absent: bool = False) -> bool:
    """The one place a run row is made, always queued; False if `if_absent` and the id was taken."""
    statement = insert(runs).values(status=RunStatus.QUEUED, **values)
    if if_absent:
        statement = statement.on_conflict_do_nothing(index_elements=[runs.c.id])
    return bool((await conn.execute(statement)).rowcount)


async def _open_log(
    conn: AsyncConnection, run_id: str, created: payloads.RunCreated, user_input: str
) -> list[event_log.Event]:
    message = payloads.UserMessage(content=user_input)
    return await event_log.append(
        conn, event_log.Append(run_id, (event_log.NewEvent.of(created), event_log.NewEvent.of(message)))
    )


async def add_user_message(conn: AsyncConnection, run: Row[Any], content: str) -> list[event_log.Event]:
    """A user message for a run the caller has locked: a running run reads it at its next step; a
    finished run takes it as a new turn, and a paused or waiting one resumes with it."""
    message = event_log.NewEvent.of(payloads.UserMessage(content=content))
    if run.status in RUNNABLE_STATUSES:
        return await event_log.append(conn, event_log.Append(run.id, (message,)))
    resumed = (message, event_log.NewEvent.of(payloads.RunStatusChanged(status=RunStatus.QUEUED)))
    changes = {
        "status": RunStatus.QUEUED,
        "waiting_for": None,
        "ended_at": None,
        "result": None,
        "error": None,
    }
    return await event_log.append(conn, event_log.Append(run.id, resumed, changes, allow_terminal=True))


async def get_run(conn: AsyncConnection, tenant: str, run_id: str, *, lock: bool = False) -> Row[Any]:
    """`lock` holds the row until commit, so checks made on it stay true for the append that follows."""
    query = select(runs).where(runs.c.id == run_id, runs.c.tenant_id == tenant)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"run {run_id} not found", code="run_not_found")
    return row


async def find_run(conn: AsyncConnection, run_id: str, *, lock: bool = False) -> Row[Any] | None:
    """A run by id alone, for the brain, which steps runs of every tenant."""
    query = select(runs).where(runs.c.id == run_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


@dataclass(frozen=True)
class SteppingInputs:
    agent_spec: dict[str, Any]
    created_at: datetime
    budget: dict[str, Any] | None
    tenant_id: str
    root_run_id: str
    # The environment version the run's sandbox follows; None: the default sandbox.
    environment: tuple[str, int] | None = None


async def stepping_inputs(conn: AsyncConnection, run_id: str) -> SteppingInputs:
    """What a brain needs to step a run besides its log: the spec, the start time, budget overrides,
    whose run it is and the run at the top of its tree of sub-agents (`root_run_id`)."""
    query = select(
        runs.c.agent_spec,
        runs.c.created_at,
        runs.c.budget,
        runs.c.tenant_id,
        runs.c.parent_run_id,
        runs.c.environment_id,
        runs.c.environment_version,
    ).where(runs.c.id == run_id)
    row = (await conn.execute(query)).one()
    root = await _root_of(conn, run_id, row.parent_run_id)
    environment = None
    if row.environment_id is not None:
        environment = (row.environment_id, row.environment_version or 1)
    return SteppingInputs(row.agent_spec, row.created_at, row.budget, row.tenant_id, root, environment)


async def progress(conn: AsyncConnection, run_id: str) -> Row[Any, Any, Any]:
    """A run's status, last seq and parent: where a brain that let go of it left it."""
    query = select(runs.c.status, runs.c.last_seq, runs.c.parent_run_id).where(runs.c.id == run_id)
    return (await conn.execute(query)).one()


async def child_ids(conn: AsyncConnection, run_id: str) -> set[str]:
    return set((await conn.execute(select(runs.c.id).where(runs.c.parent_run_id == run_id))).scalars())


async def _root_of(conn: AsyncConnection, run_id: str, parent_id: str | None) -> str:
    root = run_id
    while parent_id is not None:
        root = parent_id
        parent_id = (await conn.execute(select(runs.c.parent_run_id).where(runs.c.id == parent_id))).scalar()
    return root


async def depth(conn: AsyncConnection, run: Row[Any]) -> int:
    """How many ancestors a run has (0 for a run started by a caller)."""
    levels, parent_id = 0, run.parent_run_id
    while parent_id is not None:
        levels += 1
        parent_id = (await conn.execute(select(runs.c.parent_run_id).where(runs.c.id == parent_id))).scalar()
    return levels


def _unheld() -> ColumnElement[bool]:
    """No brain holds the run: it has no lease, or its lease has lapsed."""
    return (run_leases.c.expires_at.is_(None)) | (run_leases.c.expires_at < func.now())


async def stranded_runs(
    conn: AsyncConnection, *, quiet_seconds: float, limit: int, except_tenants: Collection[str] = ()
) -> list[str]:
    """Runnable runs that nobody holds and nobody has touched for `quiet_seconds`, of tenants other
    than `except_tenants` (whose runs may be waiting for a slot on purpose: see `next_in_line`)."""
    quiet_since = func.now() - timedelta(seconds=quiet_seconds)
    query = (
        select(runs.c.id)
        .outerjoin(run_leases, run_leases.c.run_id == runs.c.id)
        .where(runs.c.status.in_(RUNNABLE_STATUSES), runs.c.updated_at < quiet_since)
        .where(_unheld())
        .limit(limit)
    )
    if except_tenants:
        query = query.where(runs.c.tenant_id.not_in(list(except_tenants)))
    return list((await conn.execute(query)).scalars())


async def tenant_of(conn: AsyncConnection, run_id: str) -> str | None:
    return (await conn.execute(select(runs.c.tenant_id).where(runs.c.id == run_id))).scalar()


async def running_count(conn: AsyncConnection, tenant: str, *, excluding: str | None = None) -> int:
    """The tenant's runs a brain holds now: a live lease on a queued or running run. A run that waits
    (or has ended) does not count, even in the moment before its brain lets go of the lease."""
    query = (
        select(func.count())
        .select_from(runs.join(run_leases, run_leases.c.run_id == runs.c.id))
        .where(runs.c.tenant_id == tenant, runs.c.status.in_(RUNNABLE_STATUSES))
        .where(run_leases.c.expires_at > func.now())
    )
    if excluding is not None:
        query = query.where(runs.c.id != excluding)
    return int((await conn.execute(query)).scalar_one())


async def next_in_line(
    conn: AsyncConnection, tenant: str, count: int, *, excluding: str | None = None
) -> list[str]:
    """The tenant's `count` oldest runnable runs that no brain holds, oldest first."""
    query = (
        select(runs.c.id)
        .outerjoin(run_leases, run_leases.c.run_id == runs.c.id)
        .where(runs.c.tenant_id == tenant, runs.c.status.in_(RUNNABLE_STATUSES))
        .where(_unheld())
        .order_by(runs.c.created_at, runs.c.id)
        .limit(count)
    )
    if excluding is not None:
        query = query.where(runs.c.id != excluding)
    return list((await conn.execute(query)).scalars())


async def with_unheld_runs(conn: AsyncConnection, tenants: Collection[str]) -> list[str]:
    """Which of these tenants have runnable runs that no brain holds."""
    if not tenants:
        return []
    query = (
        select(runs.c.tenant_id)
        .distinct()
        .outerjoin(run_leases, run_leases.c.run_id == runs.c.id)
        .where(runs.c.tenant_id.in_(list(tenants)), runs.c.status.in_(RUNNABLE_STATUSES))
        .where(_unheld())
    )
    return list((await conn.execute(query)).scalars())


async def sandbox_holders(conn: AsyncConnection, tenant: str, *, excluding: str | None = None) -> int:
    """The tenant's runs whose live lease claims a sandbox (see leases.claim_sandbox)."""
    query = (
        select(func.count())
        .select_from(run_leases.join(runs, runs.c.id == run_leases.c.run_id))
        .where(run_leases.c.sandbox, run_leases.c.expires_at > func.now(), runs.c.tenant_id == tenant)
    )
    if excluding is not None:
        query = query.where(run_leases.c.run_id != excluding)
    return int((await conn.execute(query)).scalar_one())


async def undelivered_children(conn: AsyncConnection, *, limit: int) -> list[str]:
    """Finished children whose parent still waits on them (the brain that was to deliver died)."""
    child = runs.alias("child")
    # A parent waiting on children lists them as {"call_id", "child_run_id"} under waiting_for.children.
    entry = func.jsonb_build_array(func.jsonb_build_object("child_run_id", child.c.id))
    query = (
        select(child.c.id)
        .join(runs, runs.c.id == child.c.parent_run_id)
        .where(runs.c.status == RunStatus.WAITING, runs.c.waiting_for["children"].contains(entry))
        .where(child.c.status.in_(TERMINAL_STATUSES))
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def cancel_tree(conn: AsyncConnection, run_id: str, reason: str) -> dict[str, list[event_log.Event]]:
    """Cancel a run and every unfinished descendant (sub-agents), in the caller's transaction."""
    tree = select(runs.c.id, runs.c.parent_run_id).where(runs.c.id == run_id).cte("tree", recursive=True)
    tree = tree.union_all(
        select(runs.c.id, runs.c.parent_run_id).join(tree, runs.c.parent_run_id == tree.c.id)
    )
    ids = list((await conn.execute(select(tree.c.id))).scalars())
    cancelled: dict[str, list[event_log.Event]] = {}
    for target in ids:
        status = (
            await conn.execute(select(runs.c.status).where(runs.c.id == target).with_for_update())
        ).scalar()
        if status in TERMINAL_STATUSES:
            continue
        cancelled[target] = await event_log.append(
            conn,
            event_log.Append(
                target,
                (
                    event_log.NewEvent.of(
                        payloads.RunCancelled(
                            reason=reason if target == run_id else "the parent run was cancelled"
                        )
                    ),
                ),
                {"status": RunStatus.CANCELLED, "waiting_for": None, "ended_at": event_log.NOW},
            ),
        )
    return cancelled


async def owned_by(conn: AsyncConnection, tenant: str, run_ids: list[str]) -> set[str]:
    """Which of these runs are the tenant's."""
    if not run_ids:
        return set()
    query = select(runs.c.id).where(runs.c.tenant_id == tenant, runs.c.id.in_(run_ids))
    return set((await conn.execute(query)).scalars())


async def find_by_idempotency_key(conn: AsyncConnection, tenant: str, key: str) -> Row[Any] | None:
    query = select(runs).where(runs.c.tenant_id == tenant, runs.c.idempotency_key == key)
    return (await conn.execute(query)).first()


async def list_runs(
    conn: AsyncConnection, tenant: str, *, status: RunStatus | None, limit: int, cursor: str | None
) -> tuple[list[Row[Any]], str | None]:
    query = select(runs).where(runs.c.tenant_id == tenant)
    if status is not None:
        query = query.where(runs.c.status == status)
    if cursor is not None:
        created_at, run_id = decode_cursor(cursor)
        query = query.where(
            or_(runs.c.created_at < created_at, and_(runs.c.created_at == created_at, runs.c.id < run_id))
        )
    rows = list(
        await conn.execute(query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1))
    )
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        if not is_storable(run_id):
            raise ValueError("the cursor's run id cannot be a run id")
        return datetime.fromisoformat(created_at), run_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor is not valid", code="invalid_cursor") from None


def run_to_wire(row: Row[Any]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "tenant": row.tenant_id,
        "status": row.status,
        "agent_id": row.agent_id,
        "agent_version": row.agent_version,
        "model": row.agent_spec.get("model"),
        "step": row.step,
        "last_seq": row.last_seq,
        "usage": {
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "tool_calls": row.tool_calls,
        },
        "input": row.input,
        "result": row.result,
        "error": row.error,
        "metadata": row.metadata,
        "waiting_for": row.waiting_for,
        "budget": row.budget,
        "cost_usd": row.cost_usd,
        "parent_run_id": row.parent_run_id,
        "forked_from": row.forked_from,
        "environment": (
            {"id": row.environment_id, "version": row.environment_version or 1}
            if row.environment_id is not None
            else None
        ),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "ended_at": iso(row.ended_at),
    }


async def settle_wait(
    conn: AsyncConnection,
    run_id: str,
    new_events: list[event_log.NewEvent],
    remaining: dict[str, Any] | None,
    **changes: Any,
) -> list[event_log.Event]:
    """Append what settles part of a run's wait; with nothing `remaining`, queue the run again."""
    if remaining is None:
        new_events = [*new_events, event_log.NewEvent.of(payloads.RunStatusChanged(status=RunStatus.QUEUED))]
        changes.update(status=RunStatus.QUEUED, waiting_for=None)
    else:
        changes.update(waiting_for=remaining)
    return await event_log.append(conn, event_log.Append(run_id, tuple(new_events), changes))


async def quota_waits(
    conn: AsyncConnection, *, tenant_id: str | None = None, reset_by_now: bool = False, limit: int
) -> list[str]:
    """Runs that wait for a monthly quota: one tenant's, or with `reset_by_now` those whose month is over."""
    waiting_for = runs.c.waiting_for
    query = select(runs.c.id).where(runs.c.status == RunStatus.WAITING, waiting_for["type"].astext == "quota")
    if tenant_id is not None:
        query = query.where(runs.c.tenant_id == tenant_id)
    if reset_by_now:
        query = query.where(cast(waiting_for["resets_at"].astext, DateTime(timezone=True)) <= func.now())
    return list((await conn.execute(query.order_by(runs.c.id).limit(limit))).scalars())


async def requeue_quota_wait(conn: AsyncConnection, run_id: str) -> list[event_log.Event]:
    """Queue again a run that waits for a quota; the brain checks the quota anew before its next model
    call. Nothing is appended for a run that no longer waits for one (it moved on meanwhile)."""
    run = await find_run(conn, run_id, lock=True)
    if run is None or run.status != RunStatus.WAITING or (run.waiting_for or {}).get("type") != "quota":
        return []
    return await settle_wait(conn, run_id, [], None)
