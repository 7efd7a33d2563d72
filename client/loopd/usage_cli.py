"""`loopd usage`: what the key's tenant used (tokens, cost, tool calls, sandbox seconds) per agent and per
UTC day; `loopd.cli` adds it as a top-level command."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopd.cli_context import AsJson, client_for
from loopd.console import out
from loopd.models import UsageReport, UsageTotals
from loopd.text import number

usage_app = typer.Typer()

Day = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="A UTC day; both ends are included."),
]


@usage_app.command()
def usage(
    ctx: typer.Context,
    since: Day = None,
    until: Day = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Every tenant's usage (admins of the root tenant).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show tokens, cost, tool calls and sandbox seconds per agent and per day (default: this month)."""
    with client_for(ctx) as client:
        report = client.usage(since=_day(since), until=_day(until), all_tenants=all_tenants)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        out().print(usage_tables(report))


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment is not None else None


COLUMNS = ("tokens in/out", "cost USD", "tool calls", "sandbox s")


def _figures(totals: UsageTotals) -> tuple[str, ...]:
    return (
        f"{totals.input_tokens}/{totals.output_tokens}",
        number(totals.cost_usd),
        str(totals.tool_calls),
        number(round(totals.sandbox_seconds, 1)),
    )


def _table(keys: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], UsageTotals]]) -> Table:
    table = Table(*keys, *COLUMNS)
    for labels, totals in rows:
        table.add_row(*labels, *_figures(totals))
    return table


def usage_tables(report: UsageReport) -> RenderableType:
    """The range and its totals, then a table per agent and one per day (each per tenant too, for
    every tenant's usage)."""
    total = report.total
    whose = f"tenant {report.tenant}" if report.tenant is not None else "every tenant"
    heading = Text(
        f"usage of {whose} from {report.since} to {report.until}: {total.tokens} tokens,"
        f" {number(total.cost_usd)} USD, {total.tool_calls} tool calls,"
        f" {number(round(total.sandbox_seconds, 1))} sandbox seconds"
    )
    tenant: tuple[str, ...] = ("tenant",) if report.tenant is None else ()

    def labels(row_tenant: str, value: str) -> tuple[str, ...]:
        return (row_tenant, value) if tenant else (value,)

    parts: list[RenderableType] = [heading]
    if tenant:
        parts.append(_table(tenant, (((t.tenant,), t) for t in report.tenants)))
    agents = ((labels(a.tenant, a.agent_id or "(inline spec)"), a) for a in report.agents)
    parts.append(_table((*tenant, "agent"), agents))
    parts.append(_table((*tenant, "day"), ((labels(d.tenant, d.day.isoformat()), d) for d in report.days)))
    return Group(*parts)
