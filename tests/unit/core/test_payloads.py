"""Each event payload has one model; it stores and serves exactly the fields its writer set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.core import events as event_log
from services.core import payloads
from services.core.errors import Unstorable
from tests.golden.record import GOLDEN

# The payloads each kind of writer produces, as the log has always stored them.
STORED: list[tuple[str, dict[str, Any]]] = [
    (event_log.RUN_CREATED, {"input": "hi", "agent_id": None, "agent_version": None, "metadata": {"k": "v"}}),
    (event_log.RUN_CREATED, {"input": "sub", "agent_id": "a", "agent_version": 2, "parent_run_id": "run_1"}),
    (event_log.RUN_STATUS, {"status": "queued"}),
    (event_log.USER_MESSAGE, {"content": "hello"}),
    (
        event_log.MODEL_RESPONSE,
        {
            "text": "",
            "tool_calls": [{"id": "c1", "name": "bash", "input": {"command": "ls"}}],
            "usage": {"input_tokens": 10, "output_tokens": 3},
            "stop_reason": "tool_use",
            "model": "scripted",
            "cost_usd": 0.0,
            "context_seq": 2,
        },
    ),
    (event_log.TOOL_CALL, {"call_id": "c1", "name": "bash", "input": {}, "starts_from": {"snapshot": None}}),
    (
        event_log.TOOL_CALL,
        {"call_id": "c2", "name": "bash", "input": {}, "starts_from": {"after_call": "c1"}},
    ),
    (
        event_log.TOOL_RESULT,
        {
            "call_id": "c1",
            "name": "bash",
            "ok": True,
            "output": "a.txt\n",
            "output_ref": None,
            "exit_code": 0,
            "error": None,
            "error_message": None,
            "truncated": False,
            "duration_ms": 12,
            "snapshot": "sha",
            "replayed": False,
        },
    ),
    (event_log.TOOL_RESULT, {"call_id": "c1", "ok": True, "output": "forced", "overridden": True}),
    (event_log.TOOL_RESULT, {"call_id": "c3", "name": "ask_user", "ok": True, "output": "{}", "answer": {}}),
    (
        event_log.TOOL_RESULT,
        {
            "call_id": "c4",
            "name": "spawn_agent",
            "ok": False,
            "output": "the sub-agent failed: boom",
            "error": "child_failed",
            "child_run_id": "run_2",
        },
    ),
    (event_log.SANDBOX_PROVISIONED, {"sandbox_id": "s1", "hands_id": "h1", "address": "127.0.0.1:1"}),
    (event_log.SANDBOX_LOST, {"sandbox_id": "s1", "reason": "hands worker left the pool"}),
    (event_log.ARTIFACT_CREATED, {"path": "a.txt", "size": 3, "sha256": "abc"}),
    (event_log.RUN_COMPLETED, {"result": "done"}),
    (event_log.RUN_FAILED, {"error": {"code": "model_error", "message": "no"}}),
    (event_log.RUN_CANCELLED, {"reason": "cancelled by user"}),
    (
        event_log.RUN_WAITING,
        {"waiting_for": {"type": "budget", "limit": "max_steps", "used": 3, "allowed": 3}},
    ),
    (
        event_log.RUN_WAITING,
        {"waiting_for": {"type": "input", "call_id": "c3", "question": "which?", "schema": None}},
    ),
    (event_log.RUN_WAITING, {"waiting_for": {"type": "interrupt"}}),
    (
        event_log.RUN_FORKED,
        {
            "from": {"run_id": "run_1", "seq": 4},
            "overrides": {"tool_result": {"call_id": "c1", "output": "x"}},
        },
    ),
    (event_log.TOOL_APPROVAL, {"call_id": "c1", "decision": "deny", "message": ""}),
    (event_log.USER_INTERRUPT, {"message": None}),
    (event_log.BUDGET_RAISED, {"max_cost_usd": 6.0}),
    (event_log.CHILD_STARTED, {"call_id": "c4", "child_run_id": "run_2"}),
]

BY_TYPE = {payload.TYPE: payload for payload in payloads.PAYLOADS}


@pytest.mark.parametrize(("event_type", "data"), STORED, ids=[t for t, _ in STORED])
def test_a_stored_payload_keeps_its_exact_shape(event_type: str, data: dict[str, Any]) -> None:
    payload = BY_TYPE[event_type].model_validate(data)
    assert event_log.NewEvent.of(payload) == event_log.NewEvent(event_type, data)


def test_the_api_reads_every_event_through_the_union_tagged_by_type() -> None:
    stored = [
        {"seq": seq, "type": t, "at": "2026-01-01T00:00:00+00:00", "data": d}
        for seq, (t, d) in enumerate(STORED)
    ]
    union = TypeAdapter(list[payloads.Event])
    parsed = union.validate_python(stored)
    assert [type(event.data) for event in parsed] == [BY_TYPE[t] for t, _ in STORED]
    assert union.dump_python(parsed, mode="json", by_alias=True, exclude_unset=True) == stored


def test_a_writer_cannot_store_a_field_the_model_does_not_know() -> None:
    with pytest.raises(ValidationError):
        payloads.RunStatusChanged.model_validate({"status": "paused"})
    # Plain data that does not fit can never be stored: the committer treats it as the log refusing it.
    with pytest.raises(Unstorable, match=r"tool\.result: outptu: Extra inputs are not permitted"):
        payloads.ToolResult.parse({"call_id": "c1", "ok": True, "output": "", "outptu": "typo"})


def test_a_waiting_kind_always_stores_its_type() -> None:
    waiting = payloads.WaitingForChild(
        call_ids=["c1"], children=[payloads.ChildRef(call_id="c1", child_run_id="run_2")]
    )
    assert payloads.RunWaiting(waiting_for=waiting).dump() == {
        "waiting_for": {
            "type": "child",
            "call_ids": ["c1"],
            "children": [{"call_id": "c1", "child_run_id": "run_2"}],
        }
    }


def test_every_event_type_has_one_payload_model() -> None:
    assert len(BY_TYPE) == len(payloads.PAYLOADS)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_every_recorded_event_reads_through_the_union_and_serves_as_it_was_recorded(path: Path) -> None:
    union = TypeAdapter(list[payloads.Event])
    for log in json.loads(path.read_text())["logs"]:
        parsed = union.validate_python(log["events"])
        assert union.dump_python(parsed, mode="json", by_alias=True, exclude_unset=True) == log["events"]
