"""Turns events into one readable line each (seq, type, short summary) for `loopd logs` and `--follow`.

Everything here is a pure function of an event (and, for the hints under `run.waiting`, of the run
id), so the command line and its tests share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text

from loopd.models import Event
from loopd.text import SUMMARY_WIDTH, clip, compact_json, number, summarize_tool_input
from loopd.waiting import waiting_lines

PREVIEW_LINES = 3
TYPE_WIDTH = len("sandbox.provisioned")
# Continuation lines (tool output previews, further waiting hints) start under the summary column.
INDENT = " " * (5 + 2 + TYPE_WIDTH + 1)

TYPE_STYLES = {
    "run.created": "bold",
    "run.status": "blue",
    "user.message": "bold cyan",
    "model.response": "cyan",
    "tool.call": "yellow",
    "tool.output": "dim",
    "sandbox.provisioned": "dim",
    "sandbox.lost": "red",
    "egress.allowed": "dim",
    "egress.denied": "yellow",
    "artifact.created": "magenta",
    "run.completed": "bold green",
    "run.failed": "bold red",
    "run.cancelled": "bold red",
    "run.waiting": "bold yellow",
    "user.interrupt": "bold cyan",
    "budget.raised": "yellow",
    "run.forked": "magenta",
    "child.started": "blue",
}


def _model_response(data: dict[str, Any]) -> str:
    calls = data.get("tool_calls") or []
    text = clip(data.get("text"), 80 if calls else SUMMARY_WIDTH)
    if not calls:
        return text or "(no text)"
    called = ", ".join(f"{c.get('name')}({summarize_tool_input(c.get('input'))})" for c in calls)
    return f"{text} → {clip(called, 100)}" if text else f"→ {clip(called, 100)}"


def _tool_result(data: dict[str, Any]) -> str:
    parts = ["ok" if data.get("ok") else "error"]
    if data.get("exit_code") is not None:
        parts.append(f"exit {data['exit_code']}")
    if data.get("duration_ms") is not None:
        parts.append(f"{data['duration_ms']} ms")
    if data.get("truncated"):
        parts.append("truncated")
    ref = data.get("output_ref")
    if isinstance(ref, dict) and ref.get("size") is not None:
        parts.append(f"full output {ref['size']} bytes")
    if data.get("error"):
        parts.append(clip(data["error"], 80))
    return " · ".join(parts)


def _run_failed(data: dict[str, Any]) -> str:
    error = data.get("error") or {}
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {clip(error.get('message'))}"
    return clip(error)


def _artifact(data: dict[str, Any]) -> str:
    sha = str(data.get("sha256") or "")[:12]
    return f"{data.get('path')} ({data.get('size')} bytes, sha256 {sha})"


DECISIONS = {"allow": "allowed", "deny": "denied"}


def _approval(data: dict[str, Any]) -> str:
    decision = DECISIONS.get(str(data.get("decision")), str(data.get("decision")))
    message = clip(data.get("message"), 100)
    return f"call {data.get('call_id')} {decision}" + (f": {message}" if message else "")


def _budget_raised(data: dict[str, Any]) -> str:
    # The event carries the new limits, either at the top level or under `limits`.
    nested = data.get("limits")
    limits = nested if isinstance(nested, dict) else data
    return ", ".join(f"{key} {number(value)}" for key, value in limits.items()) or "(no change)"


def _forked(data: dict[str, Any]) -> str:
    origin = data.get("from") or {}
    summary = f"from {origin.get('run_id')} at seq {origin.get('seq')}"
    overrides = data.get("overrides") or {}
    changed = []
    if overrides.get("model"):
        changed.append(f"model {overrides['model']}")
    if overrides.get("system") is not None:
        changed.append(f"system prompt ({len(str(overrides['system']))} chars)")
    tool_result = overrides.get("tool_result")
    if isinstance(tool_result, dict):
        changed.append(f"result of {tool_result.get('call_id')}: {clip(tool_result.get('output'), 60)}")
    return " · ".join([summary, *changed])


def _waiting(data: dict[str, Any]) -> str:
    waiting_for = data.get("waiting_for")
    return waiting_lines(waiting_for)[0] if isinstance(waiting_for, dict) else "waiting"


def short_id(value: Any) -> str:
    """Container-style ids are 64 hex characters; 12 identify them, as in `docker ps`."""
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "run.created": lambda d: clip(d.get("input")),
    "run.status": lambda d: str(d.get("status")),
    "user.message": lambda d: clip(d.get("content")),
    "model.response": _model_response,
    "tool.call": lambda d: f"{d.get('name')} {summarize_tool_input(d.get('input'))}".rstrip(),
    "tool.output": lambda d: f"{d.get('stream', 'out')}: {clip(d.get('data'))}",
    "tool.result": _tool_result,
    "sandbox.provisioned": lambda d: f"{short_id(d.get('sandbox_id'))} on {d.get('hands_id')}",
    "sandbox.lost": lambda d: f"{short_id(d.get('sandbox_id'))}: {clip(d.get('reason'))}",
    "egress.allowed": lambda d: (
        f"{d.get('host')}:{d.get('port')} sent {d.get('bytes_sent')} B, received {d.get('bytes_received')} B"
    ),
    "egress.denied": lambda d: f"{d.get('host')}:{d.get('port')}: {d.get('reason')}",
    "artifact.created": _artifact,
    "run.completed": lambda d: clip(d.get("result")),
    "run.failed": _run_failed,
    "run.cancelled": lambda d: clip(d.get("reason")),
    "run.waiting": _waiting,
    "tool.approval": _approval,
    "user.interrupt": lambda d: clip(d.get("message")) or "pause until a message is sent",
    "budget.raised": _budget_raised,
    "run.forked": _forked,
    "child.started": lambda d: f"call {d.get('call_id')} started child run {d.get('child_run_id')}",
}


def summarize(event: Event) -> str:
    """A one-line summary of an event's data; unknown types show their data as compact JSON."""
    summary = SUMMARIES.get(event.type)
    if summary is None:
        return compact_json(event.data)
    return summary(event.data)


