"""Environments end to end: a tenant stores a secret and an environment with an allowlist, a run in it
reaches an allowed host through the hands worker's egress proxy with the secret put on its request
at the edge, an unlisted host is refused, and both decisions are in the run's log. The sandbox, the
log and every process's log only ever hold the placeholder. An environment made and updated through
the Managed Agents view (the official `anthropic` SDK) limits its runs the same way, each run by the
version it started in. A run whose environment names an operator's package registry creates a
virtualenv, pip-installs a wheel from that registry's index, and calls an API with a key it never sees.

The world is on loopback only (tests/integration/hands/egress/world.py): an HTTP server on
127.0.0.2, an HTTPS server on 127.0.0.3 with a test CA's certificate, a PEP 503 index on port 443 of
another loopback address (a registry's hosts are reached on 80 and 443), and a DNS server naming them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from harness.cluster import Cluster, running_cluster
from harness.servers import RedisServer
from services.local.postgres import EmbeddedPostgres
from tests.integration.hands.egress.world import (
    Server,
    dns_server,
    make_certs,
    serving,
    serving_on_port,
    simple_index,
    wheel,
)

pytestmark = pytest.mark.docker

NAMES = {"plain.example.test": "127.0.0.2", "api.example.test": "127.0.0.3"}
# The package the registry's index holds, and what importing it shows.
PACKAGE = "tinyprobe"
GREETING = "installed from the registry"
FETCH = r"""
import json, sys, urllib.error, urllib.request
headers = dict(h.split(": ", 1) for h in sys.argv[2:])
try:
    with urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "refused": e.headers.get("X-Loopd-Egress")}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__}))
"""


def fetch(url: str, *headers: str) -> str:
    quoted = " ".join(f'"{h}"' for h in headers)
    return f"python3 -c '{FETCH}' '{url}' {quoted}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certs(
        tmp_path_factory.mktemp("environments-world"), ["api.example.test", "pkgs.example.test"]
    )


@pytest.fixture(scope="module")
def registry(certs: tuple[Path, Path, Path]) -> Iterator[Server]:
    """The index of the operator's registry "python", at pkgs.example.test."""
    _, cert, key = certs
    pages = simple_index([wheel(PACKAGE, "1.0", f"GREETING = {GREETING!r}\n")])
    with serving_on_port(443, (cert, key), pages) as index:
        yield index


@pytest.fixture(scope="module")
def world(certs: tuple[Path, Path, Path], registry: Server) -> Iterator[tuple[Server, Server, str, Path]]:
    ca, cert, key = certs
    names = {**NAMES, "pkgs.example.test": registry.address}
    with (
        serving("127.0.0.2") as plain,
        serving("127.0.0.3", (cert, key)) as secure,
        dns_server(names) as nameserver,
    ):
        yield plain, secure, nameserver, ca


