"""Session events as the API shows them: the projection of a run's log (projection.py) as one tagged
union, the echo of a sent batch, and the pages of a session's event list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from services.gateway.anthropic.responses import Body, Open, Timestamp
from services.gateway.anthropic.responses.sessions import BudgetLimit


class TextBlock(Body):
    type: Literal["text"]
    text: str


class EventExtras(Body):
    seq: int = Field(description="the seq of the loopd event behind this session event")
    code: str | None = Field(None, description="loopd's error code, on session.error")


class Event(Body):
    id: str
    processed_at: Timestamp
    x_loopd: EventExtras


class UserMessage(Event):
    type: Literal["user.message"]
    content: list[TextBlock]


class UserInterrupt(Event):
    type: Literal["user.interrupt"]


class UserToolConfirmation(Event):
    type: Literal["user.tool_confirmation"]
    tool_use_id: str
    result: Literal["allow", "deny"]
    deny_message: str | None = None


class UserCustomToolResult(Event):
    type: Literal["user.custom_tool_result"]
    custom_tool_use_id: str
    content: list[TextBlock]
    is_error: bool


class ModelRequestStart(Event):
    type: Literal["span.model_request_start"]


class ModelUsage(Body):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class ModelRequestEnd(Event):
    type: Literal["span.model_request_end"]
    model_request_start_id: str
    is_error: bool
    model_usage: ModelUsage


class AgentMessage(Event):
    type: Literal["agent.message"]
    content: list[TextBlock]


class Evaluation(Body):
    type: Literal["always_allow", "always_ask"]


class AgentToolUse(Event):
    type: Literal["agent.tool_use"]
    name: str
    input: dict[str, Any]
    evaluated_permission: Literal["allow", "ask", "deny"]
    evaluation: Evaluation


class AgentCustomToolUse(Event):
    type: Literal["agent.custom_tool_use"]
    name: str
    input: dict[str, Any]


class AgentToolResult(Event):
    type: Literal["agent.tool_result"]
    tool_use_id: str
    content: list[TextBlock]
    is_error: bool


class EndTurn(Body):
    type: Literal["end_turn"]


class RequiresAction(Body):
    type: Literal["requires_action"]
    event_ids: list[str] = Field(description="the events that wait for a confirmation or a result")


class RetriesExhausted(Body):
    type: Literal["retries_exhausted"]


class BudgetReached(Body):
    type: Literal["budget_reached"]


class QuotaExtras(Body):
    quota: Any = Field(description="the tenant's monthly ceiling that was reached")


class QuotaReached(Body):
    """loopd's own stop: the tenant's monthly token or cost ceiling."""

    type: Literal["quota_reached"]
    x_loopd: QuotaExtras


StopReason = Annotated[
    EndTurn | RequiresAction | RetriesExhausted | BudgetReached | QuotaReached, Field(discriminator="type")
]


class StatusIdle(Event):
    type: Literal["session.status_idle"]
    stop_reason: StopReason


class StatusRunning(Event):
    type: Literal["session.status_running"]


class StatusTerminated(Event):
    type: Literal["session.status_terminated"]


class RetryStatus(Body):
    type: Literal["retrying", "exhausted", "terminal"]


class SessionErrorObject(Body):
    type: Literal["model_request_failed_error", "unknown_error"]
    message: str
    retry_status: RetryStatus


class SessionError(Event):
    type: Literal["session.error"]
    error: SessionErrorObject


class SessionUpdated(Event):
    type: Literal["session.updated"]
    title: str | None = None
    metadata: dict[str, Any] | None = None
    budget: BudgetLimit | None = None


SessionEvent = Annotated[
    UserMessage
    | UserInterrupt
    | UserToolConfirmation
    | UserCustomToolResult
    | ModelRequestStart
    | ModelRequestEnd
    | AgentMessage
    | AgentToolUse
    | AgentCustomToolUse
    | AgentToolResult
    | StatusIdle
    | StatusRunning
    | StatusTerminated
    | SessionError
    | SessionUpdated,
    Field(discriminator="type"),
]


class EventPage(Body):
    data: list[SessionEvent]
    next_page: str | None


class Sent(Open):
    """A sent event as the session lists it: what the caller sent, with its id and when it was
    applied (null for a no-op, such as an interrupt of an idle session)."""

    id: str
    processed_at: Timestamp | None


class SentMessage(Sent):
    type: Literal["user.message"]
    content: list[Open]


class SentInterrupt(Sent):
    type: Literal["user.interrupt"]


class SentConfirmation(Sent):
    type: Literal["user.tool_confirmation"]
    tool_use_id: str
    result: Literal["allow", "deny"]
    deny_message: str | None = None


class SentCustomToolResult(Sent):
    type: Literal["user.custom_tool_result"]
    custom_tool_use_id: str
    content: list[Open] | None = None
    is_error: bool | None = None


SentEvent = Annotated[
    SentMessage | SentInterrupt | SentConfirmation | SentCustomToolResult, Field(discriminator="type")
]


class SentEvents(Body):
    data: list[SentEvent]


class DiffSide(Body):
    session_id: str
    events: list[SessionEvent]


class DiffExtras(Body):
    diverges_at_seq: int | None


class SessionDiff(Body):
    type: Literal["session_diff"]
    a: DiffSide
    b: DiffSide
    x_loopd: DiffExtras
