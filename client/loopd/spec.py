"""Reads agent spec files (YAML) and `key=value` options into the JSON bodies the API expects.

Only the shape is checked here, so a typo fails before any request; the gateway remains the judge
of what a valid spec is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from loopd.errors import SpecError
from loopd.models import PERMISSIONS


def load_agent_spec(path: str | Path) -> dict[str, Any]:
    """Load an agent spec from a YAML file; `name` defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    checked = check_agent_spec(spec, source=str(path))
    checked.setdefault("name", path.stem)
    return checked


def check_agent_spec(spec: Any, *, source: str = "agent spec") -> dict[str, Any]:
    """Return `spec` if it has the shape of an agent spec; raise SpecError if not."""
    if not isinstance(spec, dict):
        raise SpecError(f"{source} must be a mapping with at least a `model` key")
    model = spec.get("model")
    if not isinstance(model, str) or not model.strip():
        raise SpecError(f"{source}: `model` must be a non-empty string, e.g. scripted or openai/gpt-4o-mini")
    tools = spec.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
        raise SpecError(f"{source}: `tools` must be a list of tool names")
    for key in ("system", "name"):
        if key in spec and not isinstance(spec[key], str):
            raise SpecError(f"{source}: `{key}` must be a string")
    if "limits" in spec and not isinstance(spec["limits"], dict):
        raise SpecError(f"{source}: `limits` must be a mapping")
    _check_client_tools(spec.get("client_tools"), source)
    _check_permissions(spec.get("permissions"), source)
    _check_script(spec.get("script"), source)
    return spec


def _check_client_tools(client_tools: Any, source: str) -> None:
    if client_tools is None:
        return
    if not isinstance(client_tools, list):
        raise SpecError(f"{source}: `client_tools` must be a list of tools")
    for number, tool in enumerate(client_tools, start=1):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise SpecError(
                f"{source}: client tool {number} must be a mapping with a `name` "
                "(and a `description` and an `input_schema`)"
            )
        if "input_schema" in tool and not isinstance(tool["input_schema"], dict):
            raise SpecError(f"{source}: client tool {tool['name']}: `input_schema` must be a JSON schema")


def _check_permissions(permissions: Any, source: str) -> None:
    if permissions is None:
        return
    if not isinstance(permissions, dict):
        raise SpecError(f"{source}: `permissions` must map tool names to {', '.join(PERMISSIONS)}")
    for tool, permission in permissions.items():
        if permission not in PERMISSIONS:
            raise SpecError(
                f"{source}: permission for {tool!r} must be one of {', '.join(PERMISSIONS)}, "
                f"got {permission!r}"
            )


def _check_script(script: Any, source: str) -> None:
    if script is None:
        return
    if not isinstance(script, list):
        raise SpecError(f"{source}: `script` must be a list of turns")
    for number, turn in enumerate(script, start=1):
        if not isinstance(turn, dict):
            raise SpecError(
                f"{source}: script turn {number} must be a mapping with `text` and/or `tool_calls`"
            )
        calls = turn.get("tool_calls", [])
        if not isinstance(calls, list) or not all(isinstance(c, dict) and "name" in c for c in calls):
            raise SpecError(f"{source}: script turn {number}: each tool call needs a `name` (and an `input`)")


def parse_metadata(pairs: Iterable[str]) -> dict[str, str]:
    """Turn `["team=infra", "ticket=42"]` into a dict; a later key overrides an earlier one."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"metadata must look like key=value, got {pair!r}", code="invalid_metadata")
        metadata[key.strip()] = value
    return metadata


class _SpecDumper(yaml.SafeDumper):
    """Writes multi-line strings (system prompts, file contents) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _represent_str)


def to_yaml(spec: dict[str, Any]) -> str:
    """A spec as YAML that `load_agent_spec` reads back unchanged."""
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)
