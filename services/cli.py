"""`loopd-server`: run one loopd role, the embedded local stack, or the database migrations.

Settings come from LOOPD_* environment variables (services/core/settings.py). Each command imports its
role only when it runs, so the brain never loads the Docker SDK and `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEMO_AGENT = Path("examples/agents/demo.yaml")
DEMO_TASK = "Write a small Python module with tests in /workspace, run the tests, and summarise."

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run one loopd role, the embedded local stack, or the database migrations. "
    "Settings come from LOOPD_* environment variables.",
)


@app.command()
def gateway() -> None:
    """Serve the REST API on LOOPD_HOST:LOOPD_PORT; drains on SIGTERM."""
    from services.gateway.main import main

    main()


@app.command()
def brain() -> None:
    """Step runs from the event log until SIGTERM, then finish the steps in flight."""
    from services.brain.main import main

    main()


@app.command()
def hands() -> None:
    """Run tool calls in Docker sandboxes over gRPC until SIGTERM, then drain the calls in flight."""
    from services.hands.main import main

    main()


@app.command()
def up() -> None:
    """Serve every role in one process on embedded PostgreSQL, until interrupted."""
    from services.local.main import up as serve_local

    serve_local()


@app.command()
def demo(
    task: Annotated[str, typer.Option(help="what the demo agent is asked to do")] = DEMO_TASK,
    agent: Annotated[Path, typer.Option(help="the agent spec to run")] = DEMO_AGENT,
) -> None:
    """Start the local stack, run the demo agent to completion with live events, then stop."""
    from services.local.main import demo as run_demo

    raise typer.Exit(run_demo(task, agent))


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="the Alembic revision to upgrade to")] = "head",
) -> None:
    """Apply the database migrations to LOOPD_DATABASE_URL, then exit (for LOOPD_MIGRATE_ON_START=false)."""
    from services.core.db.migrate import upgrade
    from services.core.process import configure_logging
    from services.core.settings import Settings

    configure_logging()
    upgrade(Settings().database_url, revision)
    typer.echo(f"database migrated to {revision}")


@app.command("wait-for-schema")
def wait_for_schema(
    timeout: Annotated[float, typer.Option(help="seconds to wait before giving up (exit 1)")] = 600.0,
) -> None:
    """Wait until LOOPD_DATABASE_URL's schema holds this version's migrations, which a separate
    `loopd-server migrate` applies (a Kubernetes init container, before a role starts)."""
    import time

    from services.core.db.migrate import migrated
    from services.core.settings import Settings

    url, deadline = Settings().database_url, time.monotonic() + timeout
    while True:
        try:
            if migrated(url):
                typer.echo("database schema is up to date")
                return
            why = "migrations not applied yet"
        except Exception as error:  # the database may still be starting
            why = f"database unreachable ({type(error).__name__})"
        if time.monotonic() > deadline:
            typer.echo(f"gave up after {timeout:g}s: {why}", err=True)
            raise typer.Exit(1)
        typer.echo(f"waiting: {why}")
        time.sleep(2)