@pytest.fixture(scope="module")
def deployment(
    postgres: EmbeddedPostgres,
    redis: RedisServer,
    world: tuple[Server, Server, str, Path],
    registry: Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    _, _, nameserver, ca = world
    settings = {
        "LOOPD_EGRESS_NAMESERVERS": json.dumps([nameserver]),
        "LOOPD_EGRESS_REACHABLE_NETWORKS": json.dumps(
            ["127.0.0.2/32", "127.0.0.3/32", f"{registry.address}/32"]
        ),
        "LOOPD_EGRESS_PACKAGE_REGISTRIES": json.dumps({"python": ["pkgs.example.test"]}),
        "LOOPD_EGRESS_UPSTREAM_CA": str(ca),
        "LOOPD_HANDS_WARM_POOL": "0",
    }
    root = tmp_path_factory.mktemp("environments")
    with running_cluster(
        root, database_url=postgres.url, bus_url=redis.url, brains=1, hands=1, **settings
    ) as cluster:
        yield cluster


def finished(deployment: Cluster, run_id: str, timeout: float = 120) -> dict[str, Any]:
    with deployment.client() as api:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = api.get(f"/v1/runs/{run_id}").json()
            if run["status"] in ("completed", "failed", "cancelled"):
                return run
            time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish:\n{deployment.processes.logs()}")


def test_a_run_reaches_its_allowlist_with_the_secret_put_on_at_the_edge(
    deployment: Cluster, world: tuple[Server, Server, str, Path]
) -> None:
    plain, secure, _, _ = world
    secret = f"sk-e2e-{secrets.token_hex(16)}"
    with deployment.client() as api:
        assert api.put("/v1/secrets/api-token", json={"value": secret}).status_code == 200
        network = {
            "policy": "allowlist",
            "hosts": [{"pattern": "api.example.test", "ports": [secure.port]}],
            "byte_budget": 1_000_000,
        }
        use = {
            "secret": "api-token",
            "host": "api.example.test",
            "header": "Authorization",
            "env_name": "API_TOKEN",
        }
        made = api.post("/v1/environments", json={"name": "e2e", "network": network, "secrets": [use]})
        assert made.status_code == 201, made.text
        allowed = f"https://api.example.test:{secure.port}/with-secret"
        unlisted = f"http://plain.example.test:{plain.port}/unlisted"
        command = (
            f"{fetch(allowed, 'Authorization: Bearer $API_TOKEN')}; {fetch(unlisted)}; printenv API_TOKEN"
        )
        agent = {
            "name": "egress",
            "model": "scripted",
            "script": [{"tool_calls": [{"name": "bash", "input": {"command": command}}]}, {"text": "done"}],
        }
        created = api.post(
            "/v1/runs", json={"agent": agent, "input": "fetch", "environment": {"id": made.json()["id"]}}
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        run = finished(deployment, run_id)
        assert run["status"] == "completed", (run, deployment.processes.logs())
        events = api.get(f"/v1/runs/{run_id}/events").json()["data"]

    [result] = [e["data"] for e in events if e["type"] == "tool.result"]
    answered, refused, shown = result["output"].splitlines()
    assert json.loads(answered)["status"] == 200, result["output"]
    assert json.loads(refused)["refused"] == "not_allowed"
    assert shown == "loopd-secret-placeholder-api-token"
    assert [seen.headers.get("authorization") for seen in secure.seen if seen.path == "/with-secret"] == [
        f"Bearer {secret}"
    ]
    assert not [seen for seen in plain.seen if seen.path == "/unlisted"]

    decisions = [
        (e["type"], e["data"]["host"], e["data"].get("reason"))
        for e in events
        if e["type"].startswith("egress.")
    ]
    assert decisions == [
        ("egress.allowed", "api.example.test", None),
        ("egress.denied", "plain.example.test", "not_allowed"),
    ]
    types = [e["type"] for e in events]
    assert types.index("egress.denied") + 1 == types.index("tool.result")
    assert secret not in json.dumps(events)
    assert secret not in deployment.processes.logs()
    for process in deployment.processes.processes.values():
        assert secret not in process.log_path.read_text(errors="replace"), process.name


def fetched(deployment: Cluster, run_id: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """What the run's fetches printed, and the proxy's decisions in its log."""
    run = finished(deployment, run_id)
    assert run["status"] == "completed", (run, deployment.processes.logs())
    with deployment.client() as api:
        events = api.get(f"/v1/runs/{run_id}/events").json()["data"]
    [result] = [e["data"] for e in events if e["type"] == "tool.result"]
    decisions = [(e["type"], e["data"]["host"]) for e in events if e["type"].startswith("egress.")]
    return [json.loads(line) for line in result["output"].splitlines()], decisions


def test_a_managed_agents_environment_limits_runs_by_the_version_they_started_in(
    deployment: Cluster, world: tuple[Server, Server, str, Path]
) -> None:
    plain, secure, _, _ = world
    tag = secrets.token_hex(4)
    plain_url = f"http://plain.example.test:{plain.port}/ma-{tag}"
    secure_url = f"https://api.example.test:{secure.port}/ma-{tag}"
    with anthropic.Anthropic(base_url=f"{deployment.url}/anthropic", api_key=deployment.admin_key) as sdk:
        made = sdk.beta.environments.create(
            name=f"ma-{tag}",
            config={
                "type": "cloud",
                "networking": {"type": "limited", "allowed_hosts": [f"plain.example.test:{plain.port}"]},
            },
        )
        agent = {
            "name": "egress",
            "model": "scripted",
            "script": [
                {
                    "tool_calls": [
                        {"name": "bash", "input": {"command": f"{fetch(plain_url)}; {fetch(secure_url)}"}}
                    ]
                },
                {"text": "done"},
            ],
        }
        body = {"agent": agent, "input": "fetch", "environment": {"id": made.id}}
        with deployment.client() as api:
            before = api.post("/v1/runs", json=body).json()
            sdk.beta.environments.update(
                made.id,
                config={
                    "type": "cloud",
                    "networking": {"type": "limited", "allowed_hosts": [f"api.example.test:{secure.port}"]},
                },
            )
            after = api.post("/v1/runs", json=body).json()
    assert (before["environment"]["version"], after["environment"]["version"]) == (1, 2)

    (first_plain, _), first = fetched(deployment, before["id"])
    assert first_plain["status"] == 200
    assert first == [("egress.allowed", "plain.example.test"), ("egress.denied", "api.example.test")]
    (second_plain, second_secure), second = fetched(deployment, after["id"])
    assert second_plain["refused"] == "not_allowed" and second_secure["status"] == 200
    assert second == [("egress.denied", "plain.example.test"), ("egress.allowed", "api.example.test")]
    assert [seen.path for seen in plain.seen if tag in seen.path] == [f"/ma-{tag}"]
    assert [seen.path for seen in secure.seen if tag in seen.path] == [f"/ma-{tag}"]


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_a_run_installs_from_its_registry_and_calls_an_api_whose_key_it_never_sees(
    deployment: Cluster, world: tuple[Server, Server, str, Path], registry: Server, runtime: str
) -> None:
    plain, secure, _, _ = world
    registry.seen.clear()  # the index's log is the module's: this run's requests only
    secret = f"sk-e2e-{secrets.token_hex(16)}"
    tag = secrets.token_hex(4)
    # pip reads no configuration file, asks for no newer pip and keeps no cache: the index it is
    # given is the only place it looks.
    pip = (
        "PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_CACHE_DIR=1 "
        f"/workspace/venv/bin/pip install --index-url https://pkgs.example.test/simple/ {PACKAGE}"
    )
    api_url = f"https://api.example.test:{secure.port}/v1/{tag}"
    call = (
        f"/workspace/venv/bin/python -c 'import {PACKAGE}; print({PACKAGE}.GREETING)'; "
        f"{fetch(api_url, 'Authorization: Bearer $API_KEY')}; "
        f"{fetch(f'http://plain.example.test:{plain.port}/{tag}')}; printenv API_KEY; uname -r"
    )
    script = [
        {"tool_calls": [{"name": "bash", "input": {"command": f"python3 -m venv /workspace/venv && {pip}"}}]},
        {"tool_calls": [{"name": "bash", "input": {"command": call}}]},
        {"text": "done"},
    ]
    with deployment.client() as api:
        assert api.put("/v1/secrets/api-key", json={"value": secret}).status_code == 200
        spec = {
            "name": f"pip-{tag}",
            "runtime": runtime,
            "network": {
                "policy": "allowlist",
                "hosts": [{"pattern": "api.example.test", "ports": [secure.port]}],
                "package_registries": ["python"],
            },
            "secrets": [
                {
                    "secret": "api-key",
                    "host": "api.example.test",
                    "header": "Authorization",
                    "env_name": "API_KEY",
                }
            ],
        }
        made = api.post("/v1/environments", json=spec)
        assert made.status_code == 201, made.text
        agent = {
            "name": "coder",
            "model": "scripted",
            "script": script,
            "environment": {"id": made.json()["id"]},
        }
        created = api.post("/v1/agents", json=agent)
        assert created.status_code == 201, created.text
        started = api.post("/v1/runs", json={"agent_id": created.json()["id"], "input": "install and call"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]

        run = finished(deployment, run_id, timeout=240)
        assert run["status"] == "completed", (run, deployment.processes.logs())
        events = api.get(f"/v1/runs/{run_id}/events").json()["data"]

    installed, called = [e["data"]["output"] for e in events if e["type"] == "tool.result"]
    assert f"Successfully installed {PACKAGE}-1.0" in installed, installed
    imported, answered, refused, shown, release = called.splitlines()
    assert (release == "4.4.0") == (runtime == "runsc")  # gVisor's kernel answers under runsc
    assert imported == GREETING
    assert json.loads(answered)["status"] == 200, called
    assert json.loads(refused)["refused"] == "not_allowed"
    assert shown == "loopd-secret-placeholder-api-key"
    # The index served the project's page and its wheel, nothing else; the API got the real key.
    assert [seen.path for seen in registry.seen] == [
        f"/simple/{PACKAGE}/",
        f"/files/{PACKAGE}-1.0-py3-none-any.whl",
    ]
    assert [seen.headers.get("authorization") for seen in secure.seen if seen.path == f"/v1/{tag}"] == [
        f"Bearer {secret}"
    ]
    assert not [seen for seen in plain.seen if seen.path == f"/{tag}"]
    # Every way out the sandbox tried is in the log: the index, the API, and the refused host.
    decisions = {
        (e["type"], e["data"]["host"], e["data"]["port"]) for e in events if e["type"].startswith("egress.")
    }
    assert decisions == {
        ("egress.allowed", "pkgs.example.test", 443),
        ("egress.allowed", "api.example.test", secure.port),
        ("egress.denied", "plain.example.test", plain.port),
    }
    assert secret not in json.dumps(events)
    for process in deployment.processes.processes.values():
        assert secret not in process.log_path.read_text(errors="replace"), process.name
