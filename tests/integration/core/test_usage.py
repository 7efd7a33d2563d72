"""Usage rows grow with the appends that use something, in the same statement: they add up to the runs'
own counters, split by UTC day, agent and tenant, and a refused append counts nothing."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import events as event_log
from services.core import leases, payloads, usage
from services.core.db.engine import autocommit
from services.core.db.schema import runs
from services.core.db.schema import usage as usage_table
from services.core.errors import LeaseLost, Unstorable
from services.core.runs import create_run


async def new_run(engine: AsyncEngine, tenant: str, agent_id: str | None = None) -> str:
    async with engine.begin() as conn:
        row, _ = await create_run(
            conn,
            tenant=tenant,
            spec={"model": "scripted"},
            agent_id=agent_id,
            agent_version=1 if agent_id else None,
            user_input="hi",
            metadata={},
        )
    return str(row.id)


async def model_response(
    engine: AsyncEngine,
    run_id: str,
    tokens: tuple[int, int],
    cost: float,
    fence: event_log.Fence | None = None,
) -> None:
    response = payloads.ModelResponse(
        text="ok",
        tool_calls=[],
        usage=payloads.Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
        stop_reason="end_turn",
        model="scripted",
        cost_usd=cost,
        context_seq=None,
    )
    changes = {
        "step": event_log.Increment(1),
        "input_tokens": event_log.Increment(tokens[0]),
        "output_tokens": event_log.Increment(tokens[1]),
        "cost_usd": event_log.Increment(cost),
    }
    async with autocommit(engine).connect() as conn:
        await event_log.append(
            conn, event_log.Append(run_id, (event_log.NewEvent.of(response),), changes, fence=fence)
        )


async def tool_result(engine: AsyncEngine, run_id: str, call_id: str, duration_ms: int) -> None:
    result = payloads.ToolResult(call_id=call_id, name="bash", ok=True, output="", duration_ms=duration_ms)
    async with autocommit(engine).connect() as conn:
        await event_log.append(
            conn,
            event_log.Append(
                run_id, (event_log.NewEvent.of(result),), {"tool_calls": event_log.Increment(1)}
            ),
        )


async def rows_of(engine: AsyncEngine, run_id: str) -> list[tuple[date, int, int, float, int, float]]:
    query = (
        select(
            usage_table.c.day,
            usage_table.c.input_tokens,
            usage_table.c.output_tokens,
            usage_table.c.cost_usd,
            usage_table.c.tool_calls,
            usage_table.c.sandbox_seconds,
        )
        .where(usage_table.c.run_id == run_id)
        .order_by(usage_table.c.day)
    )
    async with autocommit(engine).connect() as conn:
        return [tuple(row) for row in await conn.execute(query)]


async def test_usage_adds_up_to_the_run_row_and_counts_sandbox_time(engine: AsyncEngine) -> None:
    tenant = f"t-{secrets.token_hex(4)}"
    run_id = await new_run(engine, tenant, "coder")
    assert await rows_of(engine, run_id) == []  # creating a run uses nothing

    await model_response(engine, run_id, (100, 20), 0.25)
    await tool_result(engine, run_id, "c1", 1500)
    await tool_result(engine, run_id, "c2", 250)
    await model_response(engine, run_id, (150, 30), 0.5)

    async with autocommit(engine).connect() as conn:
        run = (await conn.execute(select(runs).where(runs.c.id == run_id))).one()
        stored = (await conn.execute(select(usage_table).where(usage_table.c.run_id == run_id))).one()
    today = run.updated_at.astimezone(UTC).date()
    assert (stored.day, stored.tenant_id, stored.agent_id) == (today, tenant, "coder")
    assert (
        (stored.input_tokens, stored.output_tokens, stored.tool_calls)
        == (
            run.input_tokens,
            run.output_tokens,
            run.tool_calls,
        )
        == (250, 50, 2)
    )
    assert stored.cost_usd == pytest.approx(run.cost_usd) == pytest.approx(0.75)
    assert stored.sandbox_seconds == pytest.approx(1.75)


async def test_a_new_day_starts_a_new_row(engine: AsyncEngine) -> None:
    run_id = await new_run(engine, f"t-{secrets.token_hex(4)}")
    await model_response(engine, run_id, (10, 1), 0.0)
    # What was counted so far was counted yesterday.
    async with engine.begin() as conn:
        await conn.execute(
            update(usage_table).where(usage_table.c.run_id == run_id).values(day=usage_table.c.day - 1)
        )
    await model_response(engine, run_id, (20, 2), 0.0)

    (yesterday, first, *_), (today, second, *_) = await rows_of(engine, run_id)
    assert today - yesterday == timedelta(days=1)
    assert (first, second) == (10, 20)


async def test_a_refused_append_counts_nothing(engine: AsyncEngine) -> None:
    run_id = await new_run(engine, f"t-{secrets.token_hex(4)}")
    async with engine.begin() as conn:
        stale = await leases.acquire(conn, run_id, "brain-a", ttl_seconds=60)
        assert stale is not None
        await leases.release(conn, run_id, stale)
        assert await leases.acquire(conn, run_id, "brain-b", ttl_seconds=60) is not None
    with pytest.raises(LeaseLost):
        await model_response(engine, run_id, (10, 1), 0.1, fence=stale)
    with pytest.raises(Unstorable):
        await model_response(engine, run_id, (2**63, 1), 0.1)
    assert await rows_of(engine, run_id) == []


async def test_the_report_splits_by_tenant_agent_and_day(engine: AsyncEngine) -> None:
    mine, theirs = f"t-{secrets.token_hex(4)}", f"t-{secrets.token_hex(4)}"
    coder, inline, other = (
        await new_run(engine, mine, "coder"),
        await new_run(engine, mine),
        await new_run(engine, theirs, "coder"),
    )
    await model_response(engine, coder, (100, 10), 0.5)
    await model_response(engine, inline, (7, 3), 0.0)
    await model_response(engine, other, (1000, 1000), 9.0)
    async with engine.begin() as conn:  # the inline run's usage was yesterday's
        await conn.execute(
            update(usage_table).where(usage_table.c.run_id == inline).values(day=usage_table.c.day - 1)
        )
    await model_response(engine, coder, (1, 1), 0.0)
    today = (await rows_of(engine, coder))[0][0]
    yesterday = today - timedelta(days=1)

    async with autocommit(engine).connect() as conn:
        found = await usage.report(conn, mine, yesterday, today)
        only_today = await usage.report(conn, mine, today, today)
        everyone = await usage.report(conn, None, yesterday, today)

    assert [(t, totals.tokens) for t, totals in found.tenants] == [(mine, 122)]
    assert found.total.tokens == 122 and found.total.cost_usd == pytest.approx(0.5)
    assert [(agent, totals.tokens) for _, agent, totals in found.agents] == [(None, 10), ("coder", 112)]
    assert [(day, totals.tokens) for _, day, totals in found.days] == [(yesterday, 10), (today, 112)]
    assert [(agent, totals.tokens) for _, agent, totals in only_today.agents] == [("coder", 112)]
    assert {t for t, _ in everyone.tenants} >= {mine, theirs}
    assert {(t, a) for t, a, _ in everyone.agents} >= {(mine, None), (mine, "coder"), (theirs, "coder")}


async def test_month_to_date_counts_only_the_tenants_month(engine: AsyncEngine) -> None:
    tenant = f"t-{secrets.token_hex(4)}"
    run_id = await new_run(engine, tenant)
    await model_response(engine, run_id, (40, 2), 0.125)
    month = usage.month_of(datetime.now(UTC))
    async with autocommit(engine).connect() as conn:
        now = await usage.month_to_date(conn, tenant, month)
        before = await usage.month_to_date(conn, tenant, date(month.year - 1, month.month, 1))
        other = await usage.month_to_date(conn, f"t-{secrets.token_hex(4)}", month)
    assert (now.tokens, now.cost_usd) == (42, 0.125)
    assert before == other == usage.Totals()


def test_months_roll_over_at_the_year_end() -> None:
    assert usage.next_month(date(2025, 12, 1)) == date(2026, 1, 1)
    assert usage.next_month(date(2026, 1, 1)) == date(2026, 2, 1)
    assert usage.month_of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == date(2026, 3, 1)
