"""The egress proxy's decisions by name and address (proxy/rules.py), and what a networked sandbox gets."""

from __future__ import annotations

import pytest

from services.hands.contract.api import ExecuteResult
from services.hands.contract.profile import (
    EgressDecision,
    HostRule,
    NetworkPolicy,
    SandboxProfile,
    SecretInjection,
)
from services.hands.egress.environment import sandbox_environment
from services.hands.egress.proxy import rules
from services.hands.fleet.pool import shape_of
from services.hands.sandbox import SandboxSpec
from services.hands.workspace.ledger import decode, encode

ALLOWLIST = rules.Policy(
    "allowlist", (rules.Rule("api.example.test"), rules.Rule("*.cdn.example.test", (8443,)))
)


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [
        ("api.example.test", 443, None),
        ("api.example.test", 80, None),
        ("api.example.test", 8080, rules.NOT_ALLOWED),
        ("x.api.example.test", 443, rules.NOT_ALLOWED),
        ("img.cdn.example.test", 8443, None),
        ("a.b.cdn.example.test", 8443, None),
        ("cdn.example.test", 8443, rules.NOT_ALLOWED),  # a wildcard names subdomains, not itself
        ("evilcdn.example.test", 8443, rules.NOT_ALLOWED),
        ("img.cdn.example.test", 443, rules.NOT_ALLOWED),
        ("example.org", 443, rules.NOT_ALLOWED),
        ("127.0.0.1", 443, rules.IP_LITERAL),
        ("::1", 443, rules.IP_LITERAL),
        ("2130706433", 443, rules.IP_LITERAL),  # 127.0.0.1 as one number
        ("0x7f.1", 443, rules.IP_LITERAL),
        ("", 443, rules.NOT_ALLOWED),
    ],
)
def test_an_allowlist_lets_through_exact_names_and_subdomains_of_wildcards(
    host: str, port: int, reason: str | None
) -> None:
    assert ALLOWLIST.refusal(host, port) == reason


def test_open_lets_any_name_through_but_never_an_address() -> None:
    policy = rules.Policy("open")

    assert policy.refusal("anything.example.org", 22) is None
    assert policy.refusal("10.0.0.1", 443) == rules.IP_LITERAL


def test_hosts_compare_without_case_port_brackets_or_trailing_dot() -> None:
    assert rules.host_of("API.Example.Test.:443") == "api.example.test"
    assert rules.host_of("[::1]:8080") == "::1"
    assert rules.host_of("api.example.test") == "api.example.test"


def test_only_global_addresses_and_listed_networks_are_reachable() -> None:
    listed = rules.parse_networks(["127.0.0.2/32", "10.1.0.0/16"])
    addresses = ["127.0.0.2", "127.0.0.5", "10.1.2.3", "10.2.0.1", "169.254.169.254", "93.184.215.14", "::1"]

    kept = rules.reachable([*addresses, "::ffff:127.0.0.1", "fe80::1", "100.64.0.1"], listed)

    assert kept == ["127.0.0.2", "10.1.2.3", "93.184.215.14"]


def test_injections_belong_to_their_exact_host() -> None:
    policy = rules.Policy.from_message(
        {
            "mode": "allowlist",
            "allow": [{"pattern": "*.example.test", "ports": []}],
            "inject": [{"host": "API.example.test", "header": "Authorization", "value": "Bearer s"}],
        }
    )

    assert [i.header for i in policy.injections("api.example.test")] == ["Authorization"]
    assert policy.injections("other.example.test") == []


def test_a_networked_sandbox_gets_the_proxy_the_bundle_and_placeholders_only() -> None:
    secret = SecretInjection("key", "api.example.test", "X-Key", "{secret}", b"sealed", "PLACEHOLDER", "KEY")
    environment = sandbox_environment(NetworkPolicy("allowlist", (HostRule("api.example.test"),), (secret,)))

    assert environment["HTTPS_PROXY"] == environment["http_proxy"] == "http://127.0.0.1:3128"
    assert environment["SSL_CERT_FILE"] == environment["NODE_EXTRA_CA_CERTS"] == "/run/loopd/ca-bundle.pem"
    assert environment["KEY"] == "PLACEHOLDER"
    assert "sealed" not in repr(environment)


def test_a_sandbox_is_made_anew_only_when_its_profile_changes_more_than_the_budget() -> None:
    closed = SandboxProfile("env", 1)
    networked = SandboxProfile("env", 1, network=NetworkPolicy("allowlist", byte_budget=100))

    assert shape_of(None) is None
    assert shape_of(closed) is None  # the worker's default: warm sandboxes serve it
    assert shape_of(networked) == shape_of(
        SandboxProfile("env", 1, network=NetworkPolicy("allowlist", byte_budget=5))
    )
    assert shape_of(SandboxProfile("env", 1, cpus=0.5)) is not None


def test_a_profile_shapes_the_sandbox_within_the_workers_limits() -> None:
    spec = SandboxSpec(
        image="loopd-sandbox:latest", user="64000:64000", memory="512m", cpus=1.0, pids_limit=256
    )

    asked = spec.within(SandboxProfile("env", 1, image="tools:1", cpus=4.0, memory_bytes=2**20, pids=1000))

    assert (asked.image, asked.cpus, asked.memory, asked.pids_limit) == ("tools:1", 1.0, str(2**20), 256)
    assert spec.within(None) is spec


def test_recorded_results_keep_their_egress_decisions() -> None:
    decision = EgressDecision(True, "api.example.test", 443, bytes_sent=10, bytes_received=20, at=1.5)
    result = ExecuteResult(True, "", 0, None, None, False, 1, "sandbox", False, egress=(decision,))

    assert decode(encode(result)) == result
