"""The typed payload of every event type, and a stored event as the API serves it: a union tagged by
`type`. Writers build payloads here, so each event's shape is defined once, in one place.

A payload is stored with exactly the fields its writer set (`exclude_unset`): a key that a kind of
writer leaves out stays absent, so logs keep the shape they have always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from services.core.agents import BudgetLimits
from services.core.errors import Unstorable
from services.core.status import RunStatus

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Number = int | float


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Payload(Model):
    TYPE: ClassVar[str]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """The payload of a writer's plain data. Data that does not fit the model can never be stored,
        so it is Unstorable, like what PostgreSQL refuses: retrying the commit cannot mend it."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the payload"
            raise Unstorable(f"{cls.TYPE}: {where}: {first['msg']}") from None

    def dump(self) -> dict[str, Any]:
        """The JSON the log stores for this payload: the fields its writer set, by their wire names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class CallBrief(Model):
    call_id: str
    name: str
    input: dict[str, Any]


class ChildRef(Model):
    call_id: str
    child_run_id: str


class Waiting(Model):
    """What a waiting run waits for; its `type` is always stored, even when the writer left it implied."""

    def model_post_init(self, context: Any) -> None:
        self.model_fields_set.add("type")


class WaitingForApproval(Waiting):
    type: Literal["approval"] = "approval"
    call_ids: list[str]
    calls: list[CallBrief]


class WaitingForToolResult(Waiting):
    """Client tools: the caller runs them and posts their results."""

    type: Literal["tool_result"] = "tool_result"
    call_ids: list[str]
    calls: list[CallBrief]


class WaitingForInput(Waiting):
    """`ask_user`: a question, and the JSON schema its answer must satisfy (None: any text)."""

    type: Literal["input"] = "input"
    call_id: str
    question: str
    answer_schema: dict[str, Any] | None = Field(alias="schema")


class WaitingForChild(Waiting):
    type: Literal["child"] = "child"
    call_ids: list[str]
    children: list[ChildRef]


class WaitingForBudget(Waiting):
    type: Literal["budget"] = "budget"
    limit: str
    used: Number
    allowed: Number


class WaitingForQuota(Waiting):
    """A monthly ceiling of the run's tenant is reached: the run goes on once a root admin raises the
    tenant's quota, or when the calendar month (UTC) ends at `resets_at`."""

    type: Literal["quota"] = "quota"
    quota: Literal["monthly_tokens", "monthly_cost_usd"]
    used: Number
    allowed: Number
    resets_at: Timestamp


class WaitingForInterrupt(Waiting):
    """An interrupt without a message: the run waits for the next user message."""

    type: Literal["interrupt"] = "interrupt"


class WaitingForMessage(Waiting):
    """A run opened without input (a Managed Agents session) waits for its first user message."""

    type: Literal["message"] = "message"


WaitingFor = Annotated[
    WaitingForApproval
    | WaitingForToolResult
    | WaitingForInput
    | WaitingForChild
    | WaitingForBudget
    | WaitingForQuota
    | WaitingForInterrupt
    | WaitingForMessage,
    Field(discriminator="type"),
]


class ErrorInfo(Model):
    code: str
    message: str


class ForkOrigin(Model):
    run_id: str
    seq: int


class ResultOverride(Model):
    call_id: str
    output: str


class ForkChanges(Model):
    model: str | None = None
    system: str | None = None
    tool_result: ResultOverride | None = None


class OutputRef(Model):
    """Where an output too large to keep inline went, in the artifact store."""

    sha256: str
    size: int


class Usage(Model):
    input_tokens: int
    output_tokens: int


class RequestedCall(Model):
    id: str
    name: str
    input: dict[str, Any]


class StartsFrom(Model):
    """Where a call's workspace starts: a snapshot (None: empty) or the end of an earlier call."""

    snapshot: str | None = None
    after_call: str | None = None


class RunCreated(Payload):
    """A run started by a caller carries its `metadata`; a sub-agent's names its `parent_run_id`; a
    Managed Agents session its `title` and `environment_id`."""

    TYPE = "run.created"
    input: str
    agent_id: str | None
    agent_version: int | None
    metadata: dict[str, Any] | None = None
    parent_run_id: str | None = None
    title: str | None = None
    environment_id: str | None = None
    environment_version: int | None = None


class RunUpdated(Payload):
    """A caller changed the run's title or metadata (the fields named; metadata is the whole new map)."""

    TYPE = "run.updated"
    title: str | None = None
    metadata: dict[str, Any] | None = None


class RunArchived(Payload):
    """The run takes no new messages from now on; its log stays readable."""

    TYPE = "run.archived"


