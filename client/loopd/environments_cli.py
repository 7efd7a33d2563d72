"""`loopd environments create|version|list|show|versions|archive` and `loopd secrets set|list|delete`.

A spec is a YAML or JSON file (the fields of docs/environments.md). A secret's value is read from
stdin or `--from-file`, never from the command line, where shell history and `ps` would keep it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from loopd.cli_context import AsJson, client_for
from loopd.console import err, out
from loopd.errors import LoopdError, SpecError
from loopd.models import Environment, EnvironmentVersion, Secret
from loopd.tables import when

environments_app = typer.Typer(
    help="Versioned sandboxes for runs: image, limits, network.", no_args_is_help=True
)
secrets_app = typer.Typer(
    help="Secrets environments put on requests; values are never shown.", no_args_is_help=True
)

EnvironmentId = Annotated[str, typer.Argument(metavar="ID")]
SpecFile = Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="The spec, as YAML or JSON.")]


def load_spec(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML or JSON: {error}") from None
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise SpecError(f"{path} must be a mapping of an environment's fields")
    return spec


def _network(network: dict[str, Any]) -> str:
    policy = str(network.get("policy", "none"))
    hosts = [str(rule.get("pattern")) for rule in network.get("hosts") or []]
    hosts += [f"registry:{name}" for name in network.get("package_registries") or []]
    return f"{policy} {', '.join(hosts)}".strip()


def environments_table(environments: Iterable[Environment]) -> Table:
    table = Table("environment", "name", "version", "runtime", "network", "secrets", "created")
    for env in environments:
        table.add_row(
            env.id,
            env.name,
            str(env.version),
            env.runtime,
            _network(env.network),
            str(len(env.secrets)),
            when(env.created_at),
        )
    return table


def versions_table(versions: Iterable[EnvironmentVersion]) -> Table:
    table = Table("version", "runtime", "network", "created")
    for version in versions:
        table.add_row(
            str(version.version), version.runtime, _network(version.network), when(version.created_at)
        )
    return table


def secrets_table(secrets: Iterable[Secret]) -> Table:
    table = Table("secret", "created", "updated")
    for secret in secrets:
        table.add_row(secret.name, when(secret.created_at), when(secret.updated_at))
    return table


def _show(environment: Environment, as_json: bool) -> None:
    if as_json:
        typer.echo(environment.model_dump_json(indent=2))
    else:
        typer.echo(yaml.safe_dump(environment.model_dump(mode="json"), sort_keys=False), nl=False)


@environments_app.command("create")
def create_environment(
    ctx: typer.Context,
    spec_file: SpecFile,
    environment_id: Annotated[
        str | None, typer.Option("--id", help="Choose the id; generated if unset.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A readable name; the file's stem if unset.")] = None,
    as_json: AsJson = False,
) -> None:
    """Store an environment as version 1; prints `ID VERSION`."""
    spec = load_spec(spec_file)
    spec.setdefault("name", name or spec_file.stem)
    if environment_id is not None:
        spec["id"] = environment_id
    with client_for(ctx) as client:
        created = client.create_environment(spec)
    if as_json:
        typer.echo(created.model_dump_json(indent=2))
    else:
        typer.echo(f"{created.id} {created.version}")


@environments_app.command("version")
def new_version(ctx: typer.Context, environment_id: EnvironmentId, spec_file: SpecFile) -> None:
    """Store a whole spec as the environment's next version; prints `ID VERSION`."""
    spec = load_spec(spec_file)
    with client_for(ctx) as client:
        made = client.new_environment_version(environment_id, spec)
    typer.echo(f"{made.id} {made.version}")


@environments_app.command("list")
def list_environments(
    ctx: typer.Context,
    include_archived: Annotated[bool, typer.Option("--archived", help="Archived ones too.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended.")] = None,
    as_json: AsJson = False,
) -> None:
    """List the tenant's environments at their latest versions, one page at a time."""
    with client_for(ctx) as client:
        page = client.list_environments(include_archived=include_archived, limit=limit, cursor=cursor)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    out().print(environments_table(page.data))
    if page.next_cursor is not None:
        # On stderr, so the table alone is what a pipe reads; the next page needs the same filter.
        archived = " --archived" if include_archived else ""
        err().print(f"more: loopd environments list{archived} --limit {limit} --cursor {page.next_cursor}")


@environments_app.command("show")
def show_environment(
    ctx: typer.Context,
    environment_id: EnvironmentId,
    version: Annotated[int | None, typer.Option(help="Latest if unset.")] = None,
    as_json: AsJson = False,
) -> None:
    """Print an environment's version (the latest unless --version) as YAML."""
    with client_for(ctx) as client:
        _show(client.get_environment(environment_id, version=version), as_json)


@environments_app.command("versions")
def list_versions(ctx: typer.Context, environment_id: EnvironmentId, as_json: AsJson = False) -> None:
    """List an environment's versions, newest first."""
    with client_for(ctx) as client:
        found = client.list_environment_versions(environment_id)
    if as_json:
        typer.echo(json.dumps({"data": [v.model_dump(mode="json") for v in found]}, indent=2))
    else:
        out().print(versions_table(found))


@environments_app.command("archive")
def archive_environment(ctx: typer.Context, environment_id: EnvironmentId) -> None:
    """Archive an environment: no new run may name it; runs started in it keep it."""
    with client_for(ctx) as client:
        archived = client.archive_environment(environment_id)
    typer.echo(f"{archived.id} archived")


def read_value(from_file: Path | None) -> str:
    """The secret's value from a file or stdin, without the one newline files and `echo` end with."""
    if from_file is not None:
        raw = from_file.read_text(encoding="utf-8")
    elif sys.stdin.isatty():
        raise LoopdError(
            "pipe the value in (e.g. `loopd secrets set NAME < file`) or give --from-file", code="no_value"
        )
    else:
        raw = sys.stdin.read()
    value = raw[:-1] if raw.endswith("\n") else raw
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise LoopdError("the secret's value is empty", code="empty_value")
    return value


@secrets_app.command("set")
def set_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", metavar="PATH", help="Read the value from a file; else stdin."),
    ] = None,
) -> None:
    """Store or replace a secret; the value comes from stdin or --from-file, never the command line."""
    value = read_value(from_file)
    with client_for(ctx) as client:
        stored = client.set_secret(name, value)
    typer.echo(f"{stored.name} stored")


@secrets_app.command("list")
def list_secrets(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the tenant's secrets by name (never their values)."""
    with client_for(ctx) as client:
        found = client.list_secrets()
    if as_json:
        typer.echo(json.dumps({"data": [s.model_dump(mode="json") for s in found]}, indent=2))
    else:
        out().print(secrets_table(found))


@secrets_app.command("delete")
def delete_secret(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete a secret (refused while an environment's latest version names it)."""
    with client_for(ctx) as client:
        client.delete_secret(name)
    typer.echo(f"{name} deleted")
