"""The commands that steer a run: answer what it waits for (approve, deny, reply, interrupt, budget,
tool-result) and travel in its time (fork, diff). `loopd.cli` adds them as top-level commands.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from loopd.cli_context import (
    AsJson,
    Follow,
    MaxCostUsd,
    MaxSteps,
    MaxTokens,
    MaxWallTime,
    RunId,
    budget_limits,
    client_for,
)
from loopd.client import Client
from loopd.console import out
from loopd.errors import LoopdError
from loopd.follow import follow_run
from loopd.models import Event, Run, RunDiff
from loopd.render import event_text

control_app = typer.Typer()

CallId = Annotated[str, typer.Argument(metavar="CALL", help="The tool call's id.")]


def _done(client: Client, updated: Run, follow: bool) -> None:
    """Print `RUN STATUS`; with --follow, go on to print the run's events until it ends."""
    typer.echo(f"{updated.id} {updated.status}")
    if follow:
        raise typer.Exit(follow_run(client, updated.id, after=updated.last_seq or 0))


@control_app.command()
def approve(
    ctx: typer.Context,
    run_id: RunId,
    call_id: CallId,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="A note passed on to the model.")
    ] = None,
    follow: Follow = False,
) -> None:
    """Let a tool call that waits for approval run."""
    with client_for(ctx) as client:
        _done(client, client.approve(run_id, call_id, message), follow)


@control_app.command()
def deny(
    ctx: typer.Context,
    run_id: RunId,
    call_id: CallId,
    message: Annotated[
        str, typer.Option("--message", "-m", help="Why; the model gets it as the call's error.")
    ],
    follow: Follow = False,
) -> None:
    """Refuse a tool call that waits for approval; the model is told why and goes on."""
    with client_for(ctx) as client:
        _done(client, client.deny(run_id, call_id, message), follow)


@control_app.command()
def reply(
    ctx: typer.Context,
    run_id: RunId,
    answer: Annotated[str, typer.Argument(metavar="ANSWER", help="The answer to the agent's question.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="ANSWER is JSON (an object, a number...), not text.")
    ] = False,
    follow: Follow = False,
) -> None:
    """Answer the question a run asked with `ask_user`; the server checks it against its schema."""
    content: Any = _parse_json(answer) if as_json else answer
    with client_for(ctx) as client:
        _done(client, client.reply(run_id, content), follow)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise LoopdError(f"the answer is not valid JSON: {error}", code="invalid_json") from None


@control_app.command()
def interrupt(
    ctx: typer.Context,
    run_id: RunId,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Delivered after the current step; without it the run pauses."),
    ] = None,
    follow: Follow = False,
) -> None:
    """Pause a run after its current step, or steer it there with a message."""
    with client_for(ctx) as client:
        _done(client, client.interrupt(run_id, message), follow)


@control_app.command()
def budget(
    ctx: typer.Context,
    run_id: RunId,
    max_steps: MaxSteps = None,
    max_tokens: MaxTokens = None,
    max_cost_usd: MaxCostUsd = None,
    max_wall_time: MaxWallTime = None,
    follow: Follow = False,
) -> None:
    """Raise the limits of a run that waits at one; the values are the new limits."""
    if not budget_limits(max_steps, max_tokens, max_cost_usd, max_wall_time):
        raise typer.BadParameter(
            "give at least one of --max-steps, --max-tokens, --max-cost-usd, --max-wall-time"
        )
    with client_for(ctx) as client:
        raised = client.raise_budget(
            run_id, max_steps=max_steps, max_tokens=max_tokens, max_cost_usd=max_cost_usd,
            max_wall_time_seconds=max_wall_time,
        )  # fmt: skip
        _done(client, raised, follow)


@control_app.command("tool-result")
def tool_result(
    ctx: typer.Context,
    run_id: RunId,
    call_id: CallId,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="TEXT", help="The tool's output; - reads stdin.")
    ],
    error: Annotated[bool, typer.Option("--error", help="The tool failed; OUTPUT says how.")] = False,
    follow: Follow = False,
) -> None:
    """Hand back the result of a client tool call the run waits on."""
    text = sys.stdin.read() if output == "-" else output
    with client_for(ctx) as client:
        _done(client, client.submit_tool_result(run_id, call_id, text, ok=not error), follow)


@control_app.command()
def fork(
    ctx: typer.Context,
    run_id: RunId,
    at_seq: Annotated[
        int, typer.Option("--at", min=1, metavar="SEQ", help="Keep the log up to and including this seq.")
    ],
    model: Annotated[str | None, typer.Option(help="Another model for the fork.")] = None,
    system: Annotated[str | None, typer.Option(help="Another system prompt for the fork.")] = None,
    tool_result: Annotated[
        str | None,
        typer.Option("--tool-result", metavar="CALL=OUTPUT", help="Replace one tool call's result."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Print the fork's events.")] = False,
) -> None:
    """Start a new run from a run's log and workspace as they were at seq SEQ; prints its id."""
    replaced = _parse_tool_result(tool_result) if tool_result is not None else None
    with client_for(ctx) as client:
        forked = client.fork(run_id, at_seq, model=model, system=system, tool_result=replaced)
        typer.echo(forked.id)
        origin = forked.forked_from
        if origin is not None:
            out().print(Text(f"forked from {origin.run_id} at seq {origin.seq}", style="dim"))
        if follow:
            raise typer.Exit(follow_run(client, forked.id, after=forked.last_seq or 0))


def _parse_tool_result(pair: str) -> dict[str, str]:
    call_id, sep, output = pair.partition("=")
    if not sep or not call_id.strip():
        raise typer.BadParameter(f"must look like CALL=OUTPUT, got {pair!r}", param_hint="--tool-result")
    return {"call_id": call_id.strip(), "output": output}


@control_app.command()
def diff(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(metavar="A")],
    run_b: Annotated[str, typer.Argument(metavar="B")],
    as_json: AsJson = False,
) -> None:
    """Where two runs (a run and its fork, say) part ways, and what each did from there."""
    with client_for(ctx) as client:
        found = client.diff(run_a, run_b)
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
        return
    out().print(Text(_diff_headline(run_a, run_b, found), style="bold"), soft_wrap=True)
    if not (found.a or found.b):
        return
    for run_id, events in ((run_a, found.a), (run_b, found.b)):
        out().print()
        out().print(Text(f"{run_id}: {_count(events)}", style="bold"), soft_wrap=True)
        for event in events:
            out().print(event_text(event, run_id=run_id), soft_wrap=True)


def _diff_headline(run_a: str, run_b: str, found: RunDiff) -> str:
    if found.diverges_at is not None:
        return f"{run_a} and {run_b} diverge at seq {found.diverges_at}"
    if found.a or found.b:
        return f"{run_a} and {run_b} agree as far as both go; one has more events"
    return f"{run_a} and {run_b} have the same events"


def _count(events: list[Event]) -> str:
    return f"{len(events)} event{'' if len(events) == 1 else 's'}" if events else "no events"
