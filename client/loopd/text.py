"""Small, pure text helpers shared by the event renderer, the waiting hints and the tables."""

from __future__ import annotations

import json
from typing import Any

SUMMARY_WIDTH = 120


def clip(text: Any, width: int = SUMMARY_WIDTH) -> str:
    """The first line of `text`, shortened to `width`; an ellipsis marks anything left out."""
    value = "" if text is None else str(text)
    lines = value.strip().splitlines() or [""]
    first = lines[0].strip()
    if len(first) > width:
        return first[: width - 1] + "…"
    return first + (" …" if len(lines) > 1 else "")


def compact_json(value: Any, width: int = SUMMARY_WIDTH) -> str:
    """`value` as one line of JSON without spaces, clipped to `width`."""
    return clip(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str), width)


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
    return compact_json(tool_input, 80)


def number(value: Any) -> str:
    """A limit or a usage figure without noise: 50, 0.5, 1.25 (never 50.0 or 0.5000001)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)
