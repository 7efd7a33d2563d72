"""Environment configs of the Managed Agents view: what a config may say, and how its networking maps
onto loopd's network policy on a given deployment."""

from __future__ import annotations

import pytest

from services.core.environment_spec import EnvironmentSpec
from services.core.errors import InvalidRequest
from services.core.settings import Settings
from services.gateway.anthropic import environment_config


def test_an_environment_gets_the_network_that_is_enforced_or_is_refused() -> None:
    assert environment_config.resolve(None)["networking"]["type"] == "limited"
    assert (
        environment_config.resolve({"type": "cloud", "networking": {"type": "limited"}})
        == environment_config.DEFAULT
    )
    for refused in (
        {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1"]}},
        {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": "example.com"}},
        {"type": "cloud", "networking": {"type": "limited", "allow_mcp_servers": True}},
        {"type": "cloud", "networking": {"type": "limited", "allow_package_managers": "yes"}},
        {"type": "cloud", "networking": {"type": "unrestricted", "allowed_hosts": []}},
        {"type": "cloud", "packages": {"pip": ["requests"]}},
        {"type": "self_hosted"},
    ):
        with pytest.raises(InvalidRequest):
            environment_config.resolve(refused)


@pytest.mark.parametrize(
    ("entry", "pattern", "ports"),
    [
        ("api.example.test", "api.example.test", []),
        ("*.example.test", "*.example.test", []),
        ("api.example.test:8443", "api.example.test", [8443]),
        ("https://api.example.test", "api.example.test", [443]),
        ("http://api.example.test", "api.example.test", [80]),
        ("https://api.example.test:8443", "api.example.test", [8443]),
    ],
)
def test_an_allowed_host_is_a_pattern_with_its_ports(entry: str, pattern: str, ports: list[int]) -> None:
    rule = environment_config.host_rule(entry)
    assert (rule.pattern, rule.ports) == (pattern, ports)


@pytest.mark.parametrize(
    "entry", ["", "10.0.0.1", "Api.example.test", "api.example.test:", "api.example.test:99999", "x.test:+1"]
)
def test_what_is_not_a_host_pattern_is_refused(entry: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        environment_config.host_rule(entry)
    assert refused.value.code == "invalid_allowed_host"


def test_networking_maps_onto_the_network_policy() -> None:
    registries = Settings(egress_package_registries={"b": ["b.example.test"], "a": ["a.example.test"]})
    nothing = environment_config.resolve({"type": "cloud", "networking": {"type": "limited"}})
    assert environment_config.network_of(nothing["networking"], registries).policy == "none"
    packages = environment_config.resolve(
        {"type": "cloud", "networking": {"type": "limited", "allow_package_managers": True}}
    )
    network = environment_config.network_of(packages["networking"], registries)
    assert (network.policy, network.package_registries, network.hosts) == ("allowlist", ["a", "b"], [])
    with pytest.raises(InvalidRequest) as none_configured:
        environment_config.network_of(packages["networking"], Settings())
    assert none_configured.value.code == "no_package_registries"
    unrestricted = {"type": "unrestricted"}
    assert environment_config.network_of(unrestricted, Settings(egress_open_allowed=True)).policy == "open"
    with pytest.raises(InvalidRequest) as not_permitted:
        environment_config.network_of(unrestricted, Settings())
    assert not_permitted.value.code == "open_network_not_allowed"


def test_a_native_allowlist_shows_its_ports_as_allowed_hosts() -> None:
    spec = EnvironmentSpec.model_validate(
        {"network": {"policy": "allowlist", "hosts": [{"pattern": "a.example.test", "ports": [8443, 80]}]}}
    )
    shown = environment_config.of_spec(spec)["networking"]["allowed_hosts"]
    assert shown == ["a.example.test:80", "a.example.test:8443"]
    rules = [environment_config.host_rule(entry) for entry in shown]
    assert [(rule.pattern, rule.ports) for rule in rules] == [
        ("a.example.test", [80]),
        ("a.example.test", [8443]),
    ]
