"""Usage and monthly ceilings with a real brain: what runs use adds up in the usage table, and a tenant
at its monthly ceiling gets runs that wait for the quota (holding nothing) rather than fail, and go on
once a root admin raises it or the month is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from harness.waiting import eventually
from services.core import events as event_log
from services.core import payloads, usage
from services.core.db.engine import autocommit
from services.core.db.schema import runs
from services.core.db.schema import usage as usage_table
from services.core.status import RunStatus
from tests.unit.brain.loop import Loop, call, holds_nothing, of_type, scripted


def turn(tokens_in: int, tokens_out: int, **fields: Any) -> dict[str, Any]:
    return {"usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}, **fields}


async def set_quotas(loop: Loop, **quotas: Any) -> None:
    """Give the loop's tenant these quotas, as a root admin does."""
    changed = await loop.api.patch(f"/v1/tenants/{loop.settings.tenant}", json={"quotas": quotas})
    assert changed.status_code == 200, changed.text


async def test_usage_rows_add_up_to_the_runs_totals(loop: Loop) -> None:
    agent = scripted(
        turn(30, 5, tool_calls=[call("bash", command="echo one"), call("bash", command="echo two")]),
        turn(40, 6, tool_calls=[call("write_file", path="a.txt", content="a")]),
        turn(50, 7, text="done"),
    )
    run_ids = [await loop.start(agent), await loop.start(agent)]
    for run_id in run_ids:
        await loop.until(run_id, "completed")

    async with autocommit(loop.engine).connect() as conn:
        for run_id in run_ids:
            run = (await conn.execute(select(runs).where(runs.c.id == run_id))).one()
            counted = (
                await conn.execute(
                    select(
                        func.sum(usage_table.c.input_tokens),
                        func.sum(usage_table.c.output_tokens),
                        func.sum(usage_table.c.tool_calls),
                        func.sum(usage_table.c.sandbox_seconds),
                        func.count(),
                    ).where(usage_table.c.run_id == run_id)
                )
            ).one()
            durations = of_type(await loop.events(run_id), "tool.result")
            seconds = sum(result["duration_ms"] for result in durations) / 1000
            assert tuple(counted) == pytest.approx((120, 18, 3, seconds, 1))
            assert (run.input_tokens, run.output_tokens, run.tool_calls) == (120, 18, 3)

    report = (await loop.api.get("/v1/usage")).json()
    assert report["total"]["tokens"] == 2 * 138 and report["total"]["tool_calls"] == 6


async def test_a_run_at_the_monthly_token_ceiling_waits_until_the_quota_is_raised(loop: Loop) -> None:
    await set_quotas(loop, monthly_tokens=100)
    agent = scripted(turn(80, 40, tool_calls=[call("bash", command="echo hi")]), turn(10, 10, text="done"))
    run_id = await loop.start(agent)

    run = await loop.until(run_id, "waiting")
    next_month = usage.next_month(usage.month_of(datetime.now(UTC)))
    assert run["waiting_for"] == {
        "type": "quota",
        "quota": "monthly_tokens",
        "used": 120,
        "allowed": 100,
        "resets_at": datetime(next_month.year, next_month.month, 1, tzinfo=UTC).isoformat(),
    }
    await eventually(lambda: holds_nothing(loop, run_id))
    # Another run of the tenant waits before its first model call.
    second = await loop.start(scripted(turn(1, 1, text="also done")))
    assert (await loop.until(second, "waiting"))["waiting_for"]["used"] == 120

    await set_quotas(loop, monthly_tokens=1000)

    await loop.until(run_id, "completed")
    await loop.until(second, "completed")
    kinds = [(e["type"], e["data"].get("status")) for e in await loop.events(run_id)]
    waited = kinds.index(("run.waiting", None))
    assert kinds[waited + 1 : waited + 3] == [("run.status", "queued"), ("run.status", "running")]
    assert (await loop.api.get("/v1/usage")).json()["total"]["tokens"] == 142


async def test_a_run_at_the_monthly_cost_ceiling_waits_too(database_url: str, tmp_path: Path) -> None:
    prices = {"scripted": {"input_per_mtok": 1_000_000, "output_per_mtok": 0}}  # a dollar a token
    async with Loop(database_url, tmp_path, model_prices=prices) as loop:
        await set_quotas(loop, monthly_cost_usd=2.5)
        agent = scripted(turn(3, 0, tool_calls=[call("bash", command="true")]), turn(1, 0, text="done"))
        run_id = await loop.start(agent)

        run = await loop.until(run_id, "waiting")
        assert (run["waiting_for"]["quota"], run["waiting_for"]["used"]) == ("monthly_cost_usd", 3.0)
        await set_quotas(loop, monthly_cost_usd=10)
        assert (await loop.until(run_id, "completed"))["cost_usd"] == 4.0


async def test_a_quota_wait_ends_with_the_month(loop: Loop) -> None:
    over = await loop.create_unwoken(scripted(turn(1, 1, text="new month")))
    current = await loop.create_unwoken(scripted(turn(1, 1, text="not yet")))
    now = datetime.now(UTC)
    for run_id, resets_at in ((over, now - timedelta(seconds=1)), (current, now + timedelta(days=1))):
        waiting = payloads.RunWaiting.parse(
            {
                "waiting_for": {
                    "type": "quota",
                    "quota": "monthly_tokens",
                    "used": 10,
                    "allowed": 10,
                    "resets_at": resets_at.isoformat(),
                }
            }
        )
        changes = {"status": RunStatus.WAITING, "waiting_for": waiting.dump()["waiting_for"]}
        async with autocommit(loop.engine).connect() as conn:
            await event_log.append(conn, event_log.Append(run_id, (event_log.NewEvent.of(waiting),), changes))
    assert loop.brain is not None

    await loop.brain.requeue_reset_quotas()

    assert (await loop.until(over, "completed"))["result"] == "new month"
    assert (await loop.run(current))["status"] == "waiting"
