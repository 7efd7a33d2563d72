"""The context builder is a pure fold over the log: the same events always give the same next step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.brain.context import NextAction, rebuild
from services.core import events as event_log

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def events(*items: tuple[str, dict[str, Any]]) -> list[event_log.Event]:
    return [event_log.Event("run_1", seq, kind, NOW, data) for seq, (kind, data) in enumerate(items, start=1)]


CREATED = (event_log.RUN_CREATED, {"input": "hi"})
HELLO = (event_log.USER_MESSAGE, {"content": "hi"})
RUNNING = (event_log.RUN_STATUS, {"status": "running"})
ASKS_FOR_TOOL = (
    event_log.MODEL_RESPONSE,
    {"text": "", "tool_calls": [{"id": "c1", "name": "bash", "input": {"command": "ls"}}]},
)
TOOL_CALL = (event_log.TOOL_CALL, {"call_id": "c1", "name": "bash", "input": {"command": "ls"}})
TOOL_RESULT = (event_log.TOOL_RESULT, {"call_id": "c1", "ok": True, "output": "a.txt\n"})
FINAL = (event_log.MODEL_RESPONSE, {"text": "done", "tool_calls": []})


def test_a_new_run_calls_the_model() -> None:
    assert rebuild("run_1", events(CREATED, HELLO)).next_action() is NextAction.CALL_MODEL


def test_a_pending_tool_call_runs_before_anything_else() -> None:
    state = rebuild("run_1", events(CREATED, HELLO, RUNNING, ASKS_FOR_TOOL, TOOL_CALL))
    assert state.next_action() is NextAction.RUN_TOOL
    assert state.next_tool_call().id == "c1"


def test_a_tool_result_goes_back_to_the_model() -> None:
    state = rebuild("run_1", events(CREATED, HELLO, RUNNING, ASKS_FOR_TOOL, TOOL_CALL, TOOL_RESULT))
    assert state.next_action() is NextAction.CALL_MODEL
    assert [m.role for m in state.messages] == ["user", "assistant", "tool"]
    assert state.messages[-1].tool_call_id == "c1" and state.messages[-1].content == "a.txt\n"


def test_a_final_answer_finishes_and_a_finished_run_idles() -> None:
    state = rebuild("run_1", events(CREATED, HELLO, RUNNING, FINAL))
    assert state.next_action() is NextAction.FINISH and state.final_text == "done"
    state = rebuild(
        "run_1", events(CREATED, HELLO, RUNNING, FINAL, (event_log.RUN_COMPLETED, {"result": "done"}))
    )
    assert state.next_action() is NextAction.IDLE


def test_a_message_sent_while_a_tool_runs_waits_for_the_tool_result() -> None:
    state = rebuild(
        "run_1",
        events(
            CREATED,
            HELLO,
            RUNNING,
            ASKS_FOR_TOOL,
            TOOL_CALL,
            (event_log.USER_MESSAGE, {"content": "hurry"}),
            TOOL_RESULT,
        ),
    )
    assert [m.role for m in state.messages] == ["user", "assistant", "tool", "user"]


def test_incremental_rebuild_equals_a_full_one() -> None:
    everything = events(CREATED, HELLO, RUNNING, ASKS_FOR_TOOL, TOOL_CALL, TOOL_RESULT, FINAL)
    partial = rebuild("run_1", everything[:3])
    rebuild("run_1", everything[3:], partial)
    full = rebuild("run_1", everything)
    assert partial.messages == full.messages and partial.last_seq == full.last_seq == 7


def test_large_outputs_tell_the_model_where_the_rest_is() -> None:
    big = (
        event_log.TOOL_RESULT,
        {"call_id": "c1", "ok": True, "output": "head", "output_ref": {"sha256": "ab" * 32, "size": 99999}},
    )
    state = rebuild("run_1", events(CREATED, HELLO, RUNNING, ASKS_FOR_TOOL, TOOL_CALL, big))
    assert "99999 bytes" in state.messages[-1].content


def test_sandbox_location_follows_provisioned_and_lost() -> None:
    provisioned = (
        event_log.SANDBOX_PROVISIONED,
        {"sandbox_id": "s1", "hands_id": "h1", "address": "127.0.0.1:1"},
    )
    state = rebuild("run_1", events(CREATED, provisioned))
    assert state.sandbox is not None and state.sandbox.hands_id == "h1"
    state = rebuild("run_1", events(CREATED, provisioned, (event_log.SANDBOX_LOST, {"sandbox_id": "s1"})))
    assert state.sandbox is None


def test_a_message_sent_while_the_model_answers_comes_after_its_reply() -> None:
    late = (event_log.USER_MESSAGE, {"content": "also this"})
    reply = (event_log.MODEL_RESPONSE, {"text": "done", "tool_calls": [], "context_seq": 3})
    state = rebuild("run_1", events(CREATED, HELLO, RUNNING, late, reply))
    assert [(m.role, m.content) for m in state.messages] == [
        ("user", "hi"),
        ("assistant", "done"),
        ("user", "also this"),
    ]
    assert state.next_action() is NextAction.CALL_MODEL
