"""The bodies the API answers with on success, so that `/openapi.json` describes every response (each
route documents its errors with params.errors).

Events use the tagged union of services.core.payloads; routes that serve them leave out the payload
fields their writer did not set, so each event keeps exactly its stored shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from services.core.agents import AgentSpec
from services.core.payloads import ErrorInfo, Event, ForkOrigin, Number, Timestamp, WaitingFor
from services.core.status import RunStatus


class RunUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    tool_calls: int


class Run(BaseModel):
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
    created_at: Timestamp
    updated_at: Timestamp
    ended_at: Timestamp | None


class RunPage(BaseModel):
    data: list[Run]
    next_cursor: str | None


class AgentVersion(BaseModel):
    id: str
    version: int
    created_at: Timestamp


class Agent(AgentSpec, AgentVersion):
    """One stored version of an agent: its id and version, then its spec."""


class AgentPage(BaseModel):
    data: list[Agent]
    next_cursor: None


class EventPage(BaseModel):
    data: list[Event]
    next_after: int | None


class Diff(BaseModel):
    """Where two runs' logs first differ, and each one's events from there on."""

    diverges_at: int | None
    a: list[Event]
    b: list[Event]


class Artifact(BaseModel):
    path: str
    size: int
    sha256: str


class ArtifactList(BaseModel):
    data: list[Artifact]


class HandsWorker(BaseModel):
    hands_id: str
    address: str
    slots_total: int
    slots_free: int
    sandboxes: list[str]
    started_at: Number
    labels: dict[str, str]


class HandsList(BaseModel):
    data: list[HandsWorker]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]
