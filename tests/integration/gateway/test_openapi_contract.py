"""The gateway keeps its OpenAPI contract under generated input: schemathesis sends a bounded number of
valid and invalid requests to every operation of a real gateway process (on the test PostgreSQL and
Redis), and none gets a 5xx or a status its operation does not document."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from harness.processes import HIGH_RATE_LIMITS, ProcessGroup
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.app import create_app
from services.local.postgres import EmbeddedPostgres, free_port

EXAMPLES_PER_OPERATION = 25
Operation = APIOperation[Any, Any, Any, Any]


@pytest.fixture(scope="module")
def gateway(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    root: Path = tmp_path_factory.mktemp("contract")
    port = free_port()
    admin_key = mint()
    env = {
        "LOOPD_ADMIN_KEY": admin_key,
        "LOOPD_DATABASE_URL": postgres.url,
        "LOOPD_BUS_URL": redis.url,
        "LOOPD_ARTIFACTS_DIR": str(root / "artifacts"),
        "LOOPD_TENANT": f"t-{secrets.token_hex(4)}",
        "LOOPD_PORT": str(port),
        # Some 2,000 generated requests come from the one admin key within minutes.
        **HIGH_RATE_LIMITS,
    }
    group = ProcessGroup(root, env)
    url = f"http://127.0.0.1:{port}"
    try:
        group.start("gateway", "services.gateway")

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually_sync(healthy, timeout=60, interval=0.2)
        yield url, admin_key
    finally:
        group.stop_all()


def _cases() -> list[tuple[Operation, GenerationMode]]:
    """Every operation with valid input, and those that take input with invalid input too."""
    # The contract is the app's own OpenAPI document; building the app touches no database.
    schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
    cases = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid document fails here
        cases.append((operation, GenerationMode.POSITIVE))
        if operation.body or any(True for _ in operation.iter_parameters()):
            cases.append((operation, GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(
    ("operation", "mode"),
    _cases(),
    ids=lambda value: value.label if isinstance(value, APIOperation) else str(value),
)
def test_every_operation_answers_generated_input_with_a_documented_status(
    gateway: tuple[str, str], operation: Operation, mode: GenerationMode
) -> None:
    gateway_url, admin_key = gateway
    # Readiness answers 503 by design here: no hands worker is registered with this gateway.
    checks = (
        [status_code_conformance]
        if operation.path == "/readyz"
        else [not_a_server_error, status_code_conformance]
    )

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: schemathesis.Case[Any]) -> None:
        # A key of the root tenant's admin, so that every operation is reached past authentication.
        headers = {"Authorization": f"Bearer {admin_key}"}
        case.call_and_validate(base_url=gateway_url, checks=checks, timeout=10, headers=headers)

    answers()
