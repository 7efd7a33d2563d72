"""The wall-time budget has one name, `max_wall_time_seconds`, in the spec, the run's budget and raises."""

from __future__ import annotations

from services.core.agents import AgentSpec, BudgetLimits, Limits
from services.core.payloads import BudgetRaised


def test_every_budget_limit_is_named_as_the_spec_limit_it_overrides() -> None:
    assert set(BudgetLimits.model_fields) <= set(Limits.model_fields)
    assert set(BudgetRaised.model_fields) == set(BudgetLimits.model_fields)


def test_a_spec_with_the_former_name_is_read_and_stored_under_the_one_name() -> None:
    spec = AgentSpec.model_validate({"model": "scripted", "limits": {"timeout_seconds": 600}})
    assert spec.limits.max_wall_time_seconds == 600
    stored = spec.model_dump(mode="json")["limits"]
    assert stored["max_wall_time_seconds"] == 600 and "timeout_seconds" not in stored
    assert AgentSpec.model_validate({"model": "scripted", "limits": stored}) == spec
