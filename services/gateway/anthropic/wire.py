"""The JSON of agents, environments and sessions as the API serves them, from loopd's rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from services.core import sessions
from services.gateway.anthropic import agent_config, agent_overrides, projection

_SERVICE_ACCOUNT = {"type": "service_account"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent(row: Row[Any], first_created_at: datetime) -> dict[str, Any]:
    config = agent_config.config_of(row.spec, row.profile)
    return {
        "type": "agent",
        "id": row.id,
        "version": row.version,
        "name": config["name"],
        "description": config["description"],
        "metadata": config["metadata"],
        "model": config["model"],
        "system": config["system"],
        "tools": config["tools"],
        "mcp_servers": [],
        "skills": [],
        "multiagent": None,
        "execution_identity": _SERVICE_ACCOUNT,
        "created_at": _iso(first_created_at),
        "updated_at": _iso(row.created_at),
        "archived_at": _iso(row.archived_at),
        "x_loopd": {
            "model": row.spec["model"],
            "tools": row.spec.get("tools", []),
            "limits": row.spec.get("limits"),
        },
    }


def environment(row: Row[Any]) -> dict[str, Any]:
    return {
        "type": "environment",
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "config": row.config,
        "metadata": row.metadata,
        "scope": "organization",
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "archived_at": _iso(row.archived_at),
    }


def _strings(metadata: dict[str, Any]) -> dict[str, str]:
    """Metadata as the API types it (text values); a run made natively may hold any JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}


def session(run: Row[Any], agent_row: Row[Any] | None) -> dict[str, Any]:
    """A run as a session; `agent_row` is the agent version it runs (None for an inline spec)."""
    profile = None
    if agent_row is not None:
        profile = agent_overrides.shown_profile(run.agent_spec, agent_row.spec, agent_row.profile)
    config = agent_config.config_of(run.agent_spec, profile)
    ended = run.ended_at or datetime.now(UTC)
    return {
        "type": "session",
        "id": run.id,
        "status": sessions.phase_of(run.status, run.waiting_for).value,
        "title": run.title,
        "metadata": _strings(run.metadata or {}),
        "environment_id": run.environment_id or "",
        "agent": {
            "type": "agent",
            "id": run.agent_id or "",
            "version": run.agent_version or 0,
            "name": config["name"],
            "description": config["description"],
            "model": config["model"],
            "system": config["system"],
            "tools": config["tools"],
            "mcp_servers": [],
            "skills": [],
            "multiagent": None,
            "execution_identity": _SERVICE_ACCOUNT,
        },
        "budget": projection.limit_of(run.budget or {}),
        "resources": [],
        "vault_ids": [],
        "outcome_evaluations": [],
        "stats": {"duration_seconds": max(0.0, (ended - run.created_at).total_seconds())},
        "usage": {
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cache_read_input_tokens": 0,
        },
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "archived_at": _iso(run.archived_at),
        "x_loopd": {
            "status": run.status,
            "waiting_for": run.waiting_for,
            "last_seq": run.last_seq,
            "step": run.step,
            "cost_usd": run.cost_usd,
            "forked_from": run.forked_from,
        },
    }
