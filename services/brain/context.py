"""Rebuilds a run's state from its event log: the conversation for the next model call, the tool calls
still owed a result, approvals, budgets, where the run's sandbox lives, and what the brain must do next.

This is a pure fold over events, so any brain reaches the same state from the same log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from services.brain.models import Message, ToolCall
from services.core import events as event_log
from services.core.status import TERMINAL_STATUSES, RunStatus

TOOL_OUTPUT_NOTE = "\n[output truncated: {size} bytes in total, stored as artifact sha256:{sha256}]"
BINARY_OUTPUT_NOTE = (
    "\n[binary output: {size} bytes, stored exactly as artifact sha256:{sha256};"
    " NUL and bytes that are not UTF-8 are shown as \\xNN]"
)


class NextAction(Enum):
    CALL_MODEL = "call_model"
    RUN_TOOL = "run_tool"
    INTERRUPT_TOOLS = "interrupt_tools"  # an interrupt arrived: resolve the pending calls
    PAUSE = "pause"  # an interrupt without a message: wait for the next user message
    FINISH = "finish"
    IDLE = "idle"  # nothing to do until something new arrives (e.g. a user message)


@dataclass(frozen=True)
class SandboxLocation:
    hands_id: str
    address: str
    sandbox_id: str


@dataclass
class RunState:
    run_id: str
    last_seq: int = 0
    status: RunStatus = RunStatus.QUEUED
    messages: list[Message] = field(default_factory=list)
    pending: dict[str, ToolCall] = field(default_factory=dict)
    sandbox: SandboxLocation | None = None
    # The snapshot of /workspace after the last committed tool call: where the next call starts.
    workspace_snapshot: str | None = None
    model_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    final_text: str | None = None
    deferred_user: list[Message] = field(default_factory=list)
    approvals: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (decision, message)
    children: dict[str, str] = field(default_factory=dict)  # spawn_agent call_id -> child run id
    budget_raises: dict[str, float] = field(default_factory=dict)
    interrupt_open: bool = False
    interrupt_message: str | None = None
    # User messages folded since the last model reply, with their seqs: one that arrived while the
    # model was answering was not part of what it saw, and belongs after its reply.
    recent_users: list[tuple[int, Message]] = field(default_factory=list)
    # Bytes (both ways) the run's sandbox moved through the egress proxy, for its byte budget.
    egress_bytes: int = 0

    def next_action(self) -> NextAction:
        if self.status in TERMINAL_STATUSES or self.status == RunStatus.WAITING:
            return NextAction.IDLE
        if self.interrupt_open and self.pending:
            return NextAction.INTERRUPT_TOOLS
        if self.interrupt_open and self.interrupt_message is None:
            return NextAction.PAUSE
        if self.pending:
            return NextAction.RUN_TOOL
        if not self.messages:
            return NextAction.IDLE
        last = self.messages[-1]
        if last.role in ("user", "tool"):
            return NextAction.CALL_MODEL
        if self.final_text is not None and self.status == RunStatus.RUNNING:
            return NextAction.FINISH
        return NextAction.IDLE

    def next_tool_call(self) -> ToolCall:
        return next(iter(self.pending.values()))

    def apply(self, event: event_log.Event) -> None:
        self.last_seq = event.seq
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event.data)


def rebuild(run_id: str, events: Iterable[event_log.Event], state: RunState | None = None) -> RunState:
    """Fold events into a state (continuing `state` when given, for incremental rebuilds)."""
    state = state or RunState(run_id=run_id)
    for event in events:
        state.apply(event)
    return state


def tool_result_text(data: dict[str, Any]) -> str:
    """What the model sees of a tool result, including where a large output went."""
    text = str(data.get("output") or "")
    ref = data.get("output_ref")
    if ref:
        note = BINARY_OUTPUT_NOTE if data.get("binary") else TOOL_OUTPUT_NOTE
        text += note.format(size=ref["size"], sha256=ref["sha256"])
    if not data.get("ok") and data.get("error") and not text:
        text = f"error {data['error']}: {data.get('error_message') or ''}".strip()
    return text


def _user_message(state: RunState, data: dict[str, Any]) -> None:
    message = Message(role="user", content=str(data.get("content", "")))
    # Tool results must follow their assistant turn directly, so a message sent while tools run waits.
    (state.deferred_user if state.pending else state.messages).append(message)
    state.recent_users.append((state.last_seq, message))
    state.final_text = None
    state.interrupt_open = False


def _user_interrupt(state: RunState, data: dict[str, Any]) -> None:
    state.interrupt_open = True
    state.interrupt_message = data.get("message")
    if state.interrupt_message:
        _user_message(state, {"content": state.interrupt_message})
        state.interrupt_open = bool(state.pending)  # still owed: resolving the calls in flight


def _model_response(state: RunState, data: dict[str, Any]) -> None:
    calls = tuple(ToolCall(c["id"], c["name"], c.get("input") or {}) for c in data.get("tool_calls", []))
    seen_upto = data.get("context_seq")
    late = [m for seq, m in state.recent_users if seen_upto is not None and seq > seen_upto]
    state.messages = [m for m in state.messages if not any(m is x for x in late)]
    state.recent_users.clear()
    state.messages.append(Message(role="assistant", content=data.get("text") or "", tool_calls=calls))
    if late:
        (state.deferred_user if calls else state.messages).extend(late)
    state.model_calls += 1
    usage = data.get("usage") or {}
    state.tokens += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
    state.cost_usd += float(data.get("cost_usd") or 0.0)
    state.final_text = None if calls or late else (data.get("text") or "")


def _tool_call(state: RunState, data: dict[str, Any]) -> None:
    state.pending[data["call_id"]] = ToolCall(data["call_id"], data["name"], data.get("input") or {})


def _tool_result(state: RunState, data: dict[str, Any]) -> None:
    if state.pending.pop(data["call_id"], None) is None:
        return
    state.messages.append(
        Message(
            role="tool",
            content=tool_result_text(data),
            tool_call_id=data["call_id"],
            is_error=not data.get("ok"),
        )
    )
    if data.get("snapshot"):
        state.workspace_snapshot = data["snapshot"]
    if not state.pending:
        state.messages.extend(state.deferred_user)
        state.deferred_user.clear()
        if state.interrupt_message:
            state.interrupt_open = False


def _tool_approval(state: RunState, data: dict[str, Any]) -> None:
    state.approvals[data["call_id"]] = (data["decision"], data.get("message") or "")


def _child_started(state: RunState, data: dict[str, Any]) -> None:
    state.children[data["call_id"]] = data["child_run_id"]


def _budget_raised(state: RunState, data: dict[str, Any]) -> None:
    state.budget_raises.update({k: v for k, v in data.items() if v is not None})


def _sandbox_provisioned(state: RunState, data: dict[str, Any]) -> None:
    state.sandbox = SandboxLocation(data["hands_id"], data["address"], data["sandbox_id"])


def _sandbox_lost(state: RunState, _: dict[str, Any]) -> None:
    state.sandbox = None


def _egress(state: RunState, data: dict[str, Any]) -> None:
    state.egress_bytes += int(data.get("bytes_sent") or 0) + int(data.get("bytes_received") or 0)


def _run_waiting(state: RunState, _: dict[str, Any]) -> None:
    state.status = RunStatus.WAITING
    if state.interrupt_open and not state.pending:
        state.interrupt_open = False


def _run_forked(state: RunState, _: dict[str, Any]) -> None:
    # A fork continues from its copied history as a fresh run: whatever the parent was doing at
    # that point (waiting, finished) is the parent's business.
    state.status = RunStatus.QUEUED
    state.interrupt_open = False


def _status(status: RunStatus | None) -> Any:
    """A fold for an event that sets the status: its own `status` field when None."""

    def handler(state: RunState, data: dict[str, Any]) -> None:
        state.status = RunStatus(data["status"]) if status is None else status

    return handler


_HANDLERS = {
    event_log.USER_MESSAGE: _user_message,
    event_log.USER_INTERRUPT: _user_interrupt,
    event_log.MODEL_RESPONSE: _model_response,
    event_log.TOOL_CALL: _tool_call,
    event_log.TOOL_RESULT: _tool_result,
    event_log.TOOL_APPROVAL: _tool_approval,
    event_log.CHILD_STARTED: _child_started,
    event_log.BUDGET_RAISED: _budget_raised,
    event_log.SANDBOX_PROVISIONED: _sandbox_provisioned,
    event_log.SANDBOX_LOST: _sandbox_lost,
    event_log.EGRESS_ALLOWED: _egress,
    event_log.EGRESS_DENIED: _egress,
    event_log.RUN_WAITING: _run_waiting,
    event_log.RUN_FORKED: _run_forked,
    event_log.RUN_STATUS: _status(None),
    event_log.RUN_COMPLETED: _status(RunStatus.COMPLETED),
    event_log.RUN_FAILED: _status(RunStatus.FAILED),
    event_log.RUN_CANCELLED: _status(RunStatus.CANCELLED),
}
