"""Budgets: the agent's limits, overridden per run and raised by people, checked before each model call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.brain.budget import Budget
from services.brain.context import RunState
from services.core.agents import AgentSpec


def spec(**limits: Any) -> AgentSpec:
    return AgentSpec.model_validate({"model": "scripted", "limits": limits})


def test_no_limit_is_reached_by_a_fresh_run() -> None:
    budget = Budget.effective(spec(), {}, {})

    assert budget.reached(RunState("run_b"), datetime.now(UTC)) is None


def test_the_first_limit_reached_says_what_was_used_and_allowed() -> None:
    budget = Budget.effective(spec(max_steps=3, max_tokens=100), {}, {})
    state = RunState("run_b", model_calls=3, tokens=500)

    assert budget.reached(state, datetime.now(UTC)) == {
        "type": "budget",
        "limit": "max_steps",
        "used": 3,
        "allowed": 3,
    }


def test_run_overrides_and_raises_replace_the_agent_limits_in_that_order() -> None:
    budget = Budget.effective(
        spec(max_steps=3, max_cost_usd=1.0),
        {"max_steps": 5, "max_cost_usd": 2.0},
        {"max_steps": 8, "max_tokens": None},
    )

    assert (budget.max_steps, budget.max_cost_usd, budget.max_tokens) == (8, 2.0, None)
    assert budget.reached(RunState("run_b", model_calls=7, cost_usd=1.5), datetime.now(UTC)) is None
    cost = budget.reached(RunState("run_b", cost_usd=2.0000001), datetime.now(UTC))
    assert cost is not None and cost["limit"] == "max_cost_usd"


def test_wall_time_counts_from_the_run_creation() -> None:
    budget = Budget.effective(spec(timeout_seconds=60), {}, {})
    long_ago = datetime.now(UTC) - timedelta(seconds=61)

    reached = budget.reached(RunState("run_b"), long_ago)

    assert reached is not None and reached["limit"] == "max_wall_time" and reached["allowed"] == 60
    assert (
        Budget.effective(spec(timeout_seconds=60), {}, {"max_wall_time_seconds": 120}).reached(
            RunState("run_b"), long_ago
        )
        is None
    )
