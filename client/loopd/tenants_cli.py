"""`loopd tenants create|list|show|update|key`: the deployment's tenants, for its root tenant's admins.

`create` prints the new tenant's first admin key alone on stdout, as `loopd keys create` does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from loopd.access_cli import ExpiresAt, ExpiresIn, Role, RoleOption, expiry, json_list, show_new_key
from loopd.cli_context import AsJson, client_for
from loopd.console import out
from loopd.errors import LoopdError
from loopd.tables import tenant_details, tenants_table

tenants_app = typer.Typer(help="Create and manage tenants (admins of the root tenant).", no_args_is_help=True)

TenantId = Annotated[str, typer.Argument(metavar="TENANT")]
MaxRunningRuns = Annotated[
    int | None, typer.Option(min=1, metavar="N", help="Runs running at once; more wait in the queue.")
]
MaxSandboxes = Annotated[int | None, typer.Option(min=1, metavar="N", help="Sandboxes held at once.")]
MonthlyTokens = Annotated[
    int | None, typer.Option(min=0, metavar="N", help="Input plus output tokens per month (UTC).")
]
MonthlyCostUsd = Annotated[
    float | None, typer.Option(min=0, metavar="X", help="Model spend per month, in US dollars.")
]
QUOTA_NAMES = ("max_running_runs", "max_sandboxes", "monthly_tokens", "monthly_cost_usd")


def _quotas(**given: Any) -> dict[str, Any]:
    return {key: value for key, value in given.items() if value is not None}


@tenants_app.command("create")
def create_tenant(
    ctx: typer.Context,
    tenant_id: TenantId,
    name: Annotated[str | None, typer.Option(help="A readable name; the id if unset.")] = None,
    max_running_runs: MaxRunningRuns = None,
    max_sandboxes: MaxSandboxes = None,
    monthly_tokens: MonthlyTokens = None,
    monthly_cost_usd: MonthlyCostUsd = None,
    as_json: AsJson = False,
) -> None:
    """Create a tenant and print its first admin key: it is shown this once."""
    quotas = _quotas(
        max_running_runs=max_running_runs, max_sandboxes=max_sandboxes,
        monthly_tokens=monthly_tokens, monthly_cost_usd=monthly_cost_usd,
    )  # fmt: skip
    with client_for(ctx) as client:
        created = client.create_tenant(tenant_id, name=name, quotas=quotas or None)
    if as_json:
        typer.echo(json.dumps(created.model_dump(mode="json"), indent=2))
        return
    show_new_key(created.admin_key, False, f"tenant {created.id} created; its admin key")


@tenants_app.command("list")
def list_tenants(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the deployment's tenants and their quotas."""
    with client_for(ctx) as client:
        found = client.list_tenants()
    if as_json:
        typer.echo(json_list(found))
    else:
        out().print(tenants_table(found))


@tenants_app.command("show")
def show_tenant(ctx: typer.Context, tenant_id: TenantId, as_json: AsJson = False) -> None:
    """Show a tenant and its quotas."""
    with client_for(ctx) as client:
        found = client.get_tenant(tenant_id)
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
    else:
        out().print(tenant_details(found))


@tenants_app.command("update")
def update_tenant(
    ctx: typer.Context,
    tenant_id: TenantId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    max_running_runs: MaxRunningRuns = None,
    max_sandboxes: MaxSandboxes = None,
    monthly_tokens: MonthlyTokens = None,
    monthly_cost_usd: MonthlyCostUsd = None,
    unset: Annotated[
        list[str] | None, typer.Option(metavar="QUOTA", help="Lift a quota, e.g. monthly_tokens. Repeatable.")
    ] = None,
) -> None:
    """Rename a tenant or change some of its quotas; the quotas not named stay as they are."""
    changed = _quotas(
        max_running_runs=max_running_runs, max_sandboxes=max_sandboxes,
        monthly_tokens=monthly_tokens, monthly_cost_usd=monthly_cost_usd,
    )  # fmt: skip
    lifted = {item.replace("-", "_") for item in unset or []}
    if unknown := sorted(lifted - set(QUOTA_NAMES)):
        raise typer.BadParameter(
            f"no quota {unknown[0]!r}; quotas: {', '.join(QUOTA_NAMES)}", param_hint="--unset"
        )
    with client_for(ctx) as client:
        quotas = None
        if changed or lifted:
            # The API replaces quotas as a whole: start from the tenant's own, so the rest stay.
            current = client.get_tenant(tenant_id).quotas.model_dump(exclude_none=True)
            quotas = {k: v for k, v in {**current, **changed}.items() if k not in lifted}
        if name is None and quotas is None:
            raise LoopdError("name a new --name or a quota to change", code="nothing_to_update")
        updated = client.update_tenant(tenant_id, name=name, quotas=quotas)
    out().print(tenant_details(updated))


@tenants_app.command("key")
def create_tenant_key(
    ctx: typer.Context,
    tenant_id: TenantId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the key is for.")],
    role: RoleOption = Role.MEMBER,
    expires_at: ExpiresAt = None,
    expires_in: ExpiresIn = None,
    as_json: AsJson = False,
) -> None:
    """Make a key of another tenant, e.g. an admin key for one that lost its own; shown this once."""
    until = expiry(expires_at, expires_in)
    with client_for(ctx) as client:
        created = client.create_tenant_key(tenant_id, name, role=role.value, expires_at=until)
    show_new_key(created, as_json, "key")
