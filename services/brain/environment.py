"""A run's environment version as the sandbox its calls ask hands for (hands.proto SandboxProfile).

A version never changes, but the secrets it names may be set again, so the stepper resolves it once
per drive (services/brain/stepper.py): a run's calls cost no query each, and a run picks up a secret
set again when a brain next takes it. What the deployment no longer permits is narrowed, never kept:
an open network without LOOPD_EGRESS_OPEN_ALLOWED becomes none, a registry no longer configured and a
secret since deleted are left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from services.core import environments, secrets
from services.core.environment_spec import EnvironmentSpec, placeholder
from services.core.settings import Settings
from services.hands.contract.profile import HostRule, NetworkPolicy, SandboxProfile, SecretInjection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEnvironment:
    """What a run's calls carry of its environment version."""

    # Without a byte budget: each call carries what is left of `byte_budget` (`for_call`).
    profile: SandboxProfile
    workspace_bytes: int | None = None
    byte_budget: int | None = None

    def for_call(self, egress_bytes: int) -> SandboxProfile:
        """The profile of a call, once the run's sandbox has moved `egress_bytes` through the proxy."""
        if self.byte_budget is None:
            return self.profile
        network = replace(self.profile.network, byte_budget=max(0, self.byte_budget - egress_bytes))
        return replace(self.profile, network=network)


async def resolve(
    conn: AsyncConnection, settings: Settings, tenant: str, environment_id: str, version: int
) -> RunEnvironment | None:
    """The run's environment version, or None (the default sandbox) when the version is gone."""
    stored = await environments.spec_of(conn, tenant, environment_id, version)
    if stored is None:
        logger.warning(
            "environment %s version %d is gone; the default sandbox is used", environment_id, version
        )
        return None
    spec = EnvironmentSpec.model_validate(stored)
    sealed = await secrets.sealed(conn, tenant, spec.secret_names())
    return build(spec, environment_id, version, settings, sealed)


def build(
    spec: EnvironmentSpec, environment_id: str, version: int, settings: Settings, sealed: dict[str, bytes]
) -> RunEnvironment:
    """The profile of `spec`, with the sealed values of the secrets it names (those that exist)."""
    network = spec.network
    mode = network.policy
    if mode == "open" and not settings.egress_open_allowed:
        logger.warning(
            "environment %s asks for an open network, which is no longer permitted", environment_id
        )
        mode = "none"
    rules = [HostRule(rule.pattern, tuple(rule.ports)) for rule in network.hosts]
    for name in network.package_registries:
        rules += [HostRule(pattern) for pattern in settings.egress_package_registries.get(name, [])]
    injections = []
    for use in spec.secrets:
        if use.secret not in sealed:
            logger.warning("environment %s names secret %s, which is gone", environment_id, use.secret)
            continue
        injections.append(
            SecretInjection(
                secret_name=use.secret,
                host=use.host,
                header=use.header,
                value_template=use.value,
                sealed_value=sealed[use.secret],
                placeholder=placeholder(use.secret),
                env_name=use.env_name,
            )
        )
    policy = (
        NetworkPolicy(mode=mode) if mode == "none" else NetworkPolicy(mode, tuple(rules), tuple(injections))
    )
    memory = spec.limits.memory
    profile = SandboxProfile(
        environment_id=environment_id,
        environment_version=version,
        image=spec.image or "",
        runtime=spec.runtime,
        cpus=spec.limits.cpus,
        memory_bytes=int(memory) if memory is not None else None,
        pids=spec.limits.pids,
        network=policy,
    )
    workspace = int(spec.workspace_size) if spec.workspace_size is not None else None
    budget = network.byte_budget if mode != "none" else None
    return RunEnvironment(profile, workspace, budget)
