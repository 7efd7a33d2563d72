"""What each run used on each UTC day: tokens, cost, tool calls and sandbox seconds. Every statement on
`usage` lives here.

A row is only added to by the append that used what it counts: core/events.py puts `upsert_cte` in
its one statement, so usage commits with the events or not at all. There is one row per run and day,
so concurrent runs never contend for a row; reports and the monthly ceilings add rows up.

Usage is what was spent: a fork starts with its source's counters on its run row, but its usage
rows count only what the fork itself used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Row, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import payloads
from services.core.db.schema import usage

# Run-row counters that are usage too: an append that increments one adds as much to usage.
COUNTED = ("input_tokens", "output_tokens", "cost_usd", "tool_calls")
SANDBOX_SECONDS = "sandbox_seconds"
_SQL_TYPES = {
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "tool_calls": "bigint",
    "cost_usd": "double precision",
    SANDBOX_SECONDS: "double precision",
}


def measure(
    increments: Mapping[str, float], new_events: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, float]:
    """What one append uses (only what is not zero): its increments of the counted run-row columns,
    and the time its tool results spent in a sandbox (their `duration_ms`, which hands measures
    from restoring the workspace to its snapshot; results settled without a sandbox carry 0)."""
    used = {name: increments[name] for name in COUNTED if increments.get(name)}
    durations = (data.get("duration_ms") for kind, data in new_events if kind == payloads.ToolResult.TYPE)
    milliseconds = sum(d for d in durations if isinstance(d, int | float) and not isinstance(d, bool))
    if milliseconds > 0:
        used[SANDBOX_SECONDS] = milliseconds / 1000
    return used


def upsert_cte(columns: tuple[str, ...], source: str) -> str:
    """A data-modifying CTE (`counted`) that adds `%(use_<column>)s` to today's row of the run.

    `source` is a CTE of the appended run's row: its id, tenant_id and agent_id, and `updated_at`,
    the transaction's clock, whose UTC date is the day counted.
    """
    if not columns or any(column not in _SQL_TYPES for column in columns):
        raise ValueError(f"usage counts {', '.join(_SQL_TYPES)}, not {columns}")
    names = ", ".join(columns)
    values = ", ".join(f"%(use_{column})s::{_SQL_TYPES[column]}" for column in columns)
    adds = ", ".join(f"{column} = usage.{column} + EXCLUDED.{column}" for column in columns)
    return (
        f"counted AS (INSERT INTO usage (run_id, day, tenant_id, agent_id, {names}) "
        f"SELECT {source}.id, ({source}.updated_at AT TIME ZONE 'UTC')::date, {source}.tenant_id,"
        f" {source}.agent_id, {values} FROM {source} "
        f"ON CONFLICT (run_id, day) DO UPDATE SET {adds})"
    )


@dataclass(frozen=True)
class Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    sandbox_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, row: Row[Any]) -> Totals:
        return cls(
            int(row.input_tokens),
            int(row.output_tokens),
            float(row.cost_usd),
            int(row.tool_calls),
            float(row.sandbox_seconds),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "tool_calls": self.tool_calls,
            "sandbox_seconds": round(self.sandbox_seconds, 3),
        }


_SUMS = tuple(func.coalesce(func.sum(usage.c[name]), 0).label(name) for name in (*COUNTED, SANDBOX_SECONDS))


def month_of(moment: datetime) -> date:
    """The first day of the calendar month (UTC) that `moment` is in."""
    return moment.astimezone(UTC).date().replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def month_to_date(conn: AsyncConnection, tenant_id: str, month: date) -> Totals:
    """What the tenant's runs used in the calendar month that starts on `month`."""
    query = select(*_SUMS).where(
        usage.c.tenant_id == tenant_id, usage.c.day >= month, usage.c.day < next_month(month)
    )
    return Totals.of((await conn.execute(query)).one())


@dataclass(frozen=True)
class Report:
    """Usage between two days (both included), per tenant, per tenant and agent, per tenant and day."""

    since: date
    until: date
    tenants: list[tuple[str, Totals]]
    agents: list[tuple[str, str | None, Totals]]
    days: list[tuple[str, date, Totals]]

    @property
    def total(self) -> Totals:
        parts = [totals for _, totals in self.tenants]
        return Totals(
            sum(t.input_tokens for t in parts),
            sum(t.output_tokens for t in parts),
            sum(t.cost_usd for t in parts),
            sum(t.tool_calls for t in parts),
            sum(t.sandbox_seconds for t in parts),
        )


async def report(conn: AsyncConnection, tenant_id: str | None, since: date, until: date) -> Report:
    """One tenant's usage (every tenant's with `tenant_id` None), in one pass over its rows."""
    # GROUPING() says which grouping a row belongs to: bit 1 is agent_id, bit 0 is day.
    grouping = func.grouping(usage.c.agent_id, usage.c.day).label("grouping")
    query = (
        select(usage.c.tenant_id, usage.c.agent_id, usage.c.day, grouping, *_SUMS)
        .where(usage.c.day >= since, usage.c.day <= until)
        .group_by(
            func.grouping_sets(
                tuple_(usage.c.tenant_id),
                tuple_(usage.c.tenant_id, usage.c.agent_id),
                tuple_(usage.c.tenant_id, usage.c.day),
            )
        )
        .order_by(usage.c.tenant_id, literal_column("grouping"), usage.c.agent_id.nulls_first(), usage.c.day)
    )
    if tenant_id is not None:
        query = query.where(usage.c.tenant_id == tenant_id)
    found = Report(since, until, [], [], [])
    for row in await conn.execute(query):
        totals = Totals.of(row)
        if row.grouping == 0b11:
            found.tenants.append((row.tenant_id, totals))
        elif row.grouping == 0b01:
            found.agents.append((row.tenant_id, row.agent_id, totals))
        else:
            found.days.append((row.tenant_id, row.day, totals))
    return found


def report_to_wire(found: Report, tenant_id: str | None) -> dict[str, Any]:
    return {
        "tenant": tenant_id,
        "since": found.since.isoformat(),
        "until": found.until.isoformat(),
        "total": found.total.to_wire(),
        "tenants": [{"tenant": tenant, **totals.to_wire()} for tenant, totals in found.tenants],
        "agents": [
            {"tenant": tenant, "agent_id": agent_id, **totals.to_wire()}
            for tenant, agent_id, totals in found.agents
        ],
        "days": [
            {"tenant": tenant, "day": day.isoformat(), **totals.to_wire()}
            for tenant, day, totals in found.days
        ],
    }
