"""Run rows: creation, lookup and listing, and their public JSON shape."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import events as log
from services.core.db.schema import runs
from services.core.errors import InvalidRequest, NotFound

RUN_STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled")


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
) -> tuple[Row[Any], list[log.Event]]:
    run_id = new_id("run")
    await conn.execute(
        runs.insert().values(
            id=run_id,
            tenant_id=tenant,
            agent_id=agent_id,
            agent_version=agent_version,
            agent_spec=spec,
            status="queued",
            input=user_input,
            metadata=metadata,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            budget=budget or {},
        )
    )
    appended = await log.append(
        conn,
        log.Append(
            run_id=run_id,
            events=(
                log.NewEvent(
                    log.RUN_CREATED,
                    {
                        "input": user_input,
                        "agent_id": agent_id,
                        "agent_version": agent_version,
                        "metadata": metadata,
                    },
                ),
                log.NewEvent(log.USER_MESSAGE, {"content": user_input}),
            ),
        ),
    )
    return await get_run(conn, tenant, run_id), appended


async def get_run(conn: AsyncConnection, tenant: str, run_id: str, *, lock: bool = False) -> Row[Any]:
    """`lock` holds the row until commit, so checks made on it stay true for the append that follows."""
    query = select(runs).where(runs.c.id == run_id, runs.c.tenant_id == tenant)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"run {run_id} not found", code="run_not_found")
    return row


async def cancel_tree(conn: AsyncConnection, run_id: str, reason: str) -> dict[str, list[log.Event]]:
    """Cancel a run and every unfinished descendant (sub-agents), in the caller's transaction."""
    tree = select(runs.c.id, runs.c.parent_run_id).where(runs.c.id == run_id).cte("tree", recursive=True)
    tree = tree.union_all(
        select(runs.c.id, runs.c.parent_run_id).join(tree, runs.c.parent_run_id == tree.c.id)
    )
    ids = list((await conn.execute(select(tree.c.id))).scalars())
    cancelled: dict[str, list[log.Event]] = {}
    for target in ids:
        status = (
            await conn.execute(select(runs.c.status).where(runs.c.id == target).with_for_update())
        ).scalar()
        if status in log.TERMINAL_STATUSES:
            continue
        cancelled[target] = await log.append(
            conn,
            log.Append(
                target,
                (
                    log.NewEvent(
                        log.RUN_CANCELLED,
                        {"reason": reason if target == run_id else "the parent run was cancelled"},
                    ),
                ),
                {"status": "cancelled", "waiting_for": None, "ended_at": log.NOW},
            ),
        )
    return cancelled


async def find_by_idempotency_key(conn: AsyncConnection, tenant: str, key: str) -> Row[Any] | None:
    query = select(runs).where(runs.c.tenant_id == tenant, runs.c.idempotency_key == key)
    return (await conn.execute(query)).first()


async def list_runs(
    conn: AsyncConnection, tenant: str, *, status: str | None, limit: int, cursor: str | None
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
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "ended_at": iso(row.ended_at),
    }
