"""A run's log as Managed Agents session events: a pure function of each loopd event, so that listing and
streaming the same log always give the same events under the same ids.

Each loopd event becomes zero or more session events; the id of the i-th is `sevt_<seq>_<i>`, where seq
is the loopd event's. A tool's result and a person's decision name the `agent.tool_use` event of their
call, which the Context finds from the model responses of the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.core import events as event_log
from services.core.events import Event

_START = object()
_ID = re.compile(r"^sevt_([0-9]{1,19})_([0-9]{1,4})$")


def event_id(seq: int, index: int) -> str:
    return f"sevt_{seq}_{index}"


def position_of(session_event_id: str) -> tuple[int, int] | None:
    """The (seq, index) an event id names, or None when it is not one of ours."""
    match = _ID.match(session_event_id)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Call:
    call_id: str
    name: str
    event_id: str  # its agent.tool_use or agent.custom_tool_use
    custom: bool


@dataclass
class Context:
    """What projecting an event needs from the rest of the log: the calls the model made, by call id,
    and which of the agent's tools the caller runs (custom tools) and with which permission."""

    client_tools: frozenset[str]
    permissions: dict[str, str]
    calls: dict[str, Call] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: dict[str, Any], responses: Iterable[Event] = ()) -> Context:
        context = cls(
            client_tools=frozenset(tool["name"] for tool in spec.get("client_tools", [])),
            permissions=dict(spec.get("permissions") or {}),
        )
        for response in responses:
            context.learn(response)
        return context

    def learn(self, response: Event) -> None:
        """Note the calls of a model.response (the index of each matches `_model_response`)."""
        index = 1 + (1 if response.data.get("text") else 0)
        for call in response.data.get("tool_calls", []):
            custom = call["name"] in self.client_tools
            self.calls[call["id"]] = Call(call["id"], call["name"], event_id(response.seq, index), custom)
            index += 1

    def call_of_event(self, session_event_id: str) -> Call | None:
        return next((call for call in self.calls.values() if call.event_id == session_event_id), None)

    def event_of_call(self, call_id: str) -> str:
        call = self.calls.get(call_id)
        return call.event_id if call is not None else call_id


def project(event: Event, context: Context) -> list[dict[str, Any]]:
    """The session events of one loopd event, in order, each with its id and `processed_at`."""
    if event.type == event_log.MODEL_RESPONSE:
        context.learn(event)
    handler = _HANDLERS.get(event.type)
    bodies = handler(event.data, context) if handler is not None else []
    at = event.at.isoformat()
    projected = []
    for i, body in enumerate(bodies):
        if body.get("model_request_start_id") is _START:
            body["model_request_start_id"] = event_id(event.seq, 0)
        extras = {"seq": event.seq, **body.pop("x_loopd", {})}
        projected.append({"id": event_id(event.seq, i), **body, "processed_at": at, "x_loopd": extras})
    return projected


def project_all(events: Iterable[Event], context: Context) -> list[dict[str, Any]]:
    return [item for event in events for item in project(event, context)]


def text_blocks(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}] if text else []


