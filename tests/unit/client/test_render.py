"""One readable line per event: seq, type, and the part of the data a person wants to see."""

from __future__ import annotations

from typing import Any

import pytest
from loopd.models import Event
from loopd.render import event_text, summarize
from loopd.text import clip


def line(seq: int | None, type: str, **data: Any) -> str:
    return event_text(Event(seq=seq, type=type, data=data)).plain


def test_a_line_starts_with_the_seq_and_the_type() -> None:
    text = line(12, "run.status", status="running")
    assert text.split() == ["12", "run.status", "running"]


def test_live_only_events_show_a_dot_for_their_missing_seq() -> None:
    text = line(None, "tool.output", call_id="c1", stream="stderr", data="warning: x\nmore")
    assert text.split()[0] == "·"
    assert text.endswith("stderr: warning: x …")


def test_a_model_response_shows_its_text_and_the_tools_it_calls() -> None:
    calls = [
        {"id": "1", "name": "bash", "input": {"command": "python3 -m unittest"}},
        {"id": "2", "name": "read_file", "input": {"path": "textstats.py"}},
    ]
    text = line(3, "model.response", text="Running the tests.", tool_calls=calls)
    assert "Running the tests. → bash(python3 -m unittest), read_file(textstats.py)" in text


def test_a_tool_call_shows_the_command_or_the_path_and_size() -> None:
    assert line(4, "tool.call", name="bash", input={"command": "ls -la"}).endswith("bash ls -la")
    written = line(5, "tool.call", name="write_file", input={"path": "a.py", "content": "x = 1\n"})
    assert written.endswith("write_file a.py (6 chars)")
    edited = line(
        6, "tool.call", name="edit_file", input={"path": "a.py", "old_string": "1", "new_string": "2"}
    )
    assert edited.endswith("edit_file a.py")


def test_a_tool_result_shows_status_exit_code_and_the_first_lines_of_output() -> None:
    output = "line 1\nline 2\nline 3\nline 4\nline 5\n"
    text = line(7, "tool.result", call_id="c", ok=True, output=output, exit_code=0, duration_ms=12)
    first, *preview = text.splitlines()
    assert first.endswith("ok · exit 0 · 12 ms")
    assert [p.split("│ ")[1] for p in preview] == ["line 1", "line 2", "line 3", "… 2 more lines"]


def test_a_failed_tool_result_shows_its_error() -> None:
    text = line(8, "tool.result", ok=False, output="", exit_code=None, error="old_string not found")
    assert text.endswith("error · old_string not found")


@pytest.mark.parametrize(
    ("type", "data", "summary"),
    [
        ("run.created", {"input": "Write a module\nwith tests"}, "Write a module …"),
        ("user.message", {"content": "also count lines"}, "also count lines"),
        ("sandbox.provisioned", {"sandbox_id": "sbx_1", "hands_id": "hands-a"}, "sbx_1 on hands-a"),
        ("sandbox.lost", {"sandbox_id": "sbx_1", "reason": "hands stopped"}, "sbx_1: hands stopped"),
        ("sandbox.provisioned", {"sandbox_id": "ab12" * 16, "hands_id": "h"}, "ab12ab12ab12 on h"),
        (
            "artifact.created",
            {"path": "a.py", "size": 10, "sha256": "ab" * 32},
            "a.py (10 bytes, sha256 abababababab)",
        ),
        ("run.completed", {"result": "All done."}, "All done."),
        ("run.failed", {"error": {"code": "max_steps", "message": "50 steps"}}, "max_steps: 50 steps"),
        ("run.cancelled", {"reason": "cancelled by user"}, "cancelled by user"),
        ("tool.approval", {"call_id": "c1", "decision": "allow", "message": None}, "call c1 allowed"),
        (
            "tool.approval",
            {"call_id": "c2", "decision": "deny", "message": "not on prod"},
            "call c2 denied: not on prod",
        ),
        ("user.interrupt", {"message": None}, "pause until a message is sent"),
        ("user.interrupt", {"message": "use staging"}, "use staging"),
        ("budget.raised", {"max_steps": 100, "max_cost_usd": 2.0}, "max_steps 100, max_cost_usd 2"),
        (
            "run.forked",
            {"from": {"run_id": "run_a", "seq": 12}, "overrides": {}},
            "from run_a at seq 12",
        ),
        (
            "run.forked",
            {
                "from": {"run_id": "run_a", "seq": 12},
                "overrides": {
                    "model": "m2",
                    "system": "Be terse.",
                    "tool_result": {"call_id": "c1", "output": "7"},
                },
            },
            "from run_a at seq 12 · model m2 · system prompt (9 chars) · result of c1: 7",
        ),
        ("child.started", {"call_id": "c5", "child_run_id": "run_kid"}, "call c5 started child run run_kid"),
        (
            "run.waiting",
            {"waiting_for": {"type": "interrupt"}},
            "waiting for a message after an interrupt → loopd send RUN MESSAGE",
        ),
        ("something.new", {"k": 1}, '{"k":1}'),
    ],
)
def test_every_event_type_has_a_short_summary(type: str, data: dict[str, Any], summary: str) -> None:
    assert summarize(Event(seq=1, type=type, data=data)) == summary


def test_clip_keeps_one_line_and_marks_what_it_cuts() -> None:
    assert clip("x" * 10, width=5) == "xxxx…"
    assert clip("a\nb") == "a …"
    assert clip(None) == ""


def test_a_waiting_event_names_the_run_in_its_hint_and_lists_every_call() -> None:
    waiting_for = {
        "type": "approval",
        "call_ids": ["c1", "c2"],
        "calls": [
            {"call_id": "c1", "name": "bash", "input": {"command": "rm -rf build"}},
            {"call_id": "c2", "name": "bash", "input": {"command": "git push"}},
        ],
    }
    event = Event(seq=9, type="run.waiting", data={"waiting_for": waiting_for})
    first, second = event_text(event, run_id="run_42").plain.splitlines()
    assert first.split()[:2] == ["9", "run.waiting"]
    assert first.endswith(
        "waiting for approval of call c1 (bash: rm -rf build) → loopd approve run_42 c1"
        "  (or: loopd deny run_42 c1 -m REASON)"
    )
    assert second.split("│ ")[1].startswith(
        "waiting for approval of call c2 (bash: git push) → loopd approve run_42 c2"
    )


def test_approval_decisions_are_coloured_by_outcome() -> None:
    allowed = event_text(Event(seq=1, type="tool.approval", data={"call_id": "c", "decision": "allow"}))
    denied = event_text(Event(seq=2, type="tool.approval", data={"call_id": "c", "decision": "deny"}))
    assert [span.style for span in allowed.spans][1] == "green"
    assert [span.style for span in denied.spans][1] == "red"