class RunStatusChanged(Payload):
    TYPE = "run.status"
    status: RunStatus


class UserMessage(Payload):
    TYPE = "user.message"
    content: str


class ModelResponse(Payload):
    """`context_seq` is the last seq the model saw: messages after it arrived during the call."""

    TYPE = "model.response"
    text: str
    tool_calls: list[RequestedCall]
    usage: Usage
    stop_reason: str
    model: str
    cost_usd: float
    context_seq: int | None


class ToolCall(Payload):
    TYPE = "tool.call"
    call_id: str
    name: str
    input: dict[str, Any]
    starts_from: StartsFrom


class ToolOutput(Payload):
    """Live only: streamed to subscribers while a call runs, never stored."""

    TYPE = "tool.output"
    call_id: str
    stream: str
    data: str


class ToolResult(Payload):
    """A call's outcome. Which optional fields are present says who settled it: a sandbox, a refusal,
    a person, the caller, a sub-agent (`child_run_id`) or a fork's override (`overridden`)."""

    TYPE = "tool.result"
    call_id: str
    name: str | None = None
    ok: bool
    output: str
    output_ref: OutputRef | None = None
    exit_code: int | None = None
    error: str | None = None
    error_message: str | None = None
    truncated: bool = False
    duration_ms: int = 0
    snapshot: str | None = None
    replayed: bool = False
    # The output was not text: `output` shows its bytes escaped, `output_ref` holds them exactly.
    binary: bool = False
    answer: Any = None
    child_run_id: str | None = None
    overridden: bool = False


class SandboxProvisioned(Payload):
    TYPE = "sandbox.provisioned"
    sandbox_id: str
    hands_id: str
    address: str


class SandboxLost(Payload):
    TYPE = "sandbox.lost"
    sandbox_id: str
    reason: str


class EgressAllowed(Payload):
    """The egress proxy let a connection of the run's sandbox through, during call `call_id`; its
    bytes count against the environment's byte budget."""

    TYPE = "egress.allowed"
    call_id: str
    host: str
    port: int
    bytes_sent: int
    bytes_received: int
    at: Timestamp


class EgressDenied(Payload):
    """The egress proxy refused a connection; `reason` is its code (see docs/environments.md)."""

    TYPE = "egress.denied"
    call_id: str
    host: str
    port: int
    reason: str
    bytes_sent: int = 0
    bytes_received: int = 0
    at: Timestamp


class ArtifactCreated(Payload):
    TYPE = "artifact.created"
    path: str
    size: int
    sha256: str


class RunCompleted(Payload):
    TYPE = "run.completed"
    result: str


class RunFailed(Payload):
    TYPE = "run.failed"
    error: ErrorInfo


class RunCancelled(Payload):
    TYPE = "run.cancelled"
    reason: str


class RunWaiting(Payload):
    TYPE = "run.waiting"
    waiting_for: WaitingFor


class RunForked(Payload):
    TYPE = "run.forked"
    origin: ForkOrigin = Field(alias="from")
    overrides: ForkChanges


class ToolApproval(Payload):
    TYPE = "tool.approval"
    call_id: str
    decision: Literal["allow", "deny"]
    message: str


class UserInterrupt(Payload):
    TYPE = "user.interrupt"
    message: str | None


class BudgetRaised(Payload, BudgetLimits):
    """The limits a person raised; those not named keep their value."""

    TYPE = "budget.raised"


class ChildStarted(Payload):
    TYPE = "child.started"
    call_id: str
    child_run_id: str


PAYLOADS: tuple[type[Payload], ...] = (
    RunCreated,
    RunUpdated,
    RunArchived,
    RunStatusChanged,
    UserMessage,
    ModelResponse,
    ToolCall,
    ToolOutput,
    ToolResult,
    SandboxProvisioned,
    SandboxLost,
    EgressAllowed,
    EgressDenied,
    ArtifactCreated,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunWaiting,
    RunForked,
    ToolApproval,
    UserInterrupt,
    BudgetRaised,
    ChildStarted,
)


class StoredEvent(Model):
    """One event of a run's log: its seq, its type, when it was committed, and its payload."""

    seq: int
    type: str
    at: Timestamp
    data: Payload


def _tagged(payload: type[Payload]) -> type[StoredEvent]:
    tag: Any = Literal[payload.TYPE]
    return create_model(
        f"{payload.__name__}Event", __base__=StoredEvent, type=(tag, ...), data=(payload, ...)
    )


if TYPE_CHECKING:
    Event = StoredEvent
else:
    Event = Annotated[Union[tuple(_tagged(p) for p in PAYLOADS)], Field(discriminator="type")]  # noqa: UP007
