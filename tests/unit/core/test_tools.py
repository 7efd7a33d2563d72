"""Every built-in tool name has exactly one schema, served by hands or by the brain, and agents know it."""

from __future__ import annotations

from services.brain.tool_specs import BRAIN_TOOL_SCHEMAS
from services.core.agents import BUILTIN_TOOLS, DEFAULT_TOOLS, AgentSpec
from services.core.tools import BRAIN_TOOLS, SANDBOX_TOOLS, Tool
from services.hands.contract.tools import TOOL_SCHEMAS


def test_each_tool_is_served_by_hands_or_by_the_brain() -> None:
    assert set(TOOL_SCHEMAS) == set(SANDBOX_TOOLS)
    assert set(BRAIN_TOOL_SCHEMAS) == set(BRAIN_TOOLS)
    assert set(SANDBOX_TOOLS) | set(BRAIN_TOOLS) == set(Tool)
    assert not set(SANDBOX_TOOLS) & set(BRAIN_TOOLS)


def test_specs_hold_the_names_as_plain_strings() -> None:
    spec = AgentSpec(name="a", model="scripted")

    assert spec.tools == ["bash", "read_file", "write_file", "edit_file", "list_files"] == DEFAULT_TOOLS
    assert all(type(name) is str for name in [*spec.tools, *BUILTIN_TOOLS])
