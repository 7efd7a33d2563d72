"""`python -m services.local up|demo`: the same as `loopd-server up|demo`."""

import typer

from services.cli import demo, up

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The embedded local stack: `up` serves it, `demo` runs the demo agent on it.",
)
cli.command()(up)
cli.command()(demo)

if __name__ == "__main__":
    cli()
