"""Says what a waiting run waits for, and the exact `loopd` command that unblocks it.

`loopd show` prints these lines for a run's `waiting_for`, and the event renderer for each
`run.waiting` event, so a person watching a run never has to guess the next step.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from loopd.text import clip, compact_json, number, summarize_tool_input

ARROW = "→"
# The run id in a hint when the caller does not know it (an event rendered on its own).
RUN_PLACEHOLDER = "RUN"

# Budget limits as `waiting_for.limit` names them, and the `loopd budget` option that raises each.
LIMIT_OPTIONS = {
    "max_steps": "--max-steps",
    "max_tokens": "--max-tokens",
    "max_cost_usd": "--max-cost-usd",
    "max_wall_time": "--max-wall-time",
}
LIMIT_UNITS = {"max_steps": "steps", "max_tokens": "tokens", "max_cost_usd": "USD", "max_wall_time": "s"}
QUOTA_UNITS = {"monthly_tokens": "tokens", "monthly_cost_usd": "USD"}


def waiting_lines(waiting_for: Mapping[str, Any], run_id: str | None = None) -> list[str]:
    """One `waiting for … → command` line per thing that blocks the run."""
    run = shlex.quote(run_id) if run_id else RUN_PLACEHOLDER
    kind = str(waiting_for.get("type"))
    describe = _DESCRIBERS.get(kind)
    if describe is None:
        rest = {k: v for k, v in waiting_for.items() if k != "type"}
        return [f"waiting for {kind}" + (f" {compact_json(rest, 80)}" if rest else "")]
    return describe(run, waiting_for)


def _hint(what: str, command: str) -> str:
    return f"waiting for {what} {ARROW} {command}"


def _calls(waiting_for: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(call id, `name: input`) for each call a run waits on; ids without details get no label."""
    described = {
        str(call.get("call_id")): f"{call.get('name')}: {summarize_tool_input(call.get('input'))}".rstrip(
            ": "
        )
        for call in waiting_for.get("calls") or []
        if isinstance(call, Mapping)
    }
    ids = [str(call_id) for call_id in waiting_for.get("call_ids") or []] or list(described)
    return [(call_id, described.get(call_id, "")) for call_id in ids]


def _label(call_id: str, detail: str) -> str:
    return f"call {call_id}" + (f" ({detail})" if detail else "")


def _approval(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    return [
        _hint(
            f"approval of {_label(call_id, detail)}",
            f"loopd approve {run} {shlex.quote(call_id)}  "
            f"(or: loopd deny {run} {shlex.quote(call_id)} -m REASON)",
        )
        for call_id, detail in _calls(waiting_for)
    ] or [f"waiting for approval {ARROW} loopd show {run}"]


def _tool_result(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    return [
        _hint(
            f"the result of client tool {_label(call_id, detail)}",
            f"loopd tool-result {run} {shlex.quote(call_id)} --output TEXT",
        )
        for call_id, detail in _calls(waiting_for)
    ] or [f"waiting for a client tool result {ARROW} loopd show {run}"]


def _input(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    question = clip(waiting_for.get("question"), 100) or "(no question)"
    schema = waiting_for.get("schema")
    what = f"an answer to call {waiting_for.get('call_id')}: {question}"
    if not isinstance(schema, Mapping) or schema.get("type") in (None, "string"):
        return [_hint(what, f"loopd reply {run} ANSWER")]
    return [_hint(what, f"loopd reply {run} --json JSON  (matching {compact_json(schema, 80)})")]


def _budget(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    limit = str(waiting_for.get("limit"))
    used, allowed = waiting_for.get("used"), waiting_for.get("allowed")
    unit = LIMIT_UNITS.get(limit, "")
    what = (
        f"a budget raise: {limit} reached ({number(used)} of {number(allowed)}{' ' + unit if unit else ''})"
    )
    option = LIMIT_OPTIONS.get(limit)
    if option is None:
        return [_hint(what, f"loopd budget {run} --help")]
    return [_hint(what, f"loopd budget {run} {option} {_suggested_raise(limit, allowed)}")]


def _suggested_raise(limit: str, allowed: Any) -> str:
    """Twice the limit that was reached, as a concrete value to start from."""
    if isinstance(allowed, int | float) and not isinstance(allowed, bool) and allowed > 0:
        doubled = allowed * 2
        return number(doubled if limit == "max_cost_usd" else int(doubled))
    return "N"


def _quota(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    quota = str(waiting_for.get("quota"))
    used, allowed = waiting_for.get("used"), waiting_for.get("allowed")
    unit = QUOTA_UNITS.get(quota, "")
    what = (
        f"the tenant's monthly quota: {quota} reached ({number(used)} of {number(allowed)}"
        f"{' ' + unit if unit else ''}) until {_utc(waiting_for.get('resets_at'))}"
    )
    raised = _suggested_raise("max_cost_usd" if quota == "monthly_cost_usd" else quota, allowed)
    option = "--" + quota.replace("_", "-")
    return [_hint(what, f"a root admin: loopd tenants update TENANT {option} {raised}")]


def _utc(moment: Any) -> str:
    """`2026-01-01 00:00 UTC` for a timestamp; anything else as it came."""
    try:
        parsed = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        return str(moment)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def _child(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    children = waiting_for.get("children") or [
        {"call_id": waiting_for.get("call_id"), "child_run_id": waiting_for.get("child_run_id")}
    ]
    hints = []
    for entry in children:
        child = str(entry.get("child_run_id"))
        what = f"child run {child} (call {entry.get('call_id')})"
        hints.append(_hint(what, f"loopd logs {shlex.quote(child)} --follow"))
    return hints


def _interrupt(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    return [_hint("a message after an interrupt", f"loopd send {run} MESSAGE")]


def _message(run: str, waiting_for: Mapping[str, Any]) -> list[str]:
    return [_hint("a first message", f"loopd send {run} MESSAGE")]


_DESCRIBERS: dict[str, Callable[[str, Mapping[str, Any]], list[str]]] = {
    "approval": _approval,
    "input": _input,
    "budget": _budget,
    "quota": _quota,
    "tool_result": _tool_result,
    "child": _child,
    "interrupt": _interrupt,
    "message": _message,
}
