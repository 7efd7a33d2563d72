"""An environment version as the profile a run's calls carry: what the deployment no longer permits is
narrowed, never kept, and the byte budget is what the run has left."""

from __future__ import annotations

from services.brain.environment import build
from services.core.environment_spec import EnvironmentSpec
from services.core.settings import Settings
from services.hands.contract.profile import HostRule

USE = {
    "secret": "token",
    "host": "api.example.test",
    "header": "X-Key",
    "value": "{secret}",
    "env_name": "KEY",
}


def spec(**fields: object) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate(fields)


def test_the_default_spec_is_the_default_sandbox_without_network() -> None:
    resolved = build(spec(), "env_1", 1, Settings(), {})
    profile = resolved.profile
    assert (profile.image, profile.runtime, profile.cpus, profile.memory_bytes) == ("", "runc", None, None)
    assert profile.network.mode == "none" and not profile.network.allow and resolved.workspace_bytes is None
    assert resolved.for_call(10**9) == profile


def test_an_open_network_the_operator_no_longer_permits_is_none() -> None:
    asked = spec(network={"policy": "open", "byte_budget": 5}, secrets=[USE])
    assert (
        build(asked, "env_1", 2, Settings(egress_open_allowed=True), {"token": b"s"}).profile.network.mode
        == "open"
    )
    narrowed = build(asked, "env_1", 2, Settings(), {"token": b"s"})
    assert narrowed.profile.network.mode == "none" and not narrowed.profile.network.inject
    assert narrowed.byte_budget is None


def test_registries_expand_to_the_operators_hosts_and_gone_secrets_are_left_out() -> None:
    settings = Settings(egress_package_registries={"mirror": ["pkgs.example.test", "*.cdn.example.test"]})
    asked = spec(
        network={"policy": "allowlist", "package_registries": ["mirror", "retired"], "byte_budget": 100},
        secrets=[USE, {**USE, "secret": "gone", "env_name": "GONE"}],
    )
    resolved = build(asked, "env_1", 3, settings, {"token": b"sealed"})
    network = resolved.profile.network
    assert network.allow == (HostRule("pkgs.example.test"), HostRule("*.cdn.example.test"))
    assert [(i.secret_name, i.sealed_value, i.placeholder) for i in network.inject] == [
        ("token", b"sealed", "loopd-secret-placeholder-token")
    ]
    assert network.byte_budget is None, "each call carries what is left"
    assert resolved.for_call(30).network.byte_budget == 70
    assert resolved.for_call(300).network.byte_budget == 0
