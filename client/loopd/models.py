"""Typed views of the v1 API's JSON: runs, events, agents, artifacts, hands workers, run diffs,
usage, and the teams calls' API keys, tenants and audit entries.

Every model keeps fields it does not know (`extra="allow"`), so a newer server never breaks an
older client; only the fields the client relies on are declared.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

RUN_STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled")
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENT_TYPES = frozenset({"run.completed", "run.failed", "run.cancelled"})
WAITING_TYPES = ("approval", "input", "budget", "quota", "tool_result", "child", "interrupt", "message")
PERMISSIONS = ("allow", "ask", "deny")


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(WireModel):
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0


class ErrorInfo(WireModel):
    code: str
    message: str = ""


class PendingCall(WireModel):
    """A tool call a run waits on: for approval, or for its result from the caller."""

    call_id: str
    name: str | None = None
    input: Any = None


class WaitingFor(WireModel):
    """What a `waiting` run needs before it can go on.

    `type` is one of `WAITING_TYPES`; the other fields are set by type (see the v1 API docs). The
    shape is kept flat and open rather than a closed union, so a kind of wait added by a newer
    server still reads. An `input` wait's JSON schema is `answer_schema` (`schema` on the wire).
    """

    type: str
    call_id: str | None = None
    call_ids: list[str] = Field(default_factory=list)
    calls: list[PendingCall] = Field(default_factory=list)
    question: str | None = None
    limit: str | None = None
    quota: str | None = None
    used: int | float | None = None
    allowed: int | float | None = None
    resets_at: datetime | None = None
    child_run_id: str | None = None

    @property
    def answer_schema(self) -> dict[str, Any] | None:
        # Not a declared field: `schema` would shadow a BaseModel method.
        schema = (self.model_extra or {}).get("schema")
        return schema if isinstance(schema, dict) else None


class ForkedFrom(WireModel):
    run_id: str
    seq: int


class Budget(WireModel):
    """A run's effective limits; any of them may be unset (no limit)."""

    max_steps: int | None = None
    max_tokens: int | None = None
    max_cost_usd: int | float | None = None
    max_wall_time_seconds: int | float | None = None


class Run(WireModel):
    id: str
    status: str
    agent_id: str | None = None
    agent_version: int | None = None
    model: str | None = None
    step: int = 0
    last_seq: int | None = None
    usage: Usage = Field(default_factory=Usage)
    input: str | None = None
    result: str | None = None
    error: ErrorInfo | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None
    waiting_for: WaitingFor | None = None
    parent_run_id: str | None = None
    forked_from: ForkedFrom | None = None
    budget: Budget | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


class Event(WireModel):
    """One entry of a run's log; `seq` is None only for live-only deltas such as `tool.output`."""

    seq: int | None = None
    type: str
    at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES


class Agent(WireModel):
    id: str
    version: int
    name: str | None = None
    model: str | None = None
    system: str = ""
    tools: list[str] = Field(default_factory=list)
    client_tools: list[dict[str, Any]] = Field(default_factory=list)
    permissions: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, Any] | None = None
    script: list[dict[str, Any]] | None = None
    created_at: datetime | None = None


class Artifact(WireModel):
    path: str
    size: int | None = None
    sha256: str | None = None


class HandsWorker(WireModel):
    hands_id: str
    slots_total: int = 0
    slots_free: int = 0
    sandbox_count: int = 0
    state: str = "serving"


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(WireModel, Generic[ItemT]):
    data: list[ItemT]
    next_cursor: str | None = None


class EventPage(WireModel):
    data: list[Event]
    next_after: int | None = None


class RunDiff(WireModel):
    """Where two runs' logs part ways, and what each did from there (`diverges_at` is None if never)."""

    diverges_at: int | None = None
    a: list[Event] = Field(default_factory=list)
    b: list[Event] = Field(default_factory=list)


class ApiKey(WireModel):
    """A key as listings show it: never the key itself, only its `prefix` to tell keys apart."""

    id: str
    tenant: str | None = None
    name: str = ""
    role: str
    prefix: str = ""
    created_by: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """`revoked`, `expired` or `active` at `now` (an aware datetime)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class NewApiKey(ApiKey):
    """The one answer that carries the key itself; kept out of `repr` so logs do not catch it."""

    key: str = Field(repr=False)


class TenantQuotas(WireModel):
    """A tenant's shares of the deployment; None is no limit beyond the server's ceilings."""

    max_running_runs: int | None = None
    max_sandboxes: int | None = None
    monthly_tokens: int | None = None
    monthly_cost_usd: float | None = None


class Tenant(WireModel):
    id: str
    name: str = ""
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    created_at: datetime | None = None


class Environment(WireModel):
    """An environment with one of its versions: `version` is the one shown, `latest_version` its
    newest; the spec's fields (image, runtime, limits, network, secrets...) are kept as sent."""

    id: str
    name: str = ""
    version: int
    latest_version: int = 0
    runtime: str = "runc"
    network: dict[str, Any] = Field(default_factory=dict)
    secrets: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = None
    archived_at: datetime | None = None


class EnvironmentVersion(WireModel):
    version: int
    created_at: datetime | None = None
    runtime: str = "runc"
    network: dict[str, Any] = Field(default_factory=dict)


class Secret(WireModel):
    """A stored secret as the server shows it: its name and times, never its value."""

    name: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


class NewTenant(Tenant):
    """A tenant just created, with its first admin key (shown this once)."""

    admin_key: NewApiKey


class AuditEntry(WireModel):
    """Who (a key id; None for the server itself) did what to which object, and when."""

    id: int
    at: datetime | None = None
    key_id: str | None = None
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any] = Field(default_factory=dict)


class AuditPage(WireModel):
    data: list[AuditEntry]
    next_after: int | None = None


class UsageTotals(WireModel):
    input_tokens: int = 0
    output_tokens: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    sandbox_seconds: float = 0.0


class TenantUsage(UsageTotals):
    tenant: str


class AgentUsage(UsageTotals):
    tenant: str
    agent_id: str | None = None


class DayUsage(UsageTotals):
    tenant: str
    day: date


class UsageReport(WireModel):
    """What runs used from `since` to `until` (UTC days, both included); `tenant` None: every tenant."""

    tenant: str | None = None
    since: date
    until: date
    total: UsageTotals = Field(default_factory=UsageTotals)
    tenants: list[TenantUsage] = Field(default_factory=list)
    agents: list[AgentUsage] = Field(default_factory=list)
    days: list[DayUsage] = Field(default_factory=list)
