"""Environment configs: what a `cloud` config may ask for on loopd's sandboxes, which have no network.

Its configs are kept with no network (the default spec of a version); an environment made natively
(routes/environments.py) is shown with its latest version's network (`of_spec`). A config whose
network loopd cannot enforce (`unrestricted`, or `limited` with any host, registry or MCP
server allowed) is refused with a 400 rather than widened; an omitted network is the one enforced:
`limited` with nothing allowed. Packages need a registry, so they are refused too.
"""

from __future__ import annotations

from typing import Any

from services.core.environment_spec import EnvironmentSpec
from services.core.errors import InvalidRequest

_PACKAGE_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")
NO_NETWORK = {
    "type": "limited",
    "allowed_hosts": [],
    "allow_mcp_servers": False,
    "allow_package_managers": False,
}
NO_PACKAGES: dict[str, Any] = {"type": "packages", **{manager: [] for manager in _PACKAGE_MANAGERS}}
DEFAULT: dict[str, Any] = {"type": "cloud", "networking": NO_NETWORK, "packages": NO_PACKAGES}


def _refused(message: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, code=code)


def _networking(value: Any, current: dict[str, Any]) -> dict[str, Any]:
    if value is None:
        return current
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "unrestricted":
        raise _refused(
            "unrestricted networking cannot be enforced: loopd's sandboxes have no network; "
            "use limited networking with no allowed hosts",
            "network_not_enforceable",
        )
    if kind != "limited":
        raise _refused("networking.type must be limited or unrestricted", "invalid_environment_config")
    merged = {**current, **{k: v for k, v in value.items() if v is not None}}
    if merged.get("allowed_hosts") or merged.get("allow_mcp_servers") or merged.get("allow_package_managers"):
        raise _refused(
            "loopd's sandboxes have no network, so no host, package registry or MCP server can be allowed",
            "network_not_enforceable",
        )
    return dict(NO_NETWORK)


def _packages(value: Any) -> dict[str, Any]:
    if value is None:
        return dict(NO_PACKAGES)
    if not isinstance(value, dict):
        raise _refused("packages must be an object", "invalid_environment_config")
    if any(value.get(manager) for manager in _PACKAGE_MANAGERS):
        raise _refused(
            "packages need a package registry, which loopd's sandboxes cannot reach; bake them into the "
            "sandbox image instead",
            "network_not_enforceable",
        )
    return dict(NO_PACKAGES)


def resolve(config: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config to store for a create (`current` None) or an update (omitted fields keep theirs)."""
    base = current or DEFAULT
    if config is None:
        return dict(base)
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == "self_hosted":
        raise _refused("self-hosted environments are not served by loopd", "not_served")
    if kind != "cloud":
        raise _refused("config.type must be cloud", "invalid_environment_config")
    unknown = sorted(set(config) - {"type", "networking", "packages"})
    if unknown:
        raise _refused(f"config has unknown fields {unknown}", "invalid_environment_config")
    packages = base["packages"] if "packages" not in config else _packages(config["packages"])
    return {
        "type": "cloud",
        "networking": _networking(config.get("networking"), base["networking"]),
        "packages": packages,
    }


def of_spec(spec: EnvironmentSpec) -> dict[str, Any]:
    """How the Managed Agents view shows a version made natively: its network as `networking`."""
    network = spec.network
    if network.policy == "none":
        return dict(DEFAULT)
    if network.policy == "open":
        networking: dict[str, Any] = {"type": "unrestricted"}
    else:
        networking = {
            **NO_NETWORK,
            "allowed_hosts": [rule.pattern for rule in network.hosts],
            "allow_package_managers": bool(network.package_registries),
        }
    return {"type": "cloud", "networking": networking, "packages": NO_PACKAGES}