def output_preview(event: Event, lines: int = PREVIEW_LINES) -> list[str]:
    """The first lines of a tool result's output, shown under its summary line."""
    if event.type != "tool.result":
        return []
    output = str(event.data.get("output") or "").rstrip()
    if not output:
        return []
    all_lines = output.splitlines()
    shown = [clip(line, SUMMARY_WIDTH) or " " for line in all_lines[:lines]]
    if len(all_lines) > lines:
        shown.append(f"… {len(all_lines) - lines} more lines")
    return shown


def _event_lines(event: Event, run_id: str | None) -> tuple[str, list[str]]:
    """The summary, and the lines shown under it (output previews, further waiting hints)."""
    waiting_for = event.data.get("waiting_for")
    if event.type == "run.waiting" and isinstance(waiting_for, dict):
        first, *more = waiting_lines(waiting_for, run_id)
        return first, more
    return summarize(event), output_preview(event)


def _style(event: Event) -> str:
    if event.type == "tool.result":
        return "green" if event.data.get("ok") else "red"
    if event.type == "tool.approval":
        return "green" if event.data.get("decision") == "allow" else "red"
    return TYPE_STYLES.get(event.type, "")


def event_text(event: Event, *, run_id: str | None = None) -> Text:
    """`  seq  type  summary`, plus indented lines for tool output and waiting hints.

    With `run_id`, the hint of a `run.waiting` event names the run in its command.
    """
    seq = f"{event.seq:>5}" if event.seq is not None else "    ·"
    summary, more = _event_lines(event, run_id)
    text = Text.assemble((seq, "dim"), "  ", (f"{event.type:<{TYPE_WIDTH}}", _style(event)), " ", summary)
    more_style = "yellow" if event.type == "run.waiting" else "dim"
    for line in more:
        text.append(f"\n{INDENT}│ {line}", style=more_style)
    return text
