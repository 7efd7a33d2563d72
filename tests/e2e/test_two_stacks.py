"""Two local stacks on one Docker engine leave each other's sandboxes alone.

Both use the in-process bus, so neither can see the other's hands in a registry; each must still
tell its own sandboxes from the other's, at start-up (the orphan sweep) and after (the janitor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from harness.servers import server_root
from harness.waiting import eventually
from services.core.settings import Settings
from services.local.postgres import free_port
from services.local.stack import LocalStack

pytestmark = pytest.mark.docker

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def stack_root() -> Iterator[Path]:
    with server_root("loopd-stacks-") as root:
        yield root


@asynccontextmanager
async def local_stack(data_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    values = {"data_dir": data_dir, "port": free_port(), "hands_warm_pool": 0, **settings}
    async with (
        LocalStack(Settings(**values)) as stack,
        httpx.AsyncClient(base_url=stack.url, headers=stack.headers) as api,
    ):
        yield api


async def start_run(api: httpx.AsyncClient, command: str) -> str:
    agent = {
        "model": "scripted",
        "tools": ["bash"],
        "script": [{"tool_calls": [{"name": "bash", "input": {"command": command}}]}, {"text": "done"}],
    }
    created = await api.post("/v1/runs", json={"agent": agent, "input": "go"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def events(api: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    page = await api.get(f"/v1/runs/{run_id}/events", params={"after": 0})
    return list(page.json()["data"])


async def test_a_second_stack_leaves_the_first_ones_call_in_flight_alone(stack_root: Path) -> None:
    async with local_stack(stack_root / "first") as first:
        # Long enough for the second stack's start-up sweep and several rounds of its janitor.
        run_id = await start_run(first, "echo started; sleep 6; echo survived")

        engine = docker.APIClient(base_url=Settings().sandbox_docker_host)

        async def sandbox_of_the_call() -> str | None:
            found = engine.containers(filters={"label": f"loopd.run_id={run_id}"})
            return str(found[0]["Id"]) if found else None

        sandbox_id = await eventually(sandbox_of_the_call, timeout=60)
        async with local_stack(stack_root / "second", hands_orphan_grace_seconds=0.5) as second:
            assert (await second.get("/healthz")).status_code == 200

            async def finished() -> str | None:
                status = (await first.get(f"/v1/runs/{run_id}")).json()["status"]
                return status if status in TERMINAL else None

            assert await eventually(finished, timeout=90) == "completed"

        logged = await events(first, run_id)

    results = [event["data"] for event in logged if event["type"] == "tool.result"]
    assert len(results) == 1
    assert "survived" in results[0]["output"]
    assert not any(event["type"] == "sandbox.lost" for event in logged)
    provisioned = [event["data"]["sandbox_id"] for event in logged if event["type"] == "sandbox.provisioned"]
    assert provisioned == [sandbox_id]
    assert [event["seq"] for event in logged] == list(range(1, len(logged) + 1))


async def test_each_stack_keeps_an_identity_of_its_own(stack_root: Path) -> None:
    async with local_stack(stack_root / "first"), local_stack(stack_root / "second"):
        pass
    first, second = ((stack_root / name / "stack-id").read_text() for name in ("first", "second"))
    assert first != second
    async with local_stack(stack_root / "first"):
        assert (stack_root / "first" / "stack-id").read_text() == first
