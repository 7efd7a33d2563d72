"""The projection of recorded run logs (tests/golden) into Managed Agents session events: stable ids,
the same events however the log is read, and each kind of loopd event as the API names it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from services.core import events as event_log
from services.gateway.anthropic import projection
from services.gateway.anthropic.responses.events import SessionEvent
from tests.golden.record import GOLDEN
from tests.unit.brain.loop import wire_event

APPROVALS_SPEC = {
    "client_tools": [{"name": "lookup", "description": "", "input_schema": {"type": "object"}}],
    "permissions": {"bash": "ask", "write_file": "ask"},
}
LOGS = [
    pytest.param(log, id=f"{path.stem}/{log['name']}")
    for path in sorted(GOLDEN.glob("*.json"))
    for log in json.loads(path.read_text())["logs"]
]


def events_of(log: dict[str, Any]) -> list[event_log.Event]:
    return [wire_event(log["run_id"], event) for event in log["events"]]


def golden(kind: str, name: str = "run") -> list[event_log.Event]:
    document = json.loads((GOLDEN / f"{kind}.json").read_text())
    return events_of(next(log for log in document["logs"] if log["name"] == name))


@pytest.mark.parametrize("log", LOGS)
def test_ids_are_unique_ordered_and_name_their_loopd_event(log: dict[str, Any]) -> None:
    events = events_of(log)
    projected = projection.project_all(events, projection.Context.of({}))
    positions = [projection.position_of(item["id"]) for item in projected]
    assert None not in positions
    assert positions == sorted(positions) and len(set(positions)) == len(positions)  # type: ignore[type-var]
    for item, position in zip(projected, positions, strict=True):
        assert position is not None and item["x_loopd"]["seq"] == position[0]


@pytest.mark.parametrize("log", LOGS)
def test_any_slice_of_the_log_projects_to_the_same_events(log: dict[str, Any]) -> None:
    events = events_of(log)
    responses = [e for e in events if e.type == event_log.MODEL_RESPONSE]
    whole = projection.project_all(events, projection.Context.of({}, responses))
    middle = len(events) // 2
    # What a stream opened mid-run sees: a context seeded from the whole log's model responses.
    tail = projection.project_all(events[middle:], projection.Context.of({}, responses))
    head = projection.project_all(events[:middle], projection.Context.of({}))
    assert head + tail == whole
    assert projection.project_all(events, projection.Context.of({})) == whole


@pytest.mark.parametrize("log", LOGS)
def test_every_projected_event_is_one_the_openapi_document_describes(log: dict[str, Any]) -> None:
    """The list and the stream answer exactly what responses/events.py documents, no field more."""
    documented = TypeAdapter(SessionEvent)
    for spec in ({}, APPROVALS_SPEC):
        for item in projection.project_all(events_of(log), projection.Context.of(spec)):
            shown = documented.validate_python(item)
            assert documented.dump_python(shown, exclude_unset=True) == item


def test_a_new_run_shows_its_message_the_model_its_turn_and_the_end_as_idle() -> None:
    items = projection.project_all(golden("conversation"), projection.Context.of({}))
    kinds = [item["type"] for item in items]
    assert kinds[0] == "user.message" and kinds.count("session.status_idle") == 2
    assert "run.created" not in kinds and not any(k.startswith(("sandbox", "tool.call")) for k in kinds)
    end = next(item for item in items if item["type"] == "span.model_request_end")
    start = next(item for item in items if item["type"] == "span.model_request_start")
    assert end["model_request_start_id"] == start["id"]
    assert set(end["model_usage"]) >= {"input_tokens", "output_tokens"}
    assert items[-1]["stop_reason"] == {"type": "end_turn"}


def test_approvals_and_custom_tools_name_the_tool_use_events_they_answer() -> None:
    items = projection.project_all(golden("approvals"), projection.Context.of(APPROVALS_SPEC))
    by_id = {item["id"]: item for item in items}
    uses = [item for item in items if item["type"] == "agent.tool_use"]
    assert [(u["name"], u["evaluated_permission"]) for u in uses[:2]] == [
        ("write_file", "ask"),
        ("bash", "ask"),
    ]
    asking = next(item for item in items if item["type"] == "session.status_idle")
    assert asking["stop_reason"] == {"type": "requires_action", "event_ids": [uses[0]["id"], uses[1]["id"]]}
    confirmations = [item for item in items if item["type"] == "user.tool_confirmation"]
    assert [(c["tool_use_id"], c["result"]) for c in confirmations] == [
        (uses[0]["id"], "allow"),
        (uses[1]["id"], "deny"),
    ]
    assert confirmations[1]["deny_message"] == "no shell"
    results = {item["tool_use_id"]: item for item in items if item["type"] == "agent.tool_result"}
    assert results[uses[1]["id"]]["is_error"] is True

    custom = next(item for item in items if item["type"] == "agent.custom_tool_use")
    assert custom["name"] == "lookup" and custom["input"] == {"q": "the name"}
    waits = [item for item in items if item["type"] == "session.status_idle"]
    assert {"type": "requires_action", "event_ids": [custom["id"]]} in [w["stop_reason"] for w in waits]
    answered = next(item for item in items if item["type"] == "user.custom_tool_result")
    assert answered["custom_tool_use_id"] == custom["id"] and answered["content"][0]["text"] == "found: loopd"
    assert all(
        by_id[e]["type"].startswith("agent.") for w in waits for e in w["stop_reason"].get("event_ids", [])
    )


def test_interrupts_budgets_and_endings() -> None:
    items = projection.project_all(golden("interrupts_and_budgets"), projection.Context.of({}))
    kinds = [item["type"] for item in items]
    assert kinds.count("user.interrupt") == 2
    reasons = [item["stop_reason"]["type"] for item in items if item["type"] == "session.status_idle"]
    assert "budget_reached" in reasons and reasons[-1] == "end_turn"
    cancelled = projection.project_all(golden("children", "cancelled"), projection.Context.of({}))
    assert cancelled[-1]["type"] == "session.status_terminated"


def test_a_failed_run_shows_an_error_then_goes_idle() -> None:
    failed = wire_event(
        "run_x",
        {
            "seq": 9,
            "type": "run.failed",
            "at": "2026-12-01T00:00:00+00:00",
            "data": {"error": {"code": "model_error", "message": "overloaded"}},
        },
    )
    error, idle = projection.project(failed, projection.Context.of({}))
    assert error["type"] == "session.error" and error["error"]["type"] == "model_request_failed_error"
    assert error["error"]["message"] == "overloaded" and error["x_loopd"] == {"seq": 9, "code": "model_error"}
    assert idle["stop_reason"] == {"type": "retries_exhausted"}


def test_a_new_sessions_wait_for_its_first_message_shows_nothing() -> None:
    waiting = wire_event(
        "run_x",
        {
            "seq": 2,
            "type": "run.waiting",
            "at": "2026-12-01T00:00:00+00:00",
            "data": {"waiting_for": {"type": "message"}},
        },
    )
    assert projection.project(waiting, projection.Context.of({})) == []


def test_a_wait_for_the_tenants_monthly_quota_shows_the_session_idle() -> None:
    waiting = wire_event(
        "run_x",
        {
            "seq": 7,
            "type": "run.waiting",
            "at": "2026-12-01T00:00:00+00:00",
            "data": {"waiting_for": {"type": "quota", "quota": "monthly_tokens", "used": 10, "allowed": 5}},
        },
    )
    [idle] = projection.project(waiting, projection.Context.of({}))
    assert idle["type"] == "session.status_idle"
    assert idle["stop_reason"] == {"type": "quota_reached", "x_loopd": {"quota": "monthly_tokens"}}


def test_an_id_that_is_not_one_of_ours_names_no_position() -> None:
    assert projection.position_of("sevt_12_3") == (12, 3)
    for other in ("sevt_12", "evt_1_2", "sevt_a_1", "sevt_1_2_3", ""):
        assert projection.position_of(other) is None
