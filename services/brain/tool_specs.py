"""The tools an agent offers its model: sandbox tools (served by hands), the brain's own tools
(`ask_user`, `spawn_agent`), and the agent's client tools (run by the caller)."""

from __future__ import annotations

from typing import Any

from services.brain.models import ToolSpec
from services.core.agents import AgentSpec
from services.core.tools import Tool
from services.hands.contract.tools import TOOL_SCHEMAS, TOOLSET_SCHEMAS

BRAIN_TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    Tool.ASK_USER: {
        "description": (
            "Ask the person running this agent a question and wait for the answer. Give a JSON schema "
            "when the answer must have a shape (it is checked before it reaches you)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question, self-contained."},
                "schema": {
                    "type": "object",
                    "description": (
                        "Optional JSON schema the answer must match: local $refs only (#/$defs/...), "
                        "no $id, RE2 patterns (no backreferences or lookaround)."
                    ),
                },
            },
            "required": ["question"],
            "additionalProperties": False,
        },
    },
    Tool.SPAWN_AGENT: {
        "description": (
            "Start a sub-agent on a task and wait for its final answer. Name a stored agent with "
            "agent_id, or give an inline agent spec as agent."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "agent_id": {"type": "string"},
                "agent": {"type": "object", "description": "An inline agent spec (model, system, tools...)."},
                "input": {"type": "string", "description": "The sub-agent's task."},
            },
            "required": ["input"],
            "additionalProperties": False,
        },
    },
}


def sandbox_schema(spec: AgentSpec, name: str) -> dict[str, Any] | None:
    """The description and input schema the agent offers a sandbox tool with (None: not one)."""
    if spec.toolset is not None and name in TOOLSET_SCHEMAS:
        return TOOLSET_SCHEMAS[name]
    return TOOL_SCHEMAS.get(name)


def tool_specs(spec: AgentSpec) -> tuple[ToolSpec, ...]:
    schemas = {name: sandbox_schema(spec, name) or BRAIN_TOOL_SCHEMAS[name] for name in spec.tools}
    offered = [
        ToolSpec(name, schemas[name]["description"], schemas[name]["input_schema"]) for name in spec.tools
    ]
    offered += [ToolSpec(t.name, t.description, t.input_schema) for t in spec.client_tools]
    return tuple(offered)
