"""A run in an environment, in process: each call carries the sandbox profile of the run's environment
version (sealed secrets, placeholders, what is left of its byte budget), and the egress decisions a
result brings are committed with that result."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path

from services.core.secret_box import SecretBox
from services.hands.contract import Hands
from services.hands.contract.api import (
    ExecuteRequest,
    ExecuteResult,
    HandsStatus,
    OutputChunk,
    ReleaseRequest,
)
from services.hands.contract.profile import EgressDecision, HostRule
from tests.unit.brain.loop import Loop, call, scripted

DECISIONS = (
    EgressDecision(True, "api.example.test", 443, "", bytes_sent=100, bytes_received=200, at=1_800_000_000.5),
    EgressDecision(False, "elsewhere.example.org", 443, "not_allowed", at=1_800_000_001.0),
)


class Egressing:
    """A worker's Hands that notes each request and adds DECISIONS to the first call's result, as a
    worker's egress proxy would report them."""

    def __init__(self, hands: Hands, requests: list[ExecuteRequest]) -> None:
        self._hands, self._requests = hands, requests

    async def execute(self, request: ExecuteRequest) -> AsyncGenerator[OutputChunk | ExecuteResult, None]:
        self._requests.append(request)
        async with aclosing(self._hands.execute(request)) as items:
            async for item in items:
                if isinstance(item, ExecuteResult) and len(self._requests) == 1:
                    item = replace(item, egress=DECISIONS)
                yield item

    async def release(self, request: ReleaseRequest) -> None:
        await self._hands.release(request)

    async def status(self) -> HandsStatus:
        return await self._hands.status()

    async def aclose(self) -> None:
        await self._hands.aclose()


def noting(
    connect: Callable[[str], Awaitable[Hands]], requests: list[ExecuteRequest]
) -> Callable[[str], Awaitable[Hands]]:
    async def connected(address: str) -> Hands:
        return Egressing(await connect(address), requests)

    return connected


async def test_calls_carry_the_environment_and_egress_decisions_are_committed(
    database_url: str, tmp_path: Path
) -> None:
    requests: list[ExecuteRequest] = []
    loop = Loop(
        database_url,
        tmp_path,
        data_dir=tmp_path / "data",
        egress_package_registries={"mirror": ["pkgs.example.test"]},
    )
    loop.connect = noting(loop.connect, requests)  # type: ignore[method-assign,assignment]
    async with loop:
        value = f"token-{secrets.token_hex(8)}"
        assert (await loop.api.put("/v1/secrets/api-token", json={"value": value})).status_code == 200
        network = {
            "policy": "allowlist",
            "hosts": [{"pattern": "api.example.test", "ports": [443]}],
            "package_registries": ["mirror"],
            "byte_budget": 1000,
        }
        use = {
            "secret": "api-token",
            "host": "api.example.test",
            "header": "Authorization",
            "env_name": "API_TOKEN",
        }
        body = {
            "limits": {"cpus": 1, "memory": "256MiB", "pids": 128},
            "workspace_size": "64MiB",
            "network": network,
            "secrets": [use],
        }
        made = await loop.api.post("/v1/environments", json={"name": "net", **body})
        assert made.status_code == 201, made.text
        environment_id = made.json()["id"]
        agent = scripted(
            {"tool_calls": [call("bash", command="echo one")]},
            {"tool_calls": [call("bash", command="echo two")]},
            {"text": "done"},
        )
        run_id = await loop.start(agent, environment={"id": environment_id})
        # A new version after the start changes nothing for the run.
        await loop.api.post(f"/v1/environments/{environment_id}/versions", json={})

        await loop.until(run_id, "completed")
        events = await loop.events(run_id)

    first, second = requests
    profile = first.profile
    assert profile is not None and (profile.environment_id, profile.environment_version) == (
        environment_id,
        1,
    )
    assert (profile.cpus, profile.memory_bytes, profile.pids) == (1.0, 256 * 1024**2, 128)
    assert first.workspace_bytes == 64 * 1024**2
    network_policy = profile.network
    assert network_policy.mode == "allowlist"
    assert network_policy.allow == (HostRule("api.example.test", (443,)), HostRule("pkgs.example.test"))
    [injection] = network_policy.inject
    assert (injection.host, injection.header, injection.value_template) == (
        "api.example.test",
        "Authorization",
        "Bearer {secret}",
    )
    assert injection.placeholder == "loopd-secret-placeholder-api-token" and injection.env_name == "API_TOKEN"
    assert SecretBox.from_settings(loop.settings).open(injection.sealed_value) == value
    assert network_policy.byte_budget == 1000
    assert second.profile is not None and second.profile.network.byte_budget == 1000 - 300

    types = [event["type"] for event in events]
    first_result = types.index("tool.result")
    assert types[first_result - 2 : first_result + 1] == ["egress.allowed", "egress.denied", "tool.result"]
    assert types.count("egress.allowed") == 1 and types.count("egress.denied") == 1
    allowed, denied = (event["data"] for event in events[first_result - 2 : first_result])
    call_id = events[first_result]["data"]["call_id"]
    assert allowed == {
        "call_id": call_id,
        "host": "api.example.test",
        "port": 443,
        "bytes_sent": 100,
        "bytes_received": 200,
        "at": "2027-01-15T08:00:00.500000+00:00",
    }
    assert denied["reason"] == "not_allowed" and denied["host"] == "elsewhere.example.org"
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(events) + 1))
    assert value not in str(events) and injection.sealed_value.decode() not in str(events)


async def test_a_run_without_an_environment_asks_for_the_default_sandbox(
    database_url: str, tmp_path: Path
) -> None:
    requests: list[ExecuteRequest] = []
    loop = Loop(database_url, tmp_path)
    loop.connect = noting(loop.connect, requests)  # type: ignore[method-assign,assignment]
    async with loop:
        run_id = await loop.start(
            scripted({"tool_calls": [call("bash", command="echo hi")]}, {"text": "done"})
        )
        await loop.until(run_id, "completed")
    assert [request.profile for request in requests] == [None]
