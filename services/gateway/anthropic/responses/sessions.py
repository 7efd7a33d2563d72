"""A session as the API shows it (a loopd run), with loopd's own state under `x_loopd`."""

from __future__ import annotations

from typing import Any, Literal

from services.gateway.anthropic.responses import Body, Timestamp
from services.gateway.anthropic.responses.agents import SessionAgent


class MonetaryAmount(Body):
    amount: str
    currency: Literal["USD"]


class BudgetLimit(Body):
    type: Literal["limit"]
    max_list_cost: MonetaryAmount


class SessionStats(Body):
    duration_seconds: float
    active_seconds: float | None = None


class SessionUsage(Body):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int


class SessionExtras(Body):
    status: str
    waiting_for: dict[str, Any] | None
    last_seq: int
    step: int
    cost_usd: float
    forked_from: dict[str, Any] | None


class Session(Body):
    type: Literal["session"]
    id: str
    status: Literal["rescheduling", "running", "idle", "terminated"]
    title: str | None
    metadata: dict[str, str]
    environment_id: str
    agent: SessionAgent
    budget: BudgetLimit | None
    resources: list[Any]
    vault_ids: list[str]
    outcome_evaluations: list[Any]
    stats: SessionStats
    usage: SessionUsage
    created_at: Timestamp
    updated_at: Timestamp
    archived_at: Timestamp | None
    x_loopd: SessionExtras


class SessionPage(Body):
    data: list[Session]
    next_page: str | None
    prev_page: str | None


class SessionDeleted(Body):
    type: Literal["session_deleted"]
    id: str
