"""A session's overrides of its agent: what they replace in the spec the session runs, what they keep,
and how the session shows the agent it runs."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.agents import AgentSpec
from services.core.errors import InvalidRequest
from services.gateway.anthropic import agent_config, agent_overrides

TOOLS = [
    {
        "type": "agent_toolset_20260401",
        "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
    },
    {"type": "custom", "name": "lookup", "description": "d", "input_schema": {"type": "object"}},
]


def version() -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored version made here (its spec and profile), with loopd-only limits and an environment."""
    config = {
        "name": "a",
        "system": "Be brief.",
        "description": "writes code",
        "metadata": {"team": "a"},
        "model": agent_config.model_config({"id": "claude-sonnet-4-6", "effort": "high"}),
        "tools": agent_config.resolve_tools(TOOLS),
    }
    spec = agent_config.spec_of(config, {"limits": {"max_steps": 7}})
    spec["environment"] = {"id": "env_1", "version": 2}
    return AgentSpec.model_validate(spec).model_dump(mode="json"), agent_config.profile_of(config)


def overrides(**fields: Any) -> agent_overrides.AgentWithOverrides:
    return agent_overrides.parse({"type": "agent_with_overrides", "id": "agent_1", **fields})


def test_overrides_replace_only_what_they_name() -> None:
    spec, profile = version()
    run_spec = agent_overrides.spec_with(spec, profile, overrides(model="claude-opus-4-1"))
    assert run_spec["model"] == "anthropic/claude-opus-4-1"
    assert {k: v for k, v in run_spec.items() if k != "model"} == {
        k: v for k, v in spec.items() if k != "model"
    }
    assert run_spec["limits"]["max_steps"] == 7 and run_spec["environment"] == {"id": "env_1", "version": 2}
    AgentSpec.model_validate(run_spec)

    no_tools = agent_overrides.spec_with(spec, profile, overrides(tools=[], system=None))
    assert no_tools["tools"] == [] and no_tools["client_tools"] == [] and no_tools["system"] == ""
    assert "toolset" not in no_tools and no_tools["model"] == spec["model"]


def test_a_session_shows_the_versions_profile_where_it_runs_it_unchanged() -> None:
    spec, profile = version()
    assert agent_overrides.shown_profile(spec, spec, profile) is profile
    prompt_only = agent_overrides.spec_with(spec, profile, overrides(system="Be thorough."))
    assert agent_overrides.shown_profile(prompt_only, spec, profile) == profile
    other_model = agent_overrides.spec_with(spec, profile, overrides(model="claude-opus-4-1"))
    shown = agent_overrides.shown_profile(other_model, spec, profile)
    assert (
        shown is not None
        and shown["model"] == {"id": "claude-opus-4-1"}
        and shown["tools"] == profile["tools"]
    )
    assert shown["description"] == "writes code" and shown["metadata"] == {"team": "a"}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": "x"}, "invalid_agent"),
        ({"version": 0}, "invalid_agent"),
        ({"system": 5}, "invalid_agent"),
        ({"skills": [{"type": "anthropic", "skill_id": "s"}]}, "not_served"),
        ({"tools": [{"type": "mcp_toolset"}]}, "not_served"),
        ({"model": "gpt"}, "unknown_model"),
    ],
)
def test_what_an_override_cannot_say_is_refused(fields: dict[str, Any], code: str) -> None:
    spec, profile = version()
    with pytest.raises(InvalidRequest) as refused:
        agent_overrides.spec_with(spec, profile, overrides(**fields))
    assert refused.value.code == code
