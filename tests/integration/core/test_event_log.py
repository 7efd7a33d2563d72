"""The event log stays gapless under concurrent appends, and fenced appends refuse stale brains."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.waiting import eventually
from services.core import events as event_log
from services.core import leases
from services.core.db.engine import autocommit
from services.core.db.schema import runs
from services.core.errors import Conflict, LeaseLost, Unstorable
from services.core.runs import create_run


async def new_run(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        row, _ = await create_run(
            conn,
            tenant="t-log",
            spec={"model": "scripted"},
            agent_id=None,
            agent_version=None,
            user_input="hi",
            metadata={},
        )
    return str(row.id)


async def append_one(
    engine: AsyncEngine, run_id: str, n: int, fence: event_log.Fence | None = None
) -> list[event_log.Event]:
    async with engine.begin() as conn:
        return await event_log.append(
            conn, event_log.Append(run_id, (event_log.NewEvent("test.note", {"n": n}),), fence=fence)
        )


async def test_concurrent_appends_get_gapless_unique_seqs(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    await asyncio.gather(*(append_one(engine, run_id, n) for n in range(40)))
    async with engine.connect() as conn:
        seqs = [event.seq for event in await event_log.read(conn, run_id)]
    assert seqs == list(range(1, 43))


async def test_a_new_lease_owner_gets_a_higher_token_and_the_old_one_cannot_write(
    engine: AsyncEngine,
) -> None:
    run_id = await new_run(engine)
    async with engine.begin() as conn:
        first = await leases.acquire(conn, run_id, "brain-a", ttl_seconds=0.2)
        assert first is not None
        assert await leases.acquire(conn, run_id, "brain-b", ttl_seconds=5) is None
    await append_one(engine, run_id, 1, fence=first)

    async def take_over() -> event_log.Fence | None:
        async with engine.begin() as conn:
            return await leases.acquire(conn, run_id, "brain-b", ttl_seconds=5)

    second = await eventually(take_over, timeout=5)
    assert second.token > first.token
    with pytest.raises(LeaseLost):
        await append_one(engine, run_id, 2, fence=first)
    async with engine.begin() as conn:
        assert not await leases.renew(conn, run_id, first, 5)
    await append_one(engine, run_id, 3, fence=second)
    async with engine.connect() as conn:
        notes = [e.data["n"] for e in await event_log.read(conn, run_id) if e.type == "test.note"]
    assert notes == [1, 3]


async def test_release_frees_the_lease_at_once(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    async with engine.begin() as conn:
        fence = await leases.acquire(conn, run_id, "brain-a", ttl_seconds=60)
        assert fence is not None
        await leases.release(conn, run_id, fence)
        again = await leases.acquire(conn, run_id, "brain-b", ttl_seconds=60)
    assert again is not None and again.token == fence.token + 1


async def test_appends_to_a_finished_run_are_refused(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    async with engine.begin() as conn:
        await event_log.append(
            conn,
            event_log.Append(
                run_id, (event_log.NewEvent(event_log.RUN_COMPLETED, {}),), {"status": "completed"}
            ),
        )
    with pytest.raises(Conflict):
        await append_one(engine, run_id, 1)


async def test_run_row_changes_are_values_increments_or_the_commit_clock(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    note = (event_log.NewEvent("test.note", {}),)
    async with engine.begin() as conn:
        await event_log.append(
            conn, event_log.Append(run_id, note, {"step": event_log.Increment(2), "waiting_for": {"a": 1}})
        )
        await event_log.append(
            conn, event_log.Append(run_id, note, {"step": event_log.Increment(3), "ended_at": event_log.NOW})
        )
        row = (await conn.execute(select(runs).where(runs.c.id == run_id))).one()
    assert (row.step, row.waiting_for) == (5, {"a": 1})
    assert row.ended_at == row.updated_at

    async with engine.begin() as conn:
        with pytest.raises(TypeError):
            await event_log.append(conn, event_log.Append(run_id, note, {"step": runs.c.step + 1}))
    async with engine.begin() as conn:
        with pytest.raises(ValueError):
            await event_log.append(conn, event_log.Append(run_id, note, {"no_such_column": 1}))


async def test_text_postgres_cannot_hold_is_stored_as_replacement_characters(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    hostile = {"output": "a\x00b", "name\x00": "\udcff", "cost": float("inf"), "fine": "é😀"}
    async with engine.begin() as conn:
        appended = await event_log.append(
            conn,
            event_log.Append(run_id, (event_log.NewEvent("test.note", hostile),), {"result": "done\x00"}),
        )
        row = (await conn.execute(select(runs.c.result).where(runs.c.id == run_id))).one()
    async with engine.connect() as conn:
        stored = (await event_log.read(conn, run_id, after=2))[0]

    expected = {"output": "a\ufffdb", "name\ufffd": "\ufffd", "cost": None, "fine": "é😀"}
    assert stored.data == appended[0].data == expected
    assert row.result == "done\ufffd"


async def test_an_append_the_database_refuses_is_unstorable_and_leaves_no_gap(engine: AsyncEngine) -> None:
    run_id = await new_run(engine)
    note = (event_log.NewEvent("test.note", {"n": 1}),)
    async with engine.begin() as conn:
        with pytest.raises(Unstorable) as refused:
            await event_log.append(
                conn, event_log.Append(run_id, note, {"input_tokens": event_log.Increment(2**63)})
            )
    assert not refused.value.retryable and "out of range" in refused.value.message

    assert [e.seq for e in await append_one(engine, run_id, 2)] == [3]


async def test_connections_the_server_closed_are_replaced_before_use(
    engine: AsyncEngine, database_url: str
) -> None:
    async with engine.connect() as first, autocommit(engine).connect() as second:
        for conn in (first, second):  # two pooled connections, idle once returned
            await conn.execute(text("SELECT 1"))
    others = (
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    )
    async with await psycopg.AsyncConnection.connect(
        database_url.replace("+psycopg", ""), autocommit=True
    ) as admin:
        await admin.execute(f"SELECT pg_terminate_backend(pid) {others}")

        async def all_gone() -> bool:
            row = await (await admin.execute(f"SELECT count(*) {others}")).fetchone()
            return row is not None and row[0] == 0

        await eventually(all_gone)

    # No error reaches the caller: each dead connection is noticed on checkout and replaced.
    run_id = await new_run(engine)
    assert [e.seq for e in await append_one(engine, run_id, 1)] == [3]
    async with autocommit(engine).connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1


async def test_blob_references_name_every_sha256_any_payload_holds(engine: AsyncEngine) -> None:
    snapshot, output, artifact, nested = (c * 64 for c in "abcd")
    run_id = await new_run(engine)
    payloads: list[tuple[str, dict[str, Any]]] = [
        ("tool.result", {"call_id": "c1", "snapshot": snapshot, "output_ref": {"sha256": output, "size": 3}}),
        ("artifact.created", {"path": "out.txt", "size": 1, "sha256": artifact}),
        ("test.note", {"deep": [{"ref": nested}], "not_a_sha": "A" * 64, "short": "e" * 63}),
    ]
    async with engine.begin() as conn:
        await event_log.append(
            conn, event_log.Append(run_id, tuple(event_log.NewEvent(t, d) for t, d in payloads))
        )
    async with autocommit(engine).connect() as conn:
        found = await event_log.blob_references(conn)

    assert {snapshot, output, artifact, nested} <= found
    assert "A" * 64 not in found and "e" * 63 not in found
