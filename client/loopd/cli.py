"""The `loopd` command line: start, follow and inspect runs on a loopd server.

Every command is a thin wrapper over `loopd.Client`; failures become `error <code>: <message>` on
stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from loopd.access_cli import access_app
from loopd.calls import DEFAULT_URL
from loopd.cli_context import (
    EXIT_ERROR,
    AsJson,
    Connection,
    Follow,
    MaxCostUsd,
    MaxSteps,
    MaxTokens,
    MaxWallTime,
    RunId,
    budget_limits,
    client_for,
)
from loopd.config import CONFIG_ENV, default_path
from loopd.console import err, io_error, out, print_error
from loopd.control_cli import control_app
from loopd.environments_cli import environments_app, secrets_app
from loopd.errors import LoopdAPIError, LoopdError
from loopd.follow import download_all, follow_events, follow_run
from loopd.models import RUN_STATUSES
from loopd.render import event_text
from loopd.spec import load_agent_spec, parse_metadata, to_yaml
from loopd.tables import agents_table, artifacts_table, hands_table, run_details, runs_table
from loopd.tenants_cli import tenants_app
from loopd.usage_cli import usage_app

EXIT_INTERRUPTED = 130
NO_KEY_HINT = (
    "give a key with --api-key or LOOPD_API_KEY, or keep one with `loopd login`; "
    "the local stack (`loopd-server up`) keeps its own for this machine"
)


class LoopdGroup(TyperGroup):
    """Renders loopd and file-system errors from any subcommand as one line instead of a traceback."""

    # The base class is typed with typer's private click fork; typer.Context is the public subclass.
    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LoopdError as error:
            print_error(error)
            if isinstance(error, LoopdAPIError) and error.code == "missing_api_key":
                err().print(Text(NO_KEY_HINT, style="dim"), soft_wrap=True)
        except BrokenPipeError:
            # The reader went away (`loopd logs RUN | head`): stop quietly, and keep the interpreter
            # from failing again when it flushes stdout on exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as error:
            print_error(io_error(error))
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        raise typer.Exit(EXIT_ERROR)


app = typer.Typer(
    cls=LoopdGroup,
    name="loopd",
    help="Run and watch long-lived AI agents on a loopd server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agent_app = typer.Typer(help="Store and inspect versioned agent specs.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
# approve, deny, reply, interrupt, budget, tool-result, fork and diff: top-level commands.
app.add_typer(control_app)
# login, logout, keys and audit; tenants.
app.add_typer(access_app)
app.add_typer(tenants_app, name="tenants")
app.add_typer(usage_app)
app.add_typer(environments_app, name="environments")
app.add_typer(secrets_app, name="secrets")


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="LOOPD_URL", help="loopd gateway URL.")] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            "--token",
            envvar=["LOOPD_API_KEY", "LOOPD_TOKEN"],
            help="API key (lk_...); else the config file's key for --url.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar=CONFIG_ENV,
            help="Keys per gateway; else $XDG_CONFIG_HOME/loopd/config.json or ~/.config/loopd/config.json.",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = Connection(url, api_key, config or default_path())


@app.command()
def run(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(metavar="TASK", help="What the agent should do.")],
    agent: Annotated[
        Path | None, typer.Option("--agent", "-a", help="Inline agent spec (YAML file).")
    ] = None,
    agent_id: Annotated[str | None, typer.Option(help="A stored agent instead of --agent.")] = None,
    agent_version: Annotated[int | None, typer.Option(help="Version of --agent-id; latest if unset.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Print events until the run ends.")] = False,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", metavar="KEY=VALUE", help="Repeatable.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retrying with the same key starts no new run.")
    ] = None,
    max_steps: MaxSteps = None,
    max_tokens: MaxTokens = None,
    max_cost_usd: MaxCostUsd = None,
    max_wall_time: MaxWallTime = None,
    environment: Annotated[
        str | None,
        typer.Option(metavar="ID[:VERSION]", help="Run in this environment instead of the agent's own."),
    ] = None,
) -> None:
    """Start a run and print its id; with --follow, exit 0 if it completes and 1 if not.

    The --max-* options override the agent's limits for this run only.
    """
    if (agent is None) == (agent_id is None):
        raise typer.BadParameter("give exactly one of --agent FILE or --agent-id ID", param_hint="--agent")
    if agent_version is not None and agent_id is None:
        raise typer.BadParameter("needs --agent-id", param_hint="--agent-version")
    spec = load_agent_spec(agent) if agent is not None else None
    with client_for(ctx) as client:
        created = client.create_run(
            task, agent=spec, agent_id=agent_id, agent_version=agent_version,
            metadata=parse_metadata(metadata or []), idempotency_key=idempotency_key,
            budget=budget_limits(max_steps, max_tokens, max_cost_usd, max_wall_time) or None,
            environment=_environment_ref(environment),
        )  # fmt: skip
        typer.echo(created.id)
        if follow:
            raise typer.Exit(follow_run(client, created.id))


@app.command("runs")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(RUN_STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """List runs."""
    with client_for(ctx) as client:
        page = client.list_runs(status=status, limit=limit)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
    else:
        out().print(runs_table(page.data))


@app.command()
def show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="RUN")], as_json: AsJson = False
) -> None:
    """Show one run: status, usage, result or error, and what a waiting run waits for."""
    with client_for(ctx) as client:
        found = client.get_run(run_id)
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
    else:
        out().print(run_details(found))


@app.command()
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    after: Annotated[int, typer.Option(min=0, metavar="SEQ", help="Only events after this seq.")] = 0,
) -> None:
    """Print a run's events, one line each."""
    with client_for(ctx) as client:
        if follow:
            follow_events(client, run_id, after=after)
            return
        for event in client.iter_events(run_id, after=after):
            out().print(event_text(event, run_id=run_id), soft_wrap=True)


