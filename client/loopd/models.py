"""Typed views of the v1 API's JSON: runs, events, agents, artifacts and hands workers.

Every model keeps fields it does not know (`extra="allow"`), so a newer server never breaks an
older client; only the fields the client relies on are declared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

RUN_STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled")
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENT_TYPES = frozenset({"run.completed", "run.failed", "run.cancelled"})


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(WireModel):
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0


class ErrorInfo(WireModel):
    code: str
    message: str = ""


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
    limits: dict[str, Any] | None = None
    script: list[dict[str, Any]] | None = None
    created_at: datetime | None = None


class Artifact(WireModel):
    path: str
    size: int | None = None
    sha256: str | None = None


class HandsWorker(WireModel):
    hands_id: str
    address: str | None = None
    slots_total: int = 0
    slots_free: int = 0
    sandboxes: list[str] = Field(default_factory=list)


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(WireModel, Generic[ItemT]):
    data: list[ItemT]
    next_cursor: str | None = None


class EventPage(WireModel):
    data: list[Event]
    next_after: int | None = None
