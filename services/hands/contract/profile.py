"""A run's sandbox profile and the egress proxy's decisions, as typed values, and their protobuf forms.

The brain resolves a run's environment version into a `SandboxProfile` (services/brain/environment.py)
and sends it with every call; hands apply it when they make the run's sandbox and report what their
egress proxy let through or refused as `EgressDecision`s on the call's result.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.hands.contract.proto import hands_pb2 as pb

NONE = "none"
ALLOWLIST = "allowlist"
OPEN = "open"
NETWORK_MODES = (NONE, ALLOWLIST, OPEN)
RUNC = "runc"
RUNSC = "runsc"
RUNTIMES = (RUNC, RUNSC)


@dataclass(frozen=True)
class HostRule:
    # "api.example.test", or "*.example.test" for its subdomains (not itself).
    pattern: str
    # Empty: 80 and 443.
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class SecretInjection:
    """A tenant's secret, put on requests to one exact host; the sandbox only sees `placeholder`."""

    secret_name: str
    host: str
    header: str
    value_template: str
    # Sealed with the deployment's secrets key (core/secret_box.py); never the plaintext.
    sealed_value: bytes
    placeholder: str
    env_name: str


@dataclass(frozen=True)
class NetworkPolicy:
    mode: str = NONE
    allow: tuple[HostRule, ...] = ()
    inject: tuple[SecretInjection, ...] = ()
    # Bytes (both ways) the run may still move through the proxy; None: no budget.
    byte_budget: int | None = None


@dataclass(frozen=True)
class SandboxProfile:
    environment_id: str
    environment_version: int
    image: str = ""
    runtime: str = RUNC
    cpus: float | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    network: NetworkPolicy = NetworkPolicy()


@dataclass(frozen=True)
class EgressDecision:
    allowed: bool
    host: str
    port: int
    # Empty when allowed; see hands.proto for the codes.
    reason: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0
    # Seconds since the epoch.
    at: float = 0.0


def profile_to_pb(profile: SandboxProfile) -> pb.SandboxProfile:
    network = profile.network
    return pb.SandboxProfile(
        environment_id=profile.environment_id,
        environment_version=profile.environment_version,
        image=profile.image,
        runtime=profile.runtime,
        cpus=profile.cpus,
        memory_bytes=profile.memory_bytes,
        pids=profile.pids,
        network=pb.NetworkPolicy(
            mode=network.mode,
            allow=[pb.HostRule(pattern=rule.pattern, ports=list(rule.ports)) for rule in network.allow],
            inject=[
                pb.SecretInjection(
                    secret_name=item.secret_name,
                    host=item.host,
                    header=item.header,
                    value_template=item.value_template,
                    sealed_value=item.sealed_value,
                    placeholder=item.placeholder,
                    env_name=item.env_name,
                )
                for item in network.inject
            ],
            byte_budget=network.byte_budget,
        ),
    )


def profile_from_pb(message: pb.SandboxProfile) -> SandboxProfile:
    network = message.network
    return SandboxProfile(
        environment_id=message.environment_id,
        environment_version=message.environment_version,
        image=message.image,
        runtime=message.runtime or RUNC,
        cpus=message.cpus if message.HasField("cpus") else None,
        memory_bytes=message.memory_bytes if message.HasField("memory_bytes") else None,
        pids=message.pids if message.HasField("pids") else None,
        network=NetworkPolicy(
            mode=network.mode or NONE,
            allow=tuple(HostRule(rule.pattern, tuple(rule.ports)) for rule in network.allow),
            inject=tuple(
                SecretInjection(
                    secret_name=item.secret_name,
                    host=item.host,
                    header=item.header,
                    value_template=item.value_template,
                    sealed_value=item.sealed_value,
                    placeholder=item.placeholder,
                    env_name=item.env_name,
                )
                for item in network.inject
            ),
            byte_budget=network.byte_budget if network.HasField("byte_budget") else None,
        ),
    )


def egress_to_pb(decision: EgressDecision) -> pb.EgressDecision:
    return pb.EgressDecision(
        allowed=decision.allowed,
        host=decision.host,
        port=decision.port,
        reason=decision.reason,
        bytes_sent=decision.bytes_sent,
        bytes_received=decision.bytes_received,
        at=decision.at,
    )


def egress_from_pb(message: pb.EgressDecision) -> EgressDecision:
    return EgressDecision(
        allowed=message.allowed,
        host=message.host,
        port=message.port,
        reason=message.reason,
        bytes_sent=message.bytes_sent,
        bytes_received=message.bytes_received,
        at=message.at,
    )