@app.command()
def artifacts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    download: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Save every artifact under DIR.")
    ] = None,
) -> None:
    """List a run's artifacts, or download them all with their sha256 checked."""
    with client_for(ctx) as client:
        if download is None:
            out().print(artifacts_table(client.list_artifacts(run_id)))
        elif not download_all(client, run_id, download):
            raise typer.Exit(EXIT_ERROR)


@app.command()
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    reason: Annotated[str | None, typer.Option(help="Recorded in the run.cancelled event.")] = None,
) -> None:
    """Cancel a run."""
    with client_for(ctx) as client:
        cancelled = client.cancel_run(run_id, reason=reason)
    typer.echo(f"{cancelled.id} {cancelled.status}")


@app.command()
def send(
    ctx: typer.Context,
    run_id: RunId,
    message: Annotated[str, typer.Argument(metavar="MESSAGE", help="What to tell the agent.")],
    follow: Follow = False,
) -> None:
    """Send a message to a run; a waiting or finished run picks it up."""
    with client_for(ctx) as client:
        updated = client.send_message(run_id, message)
        typer.echo(f"{updated.id} {updated.status}")
        if follow:
            raise typer.Exit(follow_run(client, run_id, after=updated.last_seq or 0))


@app.command()
def hands(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the hands workers, their slots and how many sandboxes they hold."""
    with client_for(ctx) as client:
        workers = client.list_hands()
    if as_json:
        typer.echo(_json_list(workers))
    else:
        out().print(hands_table(workers))


@app.command("agents")
def list_agents(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: AsJson = False,
) -> None:
    """List stored agents (latest version of each)."""
    with client_for(ctx) as client:
        page = client.list_agents(limit=limit)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
    else:
        out().print(agents_table(page.data))


@agent_app.command("create")
def create_agent(
    ctx: typer.Context,
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC.yaml")],
    agent_id: Annotated[str | None, typer.Option("--id", help="Choose the id; generated if unset.")] = None,
) -> None:
    """Store an agent spec as version 1 of a new agent; prints `ID VERSION`."""
    spec = load_agent_spec(spec_file)
    with client_for(ctx) as client:
        created = client.create_agent(spec, agent_id=agent_id)
    typer.echo(f"{created.id} {created.version}")


@agent_app.command("update")
def update_agent(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(metavar="ID")],
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC.yaml")],
) -> None:
    """Store a spec as the agent's next version; prints `ID VERSION`."""
    spec = load_agent_spec(spec_file)
    with client_for(ctx) as client:
        updated = client.update_agent(agent_id, spec)
    typer.echo(f"{updated.id} {updated.version}")


@agent_app.command("show")
def show_agent(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(metavar="ID")],
    version: Annotated[int | None, typer.Option(help="Latest if unset.")] = None,
) -> None:
    """Print a stored agent spec as YAML."""
    with client_for(ctx) as client:
        found = client.get_agent(agent_id, version=version)
    typer.echo(to_yaml(found.model_dump(mode="json")), nl=False)


def _environment_ref(given: str | None) -> dict[str, Any] | None:
    """`ID` (its latest version when the run starts) or `ID:VERSION` as the API's environment."""
    if given is None:
        return None
    environment_id, _, version = given.partition(":")
    if not environment_id or (version and not version.isdigit()):
        raise typer.BadParameter("give ID or ID:VERSION", param_hint="--environment")
    return {"id": environment_id, **({"version": int(version)} if version else {})}


def _json_list(items: list[Any]) -> str:
    return json.dumps({"data": [item.model_dump(mode="json") for item in items]}, indent=2)
