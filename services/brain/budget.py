"""Budgets: the run's effective limits (agent spec, per-run overrides, raises) and whether one is reached.

Checked before every model call; a reached budget makes the run wait for a raise, not fail. The
tenant's wall-time ceiling (settings) is above every budget: a run past it fails, and no raise helps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.brain.context import RunState
from services.core.agents import AgentSpec, BudgetLimits

LIMIT_KEYS = tuple(BudgetLimits.model_fields)
# The wall-time limit's label in a budget wait, as run.waiting events have always carried it.
WALL_TIME_LIMIT = "max_wall_time"


@dataclass(frozen=True)
class Budget:
    max_steps: float
    max_tokens: float | None
    max_cost_usd: float | None
    max_wall_time_seconds: float

    @classmethod
    def effective(
        cls, spec: AgentSpec, overrides: Mapping[str, Any], raises: Mapping[str, float | None]
    ) -> Budget:
        base: dict[str, Any] = {key: getattr(spec.limits, key) for key in LIMIT_KEYS}
        for source in (overrides, raises):
            base.update({k: v for k, v in source.items() if k in LIMIT_KEYS and v is not None})
        return cls(**base)

    def reached(self, state: RunState, created_at: datetime) -> dict[str, Any] | None:
        """The `waiting_for` of the first limit reached, or None."""
        checks: list[tuple[str, float, float | None]] = [
            ("max_steps", state.model_calls, self.max_steps),
            ("max_tokens", state.tokens, self.max_tokens),
            ("max_cost_usd", round(state.cost_usd, 6), self.max_cost_usd),
            (WALL_TIME_LIMIT, round(elapsed(created_at), 3), self.max_wall_time_seconds),
        ]
        for limit, used, allowed in checks:
            if allowed is not None and used >= allowed:
                return {"type": "budget", "limit": limit, "used": used, "allowed": allowed}
        return None

    def wall_time_left(self, created_at: datetime, ceiling: float) -> float:
        """Seconds until the run's wall time runs out: its budget's, or the tenant's ceiling if sooner."""
        return min(self.max_wall_time_seconds, ceiling) - elapsed(created_at)


def elapsed(created_at: datetime) -> float:
    """Seconds since the run was created."""
    return (datetime.now(UTC) - created_at).total_seconds()
