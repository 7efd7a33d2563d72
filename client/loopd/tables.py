"""Rich tables for the listing commands (`runs`, `show`, `artifacts`, `agents`, `hands`, and the
teams commands `keys list`, `tenants list|show` and `audit`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopd.models import (
    Agent,
    ApiKey,
    Artifact,
    AuditEntry,
    Budget,
    HandsWorker,
    Run,
    Tenant,
    TenantQuotas,
)
from loopd.text import clip, compact_json, number
from loopd.waiting import waiting_lines

KEY_STATE_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}
STATUS_STYLES = {
    "queued": "blue",
    "running": "cyan",
    "waiting": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "red",
}


def when(moment: datetime | None) -> str:
    """A timestamp in the viewer's local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _outcome(run: Run) -> str:
    if run.waiting_for is not None:
        return f"waiting for {run.waiting_for.type.replace('_', ' ')}"
    if run.error is not None:
        return f"{run.error.code}: {clip(run.error.message, 60)}"
    return clip(run.result, 60)


def runs_table(runs: Iterable[Run]) -> Table:
    table = Table("run", "status", "agent", "step", "tokens in/out", "tools", "created", "outcome")
    for run in runs:
        agent = run.agent_id or run.model or "inline"
        if run.agent_id and run.agent_version:
            agent += f"@{run.agent_version}"
        table.add_row(
            run.id, status_text(run.status), agent, str(run.step),
            f"{run.usage.input_tokens}/{run.usage.output_tokens}", str(run.usage.tool_calls),
            when(run.created_at), _outcome(run),
        )  # fmt: skip
    table.columns[0].no_wrap = True
    return table


def budget_text(budget: Budget) -> str:
    """`max_steps 50, max_cost_usd 2`, leaving out limits that are not set."""
    limits = budget.model_dump(exclude_none=True)
    return ", ".join(f"{key} {number(value)}" for key, value in limits.items()) or "no limits"


def run_details(run: Run) -> RenderableType:
    """The run as `key  value` rows; a waiting run ends with what it waits for and how to unblock it."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    agent = f"{run.agent_id} version {run.agent_version}" if run.agent_id else "inline spec"
    rows: list[tuple[str, str | Text]] = [
        ("run", run.id),
        ("status", status_text(run.status)),
        ("agent", agent + (f" ({run.model})" if run.model else "")),
        ("step", str(run.step)),
        ("usage", f"{run.usage.input_tokens} input tokens, {run.usage.output_tokens} output tokens, "
                  f"{run.usage.tool_calls} tool calls"),
        ("created", when(run.created_at)),
        ("updated", when(run.updated_at)),
        ("ended", when(run.ended_at)),
    ]  # fmt: skip
    if run.budget is not None:
        rows.append(("budget", budget_text(run.budget)))
    if run.parent_run_id:
        rows.append(("parent", run.parent_run_id))
    if run.forked_from is not None:
        rows.append(("forked from", f"{run.forked_from.run_id} at seq {run.forked_from.seq}"))
    if run.metadata:
        rows.append(("metadata", json.dumps(run.metadata, ensure_ascii=False)))
    if run.input is not None:
        rows.append(("input", run.input))
    if run.result is not None:
        rows.append(("result", run.result))
    if run.error is not None:
        rows.append(("error", Text(f"{run.error.code}: {run.error.message}", style="red")))
    for key, value in rows:
        grid.add_row(key, value)
    if run.waiting_for is None:
        return grid
    hints = waiting_lines(run.waiting_for.model_dump(mode="json", exclude_unset=True), run.id)
    return Group(grid, Text(""), *(Text(line, style="yellow") for line in hints))


def artifacts_table(artifacts: Iterable[Artifact]) -> Table:
    table = Table("path", "size", "sha256")
    for artifact in artifacts:
        size = str(artifact.size) if artifact.size is not None else "-"
        table.add_row(artifact.path, size, artifact.sha256 or "-")
    table.columns[2].no_wrap = True
    return table


def agents_table(agents: Iterable[Agent]) -> Table:
    table = Table("agent", "version", "name", "model", "tools", "created")
    for agent in agents:
        table.add_row(
            agent.id, str(agent.version), agent.name or "-", agent.model or "-",
            ", ".join(agent.tools), when(agent.created_at),
        )  # fmt: skip
    table.columns[0].no_wrap = True
    return table


def hands_table(workers: Iterable[HandsWorker]) -> Table:
    table = Table("hands", "state", "slots busy/total", "sandboxes")
    for worker in workers:
        busy = f"{worker.slots_total - worker.slots_free}/{worker.slots_total}"
        table.add_row(worker.hands_id, worker.state, busy, str(worker.sandbox_count))
    table.columns[0].no_wrap = True
    return table


def keys_table(keys: Iterable[ApiKey]) -> Table:
    now = datetime.now(UTC)
    table = Table("key", "name", "role", "prefix", "state", "created", "expires")
    for key in keys:
        state = key.state(now)
        table.add_row(
            key.id, key.name, key.role, key.prefix, Text(state, style=KEY_STATE_STYLES.get(state, "")),
            when(key.created_at), when(key.expires_at) if key.expires_at else "never",
        )  # fmt: skip
    table.columns[0].no_wrap = True
    return table


def quotas_text(quotas: TenantQuotas) -> str:
    """`max_running_runs 4, monthly_tokens 1000000`, or `no quotas`."""
    limits = quotas.model_dump(exclude_none=True)
    return ", ".join(f"{key} {number(value)}" for key, value in limits.items()) or "no quotas"


def tenants_table(tenants: Iterable[Tenant]) -> Table:
    table = Table("tenant", "name", "quotas", "created")
    for tenant in tenants:
        table.add_row(tenant.id, tenant.name, quotas_text(tenant.quotas), when(tenant.created_at))
    table.columns[0].no_wrap = True
    return table


def tenant_details(tenant: Tenant) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("tenant", tenant.id)
    grid.add_row("name", tenant.name)
    for key, value in tenant.quotas.model_dump().items():
        grid.add_row(key, "no limit" if value is None else number(value))
    grid.add_row("created", when(tenant.created_at))
    return grid


def audit_table(entries: Iterable[AuditEntry]) -> Table:
    table = Table("id", "at", "key", "action", "object", "details")
    for entry in entries:
        details = compact_json(entry.details, 80) if entry.details else ""
        table.add_row(
            str(entry.id), when(entry.at), entry.key_id or "server", entry.action,
            f"{entry.object_type} {entry.object_id}", details,
        )  # fmt: skip
    return table
