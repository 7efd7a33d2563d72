"""The gateway keeps its OpenAPI contracts under generated input: schemathesis sends a bounded number of
valid and invalid requests to every operation of a real gateway process (on the test PostgreSQL and
Redis), and none gets a 5xx or a status its operation does not document.

Both documents are walked: the native API's (/openapi.json) and the Managed Agents view's
(/anthropic/openapi.json), whose answers must also match the response schemas they document, as the
official SDK's types expect them; the view is called with the SDK's other key header, x-api-key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from harness.processes import HIGH_RATE_LIMITS, ProcessGroup
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.core.keys import mint
from services.core.settings import Settings
from services.gateway.anthropic.app import PREFIX as ANTHROPIC_PREFIX
from services.gateway.anthropic.app import create_anthropic_app
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


def _cases(document: dict[str, Any]) -> list[tuple[Operation, GenerationMode]]:
    """Every operation with valid input, and those that take input with invalid input too."""
    schema = schemathesis.openapi.from_dict(document)
    cases = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid document fails here
        cases.append((operation, GenerationMode.POSITIVE))
        if operation.body or any(True for _ in operation.iter_parameters()):
            cases.append((operation, GenerationMode.NEGATIVE))
    return cases


def _label(value: Any) -> str:
    return value.label if isinstance(value, APIOperation) else str(value)


# The contracts are the apps' own OpenAPI documents; building the apps touches no database.
@pytest.mark.parametrize(("operation", "mode"), _cases(create_app(Settings()).openapi()), ids=_label)
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


@pytest.fixture(scope="module")
def managed_objects(gateway: tuple[str, str]) -> dict[str, str]:
    """An agent, an environment and a session with a message, whose ids the reads are given, so that
    their answers are real objects held to the documented shapes, not only 404s."""
    gateway_url, admin_key = gateway
    with httpx.Client(base_url=f"{gateway_url}{ANTHROPIC_PREFIX}", headers={"x-api-key": admin_key}) as api:

        def made(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = api.post(path, json=body)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        script = {"script": [{"text": "done"}]}
        agent = made("/v1/agents", {"name": "contract", "model": "scripted", "x_loopd": script})
        environment = made("/v1/environments", {"name": "contract"})
        session = made("/v1/sessions", {"agent": agent["id"], "environment_id": environment["id"]})
        message = {"type": "user.message", "content": [{"type": "text", "text": "hello"}]}
        made(f"/v1/sessions/{session['id']}/events", {"events": [message]})
    return {
        "agent_id": agent["id"],
        "environment_id": environment["id"],
        "session_id": session["id"],
        "session_a": session["id"],
        "session_b": session["id"],
    }


@pytest.mark.parametrize(("operation", "mode"), _cases(create_anthropic_app().openapi()), ids=_label)
def test_every_managed_agents_operation_answers_in_its_documented_shapes(
    gateway: tuple[str, str], managed_objects: dict[str, str], operation: Operation, mode: GenerationMode
) -> None:
    gateway_url, admin_key = gateway
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    # Reads of valid input find the objects made for them (a stream would wait for events, so not it).
    reads = mode == GenerationMode.POSITIVE and operation.method.upper() == "GET"
    seeded = reads and not operation.path.endswith("/stream")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: schemathesis.Case[Any]) -> None:
        # A path segment of dots is resolved by the client before it is sent, and may leave the prefix:
        # such a request reaches another API, whose answers are not this document's to describe.
        assume(not any(str(value).strip(".") == "" for value in (case.path_parameters or {}).values()))
        if seeded and case.path_parameters:
            case.path_parameters = {name: managed_objects[name] for name in case.path_parameters}
        headers = {"x-api-key": admin_key}
        case.call_and_validate(
            base_url=f"{gateway_url}{ANTHROPIC_PREFIX}", checks=checks, timeout=10, headers=headers
        )

    answers()
