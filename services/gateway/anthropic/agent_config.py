"""Agent configs between the two wires: a Managed Agents agent (model, system, toolsets, custom tools)
becomes a loopd AgentSpec, and any stored loopd agent reads back as a Managed Agents agent.

What the spec cannot say (description, metadata, the model's options, the toolset as it was written) is
kept beside it as the version's profile, so an agent made here reads back as it was made. What loopd
cannot do is refused with a clear error, never silently dropped: MCP servers, skills, multiagent, the
`auto` permission policy, and web tools (sandboxes have no network).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.core.agents import AgentSpec, Limits, RetryPolicy, ScriptedTurn
from services.core.errors import InvalidRequest
from services.core.tools import TOOLSET_TOOLS

TOOLSET = "agent_toolset_20260401"
SERVED_TOOLS = tuple(str(tool) for tool in TOOLSET_TOOLS)
NETWORK_TOOLS = ("web_fetch", "web_search")
ALL_TOOLS = SERVED_TOOLS + NETWORK_TOOLS
_PERMISSIONS = {"always_allow": "allow", "always_ask": "ask"}
_POLICIES = {permission: policy for policy, permission in _PERMISSIONS.items()}
_MODEL_OPTIONS = ("effort", "speed", "inference_geo")
_EFFORTS = ("low", "medium", "high", "xhigh", "max")


def refused(message: str, code: str = "invalid_agent_config") -> InvalidRequest:
    return InvalidRequest(message, code=code)


def loopd_model(model_id: str) -> str:
    """The loopd model for a Managed Agents model id: `claude-…` goes to the Anthropic provider, and
    `provider/name` (and `scripted`) reach loopd's other providers unchanged."""
    if model_id.startswith("claude-"):
        return f"anthropic/{model_id}"
    if model_id == "scripted" or "/" in model_id:
        return model_id
    raise refused(
        f"model {model_id!r} is not one loopd can reach: use a claude-… id, or provider/name", "unknown_model"
    )


def managed_model_id(model: str) -> str:
    return model.removeprefix("anthropic/")


def model_config(value: Any) -> dict[str, Any]:
    """A model given as an id or as {id, effort, speed, inference_geo}, in its resolved object form."""
    if isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise refused("model must be a model id or an object with an `id`")
    unknown = sorted(set(value) - {"id", *_MODEL_OPTIONS})
    if unknown:
        raise refused(f"model has unknown fields {unknown}")
    resolved: dict[str, Any] = {"id": value["id"]}
    effort = value.get("effort")
    if isinstance(effort, str):
        effort = {"type": effort}
    if effort is not None:
        if not isinstance(effort, dict) or effort.get("type") not in _EFFORTS:
            raise refused(f"model.effort must be one of {list(_EFFORTS)}")
        resolved["effort"] = {"type": effort["type"]}
    for option in ("speed", "inference_geo"):
        if value.get(option) is not None:
            resolved[option] = value[option]
    loopd_model(resolved["id"])
    return resolved


