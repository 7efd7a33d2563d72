"""The commands about who may do what: `loopd login|logout`, `loopd keys` and `loopd audit`
(`loopd tenants` is in `loopd.tenants_cli`). `loopd.cli` adds them to the root command.

A key is shown once, so the commands that make one print it alone on stdout (`KEY=$(loopd keys
create ci)` captures just it) and say what it is on stderr.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.text import Text

from loopd.calls import AuditQuery
from loopd.cli_context import AsJson, Connection, client_for, connection
from loopd.console import err, out
from loopd.models import NewApiKey
from loopd.tables import audit_table, keys_table

access_app = typer.Typer()
keys_app = typer.Typer(help="Make, list and revoke API keys of your tenant (admins).", no_args_is_help=True)
access_app.add_typer(keys_app, name="keys")


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


RoleOption = Annotated[Role, typer.Option(help="viewer reads, member also acts, admin also governs.")]
ExpiresAt = Annotated[
    str | None, typer.Option(metavar="WHEN", help="ISO 8601 date or time; local time unless it says.")
]
ExpiresIn = Annotated[str | None, typer.Option(metavar="DURATION", help="e.g. 90d, 12h, 30m.")]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def expiry(expires_at: str | None, expires_in: str | None) -> datetime | None:
    """When a new key should stop working, from --expires-at or --expires-in (not both)."""
    if expires_at is not None and expires_in is not None:
        raise typer.BadParameter("give --expires-at or --expires-in, not both", param_hint="--expires-in")
    if expires_in is not None:
        match = _DURATION.match(expires_in)
        if match is None:
            raise typer.BadParameter(f"must look like 90d, 12h or 30m, got {expires_in!r}")
        return datetime.now(UTC) + timedelta(**{_UNITS[match[2]]: int(match[1])})
    if expires_at is None:
        return None
    try:
        moment = datetime.fromisoformat(expires_at)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {expires_at!r}") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def show_new_key(created: NewApiKey, as_json: bool, what: str) -> None:
    if as_json:
        typer.echo(json.dumps(created.model_dump(mode="json"), indent=2))
        return
    typer.echo(created.key)
    note = f"{what} {created.id} ({created.role} of tenant {created.tenant}): shown this once, keep it now"
    err().print(Text(note, style="dim"), soft_wrap=True)


@access_app.command()
def login(
    ctx: typer.Context,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="The key; asked for (hidden) if not given.")
    ] = None,
) -> None:
    """Check a key against the gateway (--url) and keep it in the config file for that gateway."""
    given = connection(ctx)
    key = api_key or given.api_key or typer.prompt("API key", hide_input=True).strip()
    # A call every role may make: it shows the key is known and not revoked or expired.
    with Connection(given.url, key, given.config_path).client() as client:
        client.list_runs(limit=1)
    given.config.store_key(given.url, key)
    typer.echo(f"saved the key for {given.url} in {given.config_path}")


@access_app.command()
def logout(ctx: typer.Context) -> None:
    """Remove the config file's key for the gateway (--url)."""
    given = connection(ctx)
    removed = given.config.forget(given.url)
    typer.echo(f"{'removed' if removed else 'there was no'} key for {given.url} in {given.config_path}")


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the key is for, e.g. ci-nightly.")],
    role: RoleOption = Role.MEMBER,
    expires_at: ExpiresAt = None,
    expires_in: ExpiresIn = None,
    as_json: AsJson = False,
) -> None:
    """Make a key of your tenant and print it: it is shown this once."""
    until = expiry(expires_at, expires_in)
    with client_for(ctx) as client:
        created = client.create_key(name, role=role.value, expires_at=until)
    show_new_key(created, as_json, "key")


@keys_app.command("list")
def list_keys(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List your tenant's keys, revoked and expired ones too (never the keys themselves)."""
    with client_for(ctx) as client:
        found = client.list_keys()
    if as_json:
        typer.echo(json_list(found))
    else:
        out().print(keys_table(found))


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke a key: every gateway refuses it from the next request on."""
    with client_for(ctx) as client:
        revoked = client.revoke_key(key_id)
    typer.echo(f"{revoked.id} revoked")


@access_app.command()
def audit(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option(help="e.g. run.cancelled, key.created.")] = None,
    object_type: Annotated[str | None, typer.Option(help="run, agent, key or tenant.")] = None,
    object_id: Annotated[str | None, typer.Option(help="One object's entries, e.g. a run id.")] = None,
    key_id: Annotated[str | None, typer.Option(help="What one key did.")] = None,
    after: Annotated[int, typer.Option(min=0, metavar="ID", help="Only entries after this id.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries per page.")] = 100,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just the first.")] = False,
    as_json: AsJson = False,
) -> None:
    """Read your tenant's audit log, oldest first: who did what to which object (admins)."""
    query = AuditQuery(action, object_type, object_id, key_id, after, limit)
    with client_for(ctx) as client:
        if every:
            entries, next_after = list(client.iter_audit(query)), None
        else:
            page = client.read_audit(query)
            entries, next_after = page.data, page.next_after
    if as_json:
        data = [entry.model_dump(mode="json") for entry in entries]
        typer.echo(json.dumps({"data": data, "next_after": next_after}, indent=2))
        return
    out().print(audit_table(entries))
    if next_after is not None:
        err().print(Text(f"more entries: add --after {next_after}, or --all for every page", style="dim"))


def json_list(items: list[Any]) -> str:
    return json.dumps({"data": [item.model_dump(mode="json") for item in items]}, indent=2)
