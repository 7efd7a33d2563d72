"""The bodies the API answers with on success, so that `/openapi.json` describes every response (each
route documents its errors with params.errors).

Events use the tagged union of services.core.payloads; routes that serve them leave out the payload
fields their writer did not set, so each event keeps exactly its stored shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.agents import AgentSpec
from services.core.environment_spec import EnvironmentSpec
from services.core.payloads import ErrorInfo, Event, ForkOrigin, Number, Timestamp, WaitingFor
from services.core.status import RunStatus


class Body(BaseModel):
    # A field a route adds without adding it here fails the tests, instead of vanishing from the wire.
    model_config = ConfigDict(extra="forbid")


class RunUsage(Body):
    input_tokens: int
    output_tokens: int
    tool_calls: int


class RunEnvironment(Body):
    """The environment version a run's sandbox follows, kept for the run's life."""

    id: str
    version: int


class Run(Body):
    id: str
    tenant: str
    status: RunStatus
    agent_id: str | None
    agent_version: int | None
    model: str | None
    step: int
    last_seq: int
    usage: RunUsage
    input: str
    result: str | None
    error: ErrorInfo | None
    metadata: dict[str, Any]
    waiting_for: WaitingFor | None
    budget: dict[str, Number]
    cost_usd: float
    parent_run_id: str | None
    forked_from: ForkOrigin | None
    environment: RunEnvironment | None
    created_at: Timestamp
    updated_at: Timestamp
    ended_at: Timestamp | None


class RunPage(Body):
    data: list[Run]
    next_cursor: str | None


class AgentVersion(Body):
    id: str
    version: int
    created_at: Timestamp


class Agent(AgentSpec, AgentVersion):
    """One stored version of an agent: its id and version, then its spec."""


class AgentPage(Body):
    data: list[Agent]
    next_cursor: None


class EventPage(Body):
    data: list[Event]
    next_after: int | None


class Diff(Body):
    """Where two runs' logs first differ, and each one's events from there on."""

    diverges_at: int | None
    a: list[Event]
    b: list[Event]


class Artifact(Body):
    path: str
    size: int
    sha256: str


class ArtifactList(Body):
    data: list[Artifact]


class HandsWorker(Body):
    """A worker's capacity; where it listens and whose runs it holds stay internal."""

    hands_id: str
    slots_total: int
    slots_free: int
    sandbox_count: int
    state: str
    started_at: Number


class HandsList(Body):
    data: list[HandsWorker]


class Health(Body):
    status: Literal["ok"]


class Readiness(Body):
    status: Literal["ready"]
    checks: dict[str, str]


class ApiKey(Body):
    """A key as listed: never the key itself, only its first characters (`prefix`)."""

    id: str
    tenant: str
    name: str
    role: Literal["admin", "member", "viewer"]
    prefix: str
    created_by: str | None
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None


class NewApiKey(ApiKey):
    key: str = Field(description="the key itself: shown this once and never again")


class ApiKeyList(Body):
    data: list[ApiKey]


class TenantQuotas(Body):
    max_running_runs: int | None
    max_sandboxes: int | None
    monthly_tokens: int | None
    monthly_cost_usd: float | None


class Tenant(Body):
    id: str
    name: str
    quotas: TenantQuotas
    created_at: Timestamp


class NewTenant(Tenant):
    admin_key: NewApiKey = Field(description="the tenant's first admin key, shown this once")


class TenantList(Body):
    data: list[Tenant]


class AuditEntry(Body):
    id: int
    at: Timestamp
    key_id: str | None
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


class AuditPage(Body):
    data: list[AuditEntry]
    next_after: int | None


class UsageTotals(Body):
    input_tokens: int
    output_tokens: int
    tokens: int = Field(description="input plus output tokens, what monthly_tokens counts")
    cost_usd: float
    tool_calls: int
    sandbox_seconds: float = Field(description="time tool calls held a sandbox: restore, run, snapshot")


class TenantUsage(UsageTotals):
    tenant: str


class AgentUsage(UsageTotals):
    tenant: str
    agent_id: str | None = Field(description="None: runs of inline agent specs")


class DayUsage(UsageTotals):
    tenant: str
    day: str = Field(json_schema_extra={"format": "date"}, description="a UTC day")


class UsageReport(Body):
    """What runs used between two UTC days (both included); days and agents without usage are left out."""

    tenant: str | None = Field(description="whose usage this is; None: every tenant's")
    since: str = Field(json_schema_extra={"format": "date"})
    until: str = Field(json_schema_extra={"format": "date"})
    total: UsageTotals
    tenants: list[TenantUsage]
    agents: list[AgentUsage]
    days: list[DayUsage]


class Environment(EnvironmentSpec):
    """An environment with one of its versions (the latest unless asked): its fields, then the spec."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant: str
    name: str
    description: str | None
    metadata: dict[str, str]
    version: int
    latest_version: int
    created_at: Timestamp
    updated_at: Timestamp
    archived_at: Timestamp | None


class EnvironmentPage(Body):
    data: list[Environment]
    next_cursor: str | None


class EnvironmentVersion(EnvironmentSpec):
    model_config = ConfigDict(extra="forbid")

    version: int
    created_at: Timestamp


class EnvironmentVersionList(Body):
    data: list[EnvironmentVersion]


class Secret(Body):
    """A secret as the API shows it: its name and times, never its value."""

    name: str
    created_at: Timestamp
    updated_at: Timestamp


class SecretList(Body):
    data: list[Secret]


class Deleted(Body):
    id: str
    deleted: Literal[True]
