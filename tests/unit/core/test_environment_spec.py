"""What an environment version may say on its own, before any deployment looks at it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.core.environment_spec import EnvironmentSpec, check, host_matches, placeholder
from services.core.errors import InvalidRequest
from services.core.settings import Settings

USE = {"secret": "t", "host": "api.example.test", "header": "Authorization", "env_name": "T"}


def test_a_pattern_names_a_host_or_its_subdomains_not_itself() -> None:
    assert host_matches("api.example.test", "api.example.test")
    assert not host_matches("api.example.test", "x.api.example.test")
    assert host_matches("*.example.test", "a.b.example.test")
    assert not host_matches("*.example.test", "example.test")
    assert not host_matches("*.example.test", "badexample.test")


@pytest.mark.parametrize(
    "network",
    [
        {"policy": "allowlist", "hosts": [{"pattern": "127.0.0.1"}]},
        {"policy": "allowlist", "hosts": [{"pattern": "API.example.test"}]},
        {"policy": "allowlist", "hosts": [{"pattern": "localhost"}]},
        {"policy": "allowlist", "hosts": [{"pattern": "*.*.example.test"}]},
        {"policy": "allowlist", "hosts": [{"pattern": "a.example.test", "ports": [70000]}]},
        {"policy": "none", "package_registries": ["x"]},
        {"policy": "everything"},
    ],
)
def test_malformed_networks_are_refused(network: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EnvironmentSpec.model_validate({"network": network})


@pytest.mark.parametrize(
    "use",
    [
        {**USE, "value": "Bearer no-slot"},
        {**USE, "host": "*.example.test"},
        {**USE, "header": "Host"},
        {**USE, "header": "Bad Header"},
        {**USE, "env_name": "lower"},
        {**USE, "value": "Bearer {secret}\r\nX-Other: 1"},
    ],
)
def test_malformed_secret_uses_are_refused(use: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        EnvironmentSpec.model_validate({"network": {"policy": "open"}, "secrets": [use]})


def test_secrets_need_a_network_and_env_names_of_their_own() -> None:
    with pytest.raises(ValidationError):
        EnvironmentSpec.model_validate({"secrets": [USE]})
    with pytest.raises(ValidationError):
        EnvironmentSpec.model_validate(
            {"network": {"policy": "open"}, "secrets": [USE, {**USE, "secret": "u"}]}
        )


def test_a_secret_for_a_host_only_a_registry_allows_passes() -> None:
    settings = Settings(egress_package_registries={"mirror": ["*.pkgs.example.test"]})
    spec = EnvironmentSpec.model_validate(
        {
            "network": {"policy": "allowlist", "package_registries": ["mirror"]},
            "secrets": [{**USE, "host": "files.pkgs.example.test"}],
        }
    )
    check(spec, settings, "t")
    with pytest.raises(InvalidRequest) as refused:
        check(spec, Settings(), "t")
    assert refused.value.code == "unknown_package_registry"


def test_a_placeholder_is_letters_digits_and_dashes() -> None:
    assert placeholder("ci.token_1") == "loopd-secret-placeholder-ci-token-1"