def _policy(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "auto":
        raise refused(f"{where}: the `auto` permission policy is not served; use always_allow or always_ask")
    if kind not in _PERMISSIONS:
        raise refused(f"{where}: permission_policy must be always_allow or always_ask")
    return {"type": kind}


def _toolset(entry: dict[str, Any]) -> dict[str, Any]:
    """The toolset entry with every tool's config resolved (defaults applied, web tools off)."""
    default = entry.get("default_config") or {}
    if not isinstance(default, dict):
        raise refused("default_config must be an object")
    enabled = default.get("enabled")
    policy = _policy(default.get("permission_policy"), "default_config") or {"type": "always_allow"}
    resolved_default = {"enabled": True if enabled is None else bool(enabled), "permission_policy": policy}
    overrides: dict[str, dict[str, Any]] = {}
    for config in entry.get("configs") or []:
        name = config.get("name") if isinstance(config, dict) else None
        if name not in ALL_TOOLS:
            raise refused(f"the toolset has no tool {name!r}; its tools are {list(ALL_TOOLS)}")
        if name in overrides:
            raise refused(f"the toolset configures {name} twice")
        overrides[name] = config
    configs = []
    for name in ALL_TOOLS:
        override = overrides.get(name, {})
        on = override.get("enabled")
        tool_enabled = resolved_default["enabled"] if on is None else bool(on)
        if name in NETWORK_TOOLS:
            if on:
                raise refused(
                    f"{name} needs network access, which loopd's sandboxes do not have", "needs_network"
                )
            # Enabled only by the default: shown off, since it cannot run here.
            tool_enabled = False
        tool_policy = (
            _policy(override.get("permission_policy"), name) or resolved_default["permission_policy"]
        )
        configs.append(
            {"type": name, "name": name, "enabled": tool_enabled, "permission_policy": tool_policy}
        )
    return {"type": TOOLSET, "default_config": resolved_default, "configs": configs}


def _custom(entry: dict[str, Any]) -> dict[str, Any]:
    name, schema = entry.get("name"), entry.get("input_schema")
    if not isinstance(name, str) or not isinstance(schema, dict) or schema.get("type") != "object":
        raise refused("a custom tool needs a name and an input_schema of type object")
    return {
        "type": "custom",
        "name": name,
        "description": str(entry.get("description") or ""),
        "input_schema": schema,
    }


def resolve_tools(tools: Any) -> list[dict[str, Any]]:
    """The tools of a create or update request, resolved as the agent will report them."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise refused("tools must be a list")
    resolved: list[dict[str, Any]] = []
    for entry in tools:
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == TOOLSET:
            if any(tool["type"] == TOOLSET for tool in resolved):
                raise refused(f"{TOOLSET} is given twice")
            resolved.append(_toolset(entry))
        elif kind == "custom":
            resolved.append(_custom(entry))
        elif kind == "mcp_toolset":
            raise refused("MCP toolsets are not served by loopd", "not_served")
        else:
            raise refused(f"unknown tool type {kind!r}; give {TOOLSET} or custom tools")
    return resolved


def check_unserved(body: dict[str, Any]) -> None:
    """Refuse the parts of an agent config loopd does not serve."""
    if body.get("mcp_servers"):
        raise refused("MCP servers are not served by loopd", "not_served")
    if body.get("skills"):
        raise refused("skills are not served by loopd", "not_served")
    if body.get("multiagent") is not None:
        raise refused("multiagent configurations are not served by loopd", "not_served")
    identity = body.get("execution_identity")
    if identity is not None and identity != {"type": "service_account"}:
        raise refused("only the service_account execution identity is served", "not_served")


def spec_of(config: dict[str, Any], extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The loopd AgentSpec (as stored) for a resolved Managed Agents config; `extras` is `x_loopd`."""
    extras = extras or {}
    unknown = sorted(set(extras) - {"script", "limits", "retry"})
    if unknown:
        raise refused(f"x_loopd has unknown fields {unknown}; it takes script, limits and retry")
    tools: list[str] = []
    permissions: dict[str, str] = {}
    client_tools: list[dict[str, Any]] = []
    toolset = None
    for entry in config["tools"]:
        if entry["type"] == TOOLSET:
            toolset = TOOLSET
            for tool in entry["configs"]:
                if tool["enabled"]:
                    tools.append(tool["name"])
                    permissions[tool["name"]] = _PERMISSIONS[tool["permission_policy"]["type"]]
        else:
            client_tools.append({k: entry[k] for k in ("name", "description", "input_schema")})
    candidate: dict[str, Any] = {
        "name": config["name"],
        "model": loopd_model(config["model"]["id"]),
        "system": config.get("system") or "",
        "tools": tools,
        "client_tools": client_tools,
        "permissions": permissions,
        "toolset": toolset,
    }
    for key, kind in (("limits", Limits), ("retry", RetryPolicy)):
        if extras.get(key) is not None:
            candidate[key] = kind.model_validate(extras[key]).model_dump(mode="json")
    if extras.get("script") is not None:
        candidate["script"] = [
            ScriptedTurn.model_validate(turn).model_dump(mode="json") for turn in extras["script"]
        ]
    try:
        return AgentSpec.model_validate(candidate).model_dump(mode="json")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the agent"
        raise refused(f"{where}: {first['msg']}") from None


def extras_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The loopd-only settings of a spec (`x_loopd`), which a new version or an override keeps."""
    return {key: spec[key] for key in ("script", "limits", "retry") if spec.get(key) is not None}


def profile_of(config: dict[str, Any]) -> dict[str, Any]:
    """What a version keeps beside its spec, so that it reads back as it was written."""
    return {k: config[k] for k in ("description", "metadata", "model", "tools")}


def config_of(spec: dict[str, Any], profile: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved Managed Agents config of a stored version (made here, or natively)."""
    if profile is not None:
        return {"name": spec["name"], "system": spec.get("system") or None, **profile}
    return {
        "name": spec["name"],
        "system": spec.get("system") or None,
        "description": None,
        "metadata": {},
        "model": {"id": managed_model_id(spec["model"])},
        "tools": _tools_of_spec(spec),
    }


def _tools_of_spec(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A natively made agent's tools as a toolset: its toolset tools on, the others off (loopd's own
    tools, such as read_file, show under x_loopd only)."""
    permissions = spec.get("permissions") or {}
    configs = []
    for name in ALL_TOOLS:
        permission = permissions.get(name, "allow")
        enabled = name in spec.get("tools", []) and permission != "deny"
        policy = {"type": _POLICIES.get(permission, "always_allow")}
        configs.append({"type": name, "name": name, "enabled": enabled, "permission_policy": policy})
    toolset = {
        "type": TOOLSET,
        "default_config": {"enabled": False, "permission_policy": {"type": "always_allow"}},
        "configs": configs,
    }
    custom = [{"type": "custom", **tool} for tool in spec.get("client_tools", [])]
    return [toolset, *custom]
