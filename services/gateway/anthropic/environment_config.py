"""Environment configs: a `cloud` config's networking as loopd's network policy (core/environment_spec.py),
which the hands' egress proxy enforces.

`limited` with nothing allowed is no network; `limited` with `allowed_hosts` (names, `*.` patterns,
an optional `:port`) or `allow_package_managers` (every package registry the operator configured) is
an allowlist; `unrestricted` is an open network, where the operator permits one. An omitted network
is `limited` with nothing allowed. A config is stored as given; the version it writes holds the
policy (`spec_for`). MCP servers and packages to install stay refused: agents here have no MCP
servers, and loopd installs nothing when a session starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.core.environment_spec import EnvironmentSpec, HostAllow, Network
from services.core.errors import InvalidRequest
from services.core.settings import Settings

_PACKAGE_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")
NO_NETWORK = {
    "type": "limited",
    "allowed_hosts": [],
    "allow_mcp_servers": False,
    "allow_package_managers": False,
}
NO_PACKAGES: dict[str, Any] = {"type": "packages", **{manager: [] for manager in _PACKAGE_MANAGERS}}
DEFAULT: dict[str, Any] = {"type": "cloud", "networking": NO_NETWORK, "packages": NO_PACKAGES}
MAX_ALLOWED_HOSTS = 256
# A scheme before a host names its port: what a team may have written for the API elsewhere.
_SCHEME_PORTS = {"https://": 443, "http://": 80}


def _refused(message: str, code: str = "invalid_environment_config") -> InvalidRequest:
    return InvalidRequest(message, code=code)


def _reason(error: ValidationError) -> str:
    return str(error.errors()[0]["msg"]).removeprefix("Value error, ")


def host_rule(entry: str) -> HostAllow:
    """One `allowed_hosts` entry as an allowlist rule, checked as loopd's own API checks its hosts."""
    text, ports = entry, []
    for scheme, port in _SCHEME_PORTS.items():
        if text.startswith(scheme):
            text, ports = text[len(scheme) :], [port]
    host, colon, port_text = text.partition(":")
    try:
        if colon:
            if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
                raise ValueError("a port is a number")
            ports = [int(port_text)]
        return HostAllow(pattern=host, ports=ports)
    except ValueError as error:  # a ValidationError too
        raise _refused(
            f"allowed_hosts entry {entry!r} is not a lower-case host name (api.example.test) or "
            f"*.example.test, with an optional :port{_why_not_a_host(error)}",
            "invalid_allowed_host",
        ) from None


def _why_not_a_host(error: ValueError) -> str:
    """What else to say: a validator's reason, but not the host pattern's regular expression."""
    if not isinstance(error, ValidationError):
        return f" ({error})"
    if error.errors()[0]["type"] == "string_pattern_mismatch":
        return ""
    return f" ({_reason(error)})"


def _limited(value: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - set(NO_NETWORK))
    if unknown:
        raise _refused(f"networking has unknown fields {unknown}")
    base = current if current.get("type") == "limited" else NO_NETWORK
    merged = {**NO_NETWORK, **base, **{k: v for k, v in value.items() if v is not None}}
    hosts = merged["allowed_hosts"]
    if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
        raise _refused("networking.allowed_hosts must be a list of host names")
    if len(hosts) > MAX_ALLOWED_HOSTS:
        raise _refused(f"networking.allowed_hosts has more than {MAX_ALLOWED_HOSTS} entries")
    for flag in ("allow_mcp_servers", "allow_package_managers"):
        if not isinstance(merged[flag], bool):
            raise _refused(f"networking.{flag} must be true or false")
    if merged["allow_mcp_servers"]:
        raise _refused(
            "agents served by loopd have no MCP servers, so allow_mcp_servers must be false", "not_served"
        )
    for entry in hosts:
        host_rule(entry)
    return merged


def _networking(value: Any, current: dict[str, Any]) -> dict[str, Any]:
    if value is None:
        return current
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "unrestricted":
        if set(value) != {"type"}:
            raise _refused("unrestricted networking has no other fields")
        return {"type": "unrestricted"}
    if kind != "limited":
        raise _refused("networking.type must be limited or unrestricted")
    return _limited(value, current)


def _packages(value: Any) -> dict[str, Any]:
    if value is None:
        return dict(NO_PACKAGES)
    if not isinstance(value, dict):
        raise _refused("packages must be an object")
    if any(value.get(manager) for manager in _PACKAGE_MANAGERS):
        raise _refused(
            "loopd installs no packages when a session starts; bake them into the sandbox image, or let "
            "the session install them with allow_package_managers",
            "not_served",
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
        raise _refused("config.type must be cloud")
    unknown = sorted(set(config) - {"type", "networking", "packages"})
    if unknown:
        raise _refused(f"config has unknown fields {unknown}")
    packages = base["packages"] if "packages" not in config else _packages(config["packages"])
    return {
        "type": "cloud",
        "networking": _networking(config.get("networking"), base["networking"]),
        "packages": packages,
    }


def network_of(networking: dict[str, Any], settings: Settings) -> Network:
    """The network policy a resolved `networking` asks for on this deployment."""
    if networking["type"] == "unrestricted":
        if not settings.egress_open_allowed:
            raise InvalidRequest(
                "unrestricted networking is not permitted on this server (LOOPD_EGRESS_OPEN_ALLOWED is "
                "off); use limited networking with allowed_hosts",
                code="open_network_not_allowed",
            )
        return Network(policy="open")
    rules = [host_rule(entry) for entry in networking["allowed_hosts"]]
    registries: list[str] = []
    if networking["allow_package_managers"]:
        registries = sorted(settings.egress_package_registries)
        if not registries:
            raise InvalidRequest(
                "this server configures no package registries (LOOPD_EGRESS_PACKAGE_REGISTRIES), so "
                "allow_package_managers must be false; name the registries' hosts in allowed_hosts",
                code="no_package_registries",
            )
    if not rules and not registries:
        return Network()
    return Network(policy="allowlist", hosts=rules, package_registries=registries)


def spec_for(config: dict[str, Any], settings: Settings, base: EnvironmentSpec) -> EnvironmentSpec:
    """`base` (the latest version's spec) with the network `config` asks for; the rest (image, limits,
    secrets, the byte budget) is loopd's own and kept."""
    network = network_of(config["networking"], settings)
    network = network.model_copy(update={"byte_budget": base.network.byte_budget})
    try:
        return EnvironmentSpec.model_validate({**base.model_dump(), "network": network.model_dump()})
    except ValidationError as error:
        raise _refused(f"this environment cannot have that network: {_reason(error)}") from None


def of_spec(spec: EnvironmentSpec) -> dict[str, Any]:
    """How the Managed Agents view shows a version made natively: its network as `networking`."""
    network = spec.network
    if network.policy == "none":
        return dict(DEFAULT)
    if network.policy == "open":
        networking: dict[str, Any] = {"type": "unrestricted"}
    else:
        hosts = [
            f"{rule.pattern}:{port}" if rule.ports else rule.pattern
            for rule in network.hosts
            for port in (rule.ports or [0])
        ]
        networking = {
            **NO_NETWORK,
            "allowed_hosts": hosts,
            "allow_package_managers": bool(network.package_registries),
        }
    return {"type": "cloud", "networking": networking, "packages": NO_PACKAGES}
