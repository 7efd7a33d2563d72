"""Turns events into one readable line each (seq, type, short summary) for `loopd logs` and `--follow`.

Everything here is a pure function of an event, so the command line and its tests share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.text import Text

from loopd.models import Event

SUMMARY_WIDTH = 120
PREVIEW_LINES = 3
TYPE_WIDTH = len("sandbox.provisioned")
# Continuation lines (tool output previews) start under the summary column.
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
    "artifact.created": "magenta",
    "run.completed": "bold green",
    "run.failed": "bold red",
    "run.cancelled": "bold red",
}


def clip(text: Any, width: int = SUMMARY_WIDTH) -> str:
    """The first line of `text`, shortened to `width`; an ellipsis marks anything left out."""
    value = "" if text is None else str(text)
    lines = value.strip().splitlines() or [""]
    first = lines[0].strip()
    if len(first) > width:
        return first[: width - 1] + "…"
    return first + (" …" if len(lines) > 1 else "")


def summarize_tool_input(tool_input: Any) -> str:
    """The part of a tool's input a person wants to see: the command, the path, or compact JSON."""
    if not isinstance(tool_input, dict):
        return clip(json.dumps(tool_input))
    if isinstance(tool_input.get("command"), str):
        return clip(tool_input["command"], 80)
    if isinstance(tool_input.get("path"), str):
        summary = tool_input["path"]
        if isinstance(tool_input.get("content"), str):
            summary += f" ({len(tool_input['content'])} chars)"
        return clip(summary, 80)
    if not tool_input:
        return ""
    return clip(json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False), 80)


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
    "artifact.created": _artifact,
    "run.completed": lambda d: clip(d.get("result")),
    "run.failed": _run_failed,
    "run.cancelled": lambda d: clip(d.get("reason")),
}


def summarize(event: Event) -> str:
    """A one-line summary of an event's data; unknown types show their data as compact JSON."""
    summary = SUMMARIES.get(event.type)
    if summary is None:
        return clip(json.dumps(event.data, separators=(",", ":"), ensure_ascii=False))
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


def event_text(event: Event) -> Text:
    """`  seq  type  summary`, plus indented output lines for tool results."""
    seq = f"{event.seq:>5}" if event.seq is not None else "    ·"
    style = TYPE_STYLES.get(event.type, "")
    if event.type == "tool.result":
        style = "green" if event.data.get("ok") else "red"
    text = Text.assemble((seq, "dim"), "  ", (f"{event.type:<{TYPE_WIDTH}}", style), " ", summarize(event))
    for line in output_preview(event):
        text.append(f"\n{INDENT}│ {line}", style="dim")
    return text
