"""What one version of an environment says about its runs' sandbox: image, runtime, limits, workspace,
network policy and the secrets put on its requests (docs/environments.md).

The model checks a spec's own shape; `check` checks it against the deployment (its ceilings, whether
an open network is permitted, which package registries it names). Whether the secrets it names exist
is the environment store's to check, in the transaction that stores the version.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

from services.core.errors import InvalidRequest
from services.core.settings import Settings

# A DNS name of at least two labels, lower case; "*." before it for its subdomains.
_HOST = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
HOST_PATTERN = rf"^(?:\*\.)?{_HOST}$"
EXACT_HOST = rf"^{_HOST}$"
SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"
# An HTTP header name (RFC 9110 token); the proxy sets it, so hop-by-hop and routing headers are out.
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
_RESERVED_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "upgrade", "te", "trailer"}
IMAGE_PATTERN = r"^[a-z0-9][a-zA-Z0-9._/:@-]{0,254}$"
SECRET_SLOT = "{secret}"
# Only letters, digits and dashes, so the placeholder survives any shell or header it is put in.
PLACEHOLDER_PREFIX = "loopd-secret-placeholder-"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _named_host(host: str) -> str:
    """A name, not an address: no top-level domain is all digits, so this rules out IPv4 literals."""
    if host.rsplit(".", 1)[-1].isdigit():
        raise ValueError("a host is a DNS name, not an IP address")
    return host


class Limits(Model):
    """None: the hands worker's own default for its sandboxes."""

    cpus: float | None = Field(None, gt=0, le=1024)
    memory: ByteSize | None = Field(None, ge=16 * 1024**2, description="bytes, or e.g. 512MiB")
    pids: int | None = Field(None, ge=16, le=2**22)


class HostAllow(Model):
    pattern: str = Field(pattern=HOST_PATTERN, description="api.example.test, or *.example.test")
    ports: list[int] = Field(default_factory=list, max_length=16, description="empty: 80 and 443")

    _named = field_validator("pattern")(_named_host)

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, ports: list[int]) -> list[int]:
        if any(port < 1 or port > 65535 for port in ports):
            raise ValueError("ports are 1 to 65535")
        return sorted(set(ports))


class Network(Model):
    policy: Literal["none", "allowlist", "open"] = "none"
    hosts: list[HostAllow] = Field(default_factory=list, max_length=256)
    package_registries: list[str] = Field(
        default_factory=list, max_length=32, description="names the operator configured"
    )
    byte_budget: int | None = Field(
        None, ge=0, le=2**62, description="bytes (both ways) a run may move through the proxy"
    )

    @model_validator(mode="after")
    def _hosts_need_allowlist(self) -> Network:
        if self.policy != "allowlist" and (self.hosts or self.package_registries):
            raise ValueError("hosts and package_registries need policy allowlist")
        return self


class SecretUse(Model):
    """A secret the egress proxy puts on requests to one host; the sandbox sees a placeholder."""

    secret: str = Field(pattern=SECRET_NAME)
    host: str = Field(pattern=EXACT_HOST, description="the exact host (no pattern)")
    header: str = Field(pattern=HEADER_NAME, description="e.g. Authorization")
    value: str = Field(
        f"Bearer {SECRET_SLOT}", min_length=len(SECRET_SLOT), max_length=1024, description="with {secret}"
    )
    env_name: str = Field(pattern=ENV_NAME, description="where the sandbox finds the placeholder")

    _named = field_validator("host")(_named_host)

    @field_validator("value")
    @classmethod
    def _has_slot(cls, value: str) -> str:
        if SECRET_SLOT not in value:
            raise ValueError(f"value must contain {SECRET_SLOT}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("value must not contain control characters")
        return value

    @field_validator("header")
    @classmethod
    def _settable(cls, header: str) -> str:
        if header.lower() in _RESERVED_HEADERS:
            raise ValueError(f"the proxy does not set {header}")
        return header


class EnvironmentSpec(Model):
    image: str | None = Field(None, pattern=IMAGE_PATTERN, description="none: the server's sandbox image")
    runtime: Literal["runc", "runsc"] = "runc"
    limits: Limits = Field(default_factory=Limits)
    workspace_size: ByteSize | None = Field(None, ge=16 * 1024**2, description="none: the server's default")
    network: Network = Field(default_factory=Network)
    secrets: list[SecretUse] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _secrets_fit(self) -> EnvironmentSpec:
        names = [use.env_name for use in self.secrets]
        if len(names) != len(set(names)):
            raise ValueError("each secret needs an env_name of its own")
        if self.secrets and self.network.policy == "none":
            raise ValueError("secrets need a network: policy allowlist or open")
        return self

    def secret_names(self) -> set[str]:
        return {use.secret for use in self.secrets}


def host_matches(pattern: str, host: str) -> bool:
    """Whether `host` is `pattern`, or a subdomain of it for a "*." pattern (not the domain itself)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def placeholder(secret: str) -> str:
    """What a sandbox holds instead of `secret`'s value."""
    return PLACEHOLDER_PREFIX + re.sub(r"[^A-Za-z0-9-]", "-", secret)


def _above(what: str, asked: float, ceiling: float) -> InvalidRequest:
    def shown(value: float) -> str:
        return value.human_readable() if isinstance(value, ByteSize) else f"{value:g}"

    message = f"{what} {shown(asked)} is above this server's ceiling of {shown(ceiling)}"
    return InvalidRequest(message, code="above_ceiling")


def check(spec: EnvironmentSpec, settings: Settings, tenant: str) -> None:
    """Refuse (422) what this deployment does not give: past a ceiling, an open network it does not
    permit, a package registry it does not know, a secret for a host the network does not reach."""
    ceilings = settings.ceilings_for(tenant)
    limits = spec.limits
    for what, asked, ceiling in (
        ("limits.cpus", limits.cpus, ceilings.sandbox_cpus),
        ("limits.memory", limits.memory, ceilings.sandbox_memory),
        ("limits.pids", limits.pids, ceilings.sandbox_pids),
        ("workspace_size", spec.workspace_size, settings.sandbox_workspace_max_size),
    ):
        if asked is not None and asked > ceiling:
            raise _above(what, asked, ceiling)
    network = spec.network
    if network.policy == "open" and not settings.egress_open_allowed:
        raise InvalidRequest(
            "this server does not permit open networks (LOOPD_EGRESS_OPEN_ALLOWED); use an allowlist",
            code="open_network_not_allowed",
        )
    unknown = sorted(set(network.package_registries) - set(settings.egress_package_registries))
    if unknown:
        known = sorted(settings.egress_package_registries) or "none"
        raise InvalidRequest(
            f"unknown package registries {unknown}; this server has {known}", code="unknown_package_registry"
        )
    if network.policy == "allowlist":
        patterns = allowed_patterns(spec, settings)
        for use in spec.secrets:
            if not any(host_matches(pattern, use.host) for pattern in patterns):
                raise InvalidRequest(
                    f"secret {use.secret} goes to {use.host}, which the allowlist does not reach",
                    code="secret_host_not_allowed",
                )


def allowed_patterns(spec: EnvironmentSpec, settings: Settings) -> list[str]:
    """The allowlist's host patterns: its own, then those of the package registries it names."""
    patterns = [rule.pattern for rule in spec.network.hosts]
    for name in spec.network.package_registries:
        patterns += settings.egress_package_registries.get(name, [])
    return patterns
