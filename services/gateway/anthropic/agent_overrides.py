"""A session's agent given with overrides (`agent_with_overrides`): the agent version's config with the
model, system prompt or tools replaced for that session alone, run as the session's own spec while the
agent itself is unchanged; and how such a session shows the agent it runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.core.errors import InvalidRequest
from services.gateway.anthropic import agent_config
from services.gateway.params import ID_PATTERN

# The parts of a spec that the model and the tools of a config decide.
_MODEL_KEYS = ("model",)
_TOOL_KEYS = ("tools", "permissions", "client_tools", "toolset")


class AgentWithOverrides(BaseModel):
    """Each field given replaces the agent's for this session; an omitted one keeps it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["agent_with_overrides"]
    id: str = Field(pattern=ID_PATTERN)
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    model: Any = None
    system: str | None = Field(None, max_length=200_000)
    tools: list[Any] | None = Field(None, max_length=256)
    mcp_servers: list[Any] | None = None
    skills: list[Any] | None = None


def parse(value: dict[str, Any]) -> AgentWithOverrides:
    try:
        return AgentWithOverrides.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "agent"
        raise InvalidRequest(f"agent.{where}: {first['msg']}", code="invalid_agent") from None


def spec_with(
    spec: dict[str, Any], profile: dict[str, Any] | None, given: AgentWithOverrides
) -> dict[str, Any]:
    """The spec a session runs: the version's (`spec`, `profile`) with the overrides applied; what no
    override decides (limits, retries, the environment) stays the version's."""
    agent_config.check_unserved({"mcp_servers": given.mcp_servers, "skills": given.skills})
    config = agent_config.config_of(spec, profile)
    fields = given.model_fields_set
    decided: list[str] = []
    if "model" in fields and given.model is not None:
        config["model"] = agent_config.model_config(given.model)
        decided += _MODEL_KEYS
    if "system" in fields:
        config["system"] = given.system or None
        decided.append("system")
    if "tools" in fields:
        config["tools"] = agent_config.resolve_tools(given.tools or [])
        decided += _TOOL_KEYS
    made = agent_config.spec_of(config, agent_config.extras_of(spec))
    run_spec = {key: value for key, value in spec.items() if key not in decided}
    return {**run_spec, **{key: made[key] for key in decided if key in made}}


def shown_profile(
    run_spec: dict[str, Any], spec: dict[str, Any], profile: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The profile a session shows for the version (`spec`, `profile`) it runs as `run_spec`: the
    version's own where the session runs it unchanged, and what the run's spec says where an override
    (or a fork) replaced the model or the tools."""
    if run_spec == spec:
        return profile
    native = agent_config.config_of(run_spec, None)
    base = profile if profile is not None else agent_config.profile_of(agent_config.config_of(spec, None))
    shown = dict(base)
    if any(run_spec.get(key) != spec.get(key) for key in _MODEL_KEYS):
        shown["model"] = native["model"]
    if any(run_spec.get(key) != spec.get(key) for key in _TOOL_KEYS):
        shown["tools"] = native["tools"]
    return shown
