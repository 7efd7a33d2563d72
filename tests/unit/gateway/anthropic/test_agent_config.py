"""Agent configs between the wires: Managed Agents configs become loopd specs, stored specs read back as
Managed Agents agents, and what loopd cannot do is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.core.agents import AgentSpec
from services.core.errors import InvalidRequest
from services.gateway.anthropic import agent_config


def config(**fields: Any) -> dict[str, Any]:
    tools = agent_config.resolve_tools(fields.pop("tools", []))
    model = agent_config.model_config(fields.pop("model", "claude-sonnet-4-6"))
    return {
        "name": "a",
        "system": None,
        "description": None,
        "metadata": {},
        "model": model,
        "tools": tools,
        **fields,
    }


def test_the_toolset_becomes_loopd_tools_with_their_permissions() -> None:
    tools = [
        {
            "type": "agent_toolset_20260401",
            "default_config": {"permission_policy": {"type": "always_ask"}},
            "configs": [
                {"name": "read", "permission_policy": {"type": "always_allow"}},
                {"name": "grep", "enabled": False},
            ],
        },
        {"type": "custom", "name": "lookup", "description": "d", "input_schema": {"type": "object"}},
    ]
    spec = agent_config.spec_of(config(tools=tools, system="be brief"))
    assert spec["model"] == "anthropic/claude-sonnet-4-6" and spec["system"] == "be brief"
    assert spec["tools"] == ["bash", "read", "write", "edit", "glob"]
    assert spec["permissions"] == {
        "bash": "ask",
        "read": "allow",
        "write": "ask",
        "edit": "ask",
        "glob": "ask",
    }
    assert spec["client_tools"] == [
        {"name": "lookup", "description": "d", "input_schema": {"type": "object"}}
    ]
    assert spec["toolset"] == "agent_toolset_20260401"
    AgentSpec.model_validate(spec)


def test_models_route_by_their_id() -> None:
    assert agent_config.loopd_model("claude-opus-4-8") == "anthropic/claude-opus-4-8"
    assert agent_config.loopd_model("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert agent_config.model_config({"id": "claude-x", "effort": "high"}) == {
        "id": "claude-x",
        "effort": {"type": "high"},
    }
    with pytest.raises(InvalidRequest):
        agent_config.loopd_model("gpt-4o")


def test_a_version_made_here_reads_back_as_it_was_written() -> None:
    written = config(tools=[{"type": "agent_toolset_20260401"}], description="d", metadata={"k": "v"})
    spec = agent_config.spec_of(written, {"limits": {"max_steps": 7}})
    assert spec["limits"]["max_steps"] == 7
    read = agent_config.config_of(spec, agent_config.profile_of(written))
    assert read == {**written, "system": None}
    assert json.loads(json.dumps(read)) == read


def test_a_natively_made_agent_reads_as_a_toolset_of_what_it_has() -> None:
    spec = AgentSpec(
        name="n", model="scripted", tools=["bash", "read_file"], permissions={"bash": "ask"}
    ).model_dump(mode="json")
    assert "toolset" not in spec, "native specs keep the shape they always had"
    read = agent_config.config_of(spec, None)
    assert read["model"] == {"id": "scripted"} and read["metadata"] == {}
    configs = {c["name"]: c for c in read["tools"][0]["configs"]}
    assert configs["bash"]["enabled"] and configs["bash"]["permission_policy"] == {"type": "always_ask"}
    assert not configs["read"]["enabled"], "read_file is loopd's own tool, not the toolset's read"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"mcp_servers": [{"type": "url", "name": "m", "url": "https://x"}]}, "not_served"),
        ({"skills": [{"type": "anthropic", "skill_id": "pdf"}]}, "not_served"),
        ({"multiagent": {"type": "coordinator", "agents": []}}, "not_served"),
        ({"execution_identity": {"type": "aws_role", "role_arn": "arn"}}, "not_served"),
    ],
)
def test_unserved_parts_of_a_config_are_refused(body: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        agent_config.check_unserved(body)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "tools",
    [
        [{"type": "mcp_toolset", "mcp_server_name": "m"}],
        [{"type": "agent_toolset_20260401", "configs": [{"name": "web_search", "enabled": True}]}],
        [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "auto"}}}],
        [{"type": "agent_toolset_20260401", "configs": [{"name": "nope"}]}],
        [{"type": "agent_toolset_20260401"}, {"type": "agent_toolset_20260401"}],
        [{"type": "custom", "name": "x", "input_schema": {"type": "string"}}],
    ],
)
def test_tools_loopd_cannot_run_are_refused(tools: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidRequest):
        agent_config.resolve_tools(tools)