def _user_message(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    return [{"type": "user.message", "content": text_blocks(str(data.get("content", "")))}]


def _user_interrupt(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [{"type": "user.interrupt"}]
    if data.get("message"):
        bodies.append({"type": "user.message", "content": text_blocks(str(data["message"]))})
    return bodies


def _model_response(data: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [{"type": "span.model_request_start"}]
    if data.get("text"):
        bodies.append({"type": "agent.message", "content": text_blocks(str(data["text"]))})
    for call in data.get("tool_calls", []):
        if call["name"] in context.client_tools:
            bodies.append(
                {"type": "agent.custom_tool_use", "name": call["name"], "input": call.get("input") or {}}
            )
        else:
            permission = context.permissions.get(call["name"], "allow")
            policy = "always_ask" if permission == "ask" else "always_allow"
            bodies.append(
                {
                    "type": "agent.tool_use",
                    "name": call["name"],
                    "input": call.get("input") or {},
                    "evaluated_permission": permission,
                    "evaluation": {"type": policy},
                }
            )
    usage = data.get("usage") or {}
    bodies.append(
        {
            "type": "span.model_request_end",
            # The start is the first session event of this loopd event.
            "model_request_start_id": _START,
            "is_error": False,
            "model_usage": {
                "input_tokens": int(usage.get("input_tokens", 0)),
                "output_tokens": int(usage.get("output_tokens", 0)),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
    )
    return bodies


def _tool_result(data: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    call = context.calls.get(data["call_id"])
    content = text_blocks(str(data.get("output") or ""))
    is_error = not data.get("ok")
    if call is not None and call.custom:
        return [
            {
                "type": "user.custom_tool_result",
                "custom_tool_use_id": call.event_id,
                "content": content,
                "is_error": is_error,
            }
        ]
    tool_use_id = context.event_of_call(data["call_id"])
    return [
        {"type": "agent.tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}
    ]


def _tool_approval(data: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "user.tool_confirmation",
        "tool_use_id": context.event_of_call(data["call_id"]),
        "result": data["decision"],
    }
    if data["decision"] == "deny" and data.get("message"):
        body["deny_message"] = data["message"]
    return [body]


def _idle(stop_reason: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.status_idle", "stop_reason": stop_reason}


def _run_waiting(data: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    waiting = data.get("waiting_for") or {}
    kind = waiting.get("type")
    if kind in ("approval", "tool_result"):
        ids = [context.event_of_call(call_id) for call_id in waiting.get("call_ids", [])]
        return [_idle({"type": "requires_action", "event_ids": ids})]
    if kind == "input":
        return [_idle({"type": "requires_action", "event_ids": [context.event_of_call(waiting["call_id"])]})]
    if kind == "budget":
        return [_idle({"type": "budget_reached"})]
    if kind == "quota":
        # The tenant's monthly ceiling: the session goes on once an admin raises it or the month turns.
        return [_idle({"type": "quota_reached", "x_loopd": {"quota": waiting.get("quota")}})]
    if kind == "interrupt":
        return [_idle({"type": "end_turn"})]
    # A wait for children is still work; a new session's wait for its first message shows nothing.
    return []


def _run_status(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    return [{"type": "session.status_running"}] if data.get("status") == "running" else []


def _run_completed(_: dict[str, Any], __: Context) -> list[dict[str, Any]]:
    return [_idle({"type": "end_turn"})]


def _run_failed(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    error = data.get("error") or {}
    code = str(error.get("code", "internal"))
    kind = "model_request_failed_error" if code.startswith("model") else "unknown_error"
    failure = {
        "type": "session.error",
        "error": {
            "type": kind,
            "message": str(error.get("message", "")),
            "retry_status": {"type": "exhausted"},
        },
        "x_loopd": {"code": code},
    }
    return [failure, _idle({"type": "retries_exhausted"})]


def _run_cancelled(_: dict[str, Any], __: Context) -> list[dict[str, Any]]:
    return [{"type": "session.status_terminated"}]


def _run_updated(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"type": "session.updated"}
    if "title" in data:
        body["title"] = data["title"]
    if "metadata" in data:
        body["metadata"] = data["metadata"]
    return [body]


def _budget_raised(data: dict[str, Any], _: Context) -> list[dict[str, Any]]:
    # The session's budget is its spend ceiling; loopd's other limits have no place in the API's events.
    budget = limit_of(data)
    return [] if budget is None else [{"type": "session.updated", "budget": budget}]


def limit_of(budget: dict[str, Any]) -> dict[str, Any] | None:
    """A loopd budget's cost ceiling as the API's budget, or None when it has none."""
    cost = budget.get("max_cost_usd")
    if cost is None:
        return None
    return {"type": "limit", "max_list_cost": {"amount": f"{cost:.2f}", "currency": "USD"}}


_HANDLERS = {
    event_log.USER_MESSAGE: _user_message,
    event_log.USER_INTERRUPT: _user_interrupt,
    event_log.MODEL_RESPONSE: _model_response,
    event_log.TOOL_RESULT: _tool_result,
    event_log.TOOL_APPROVAL: _tool_approval,
    event_log.RUN_WAITING: _run_waiting,
    event_log.RUN_STATUS: _run_status,
    event_log.RUN_COMPLETED: _run_completed,
    event_log.RUN_FAILED: _run_failed,
    event_log.RUN_CANCELLED: _run_cancelled,
    event_log.RUN_UPDATED: _run_updated,
    event_log.BUDGET_RAISED: _budget_raised,
}
