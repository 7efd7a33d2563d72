"""docker-compose.yml brought up for real, with images built offline: the demo agent runs through the
gateway, runs spread over three hands containers, and one killed mid-run costs no run.

The hands are containers that drive the host's engine through its socket, so their sandboxes'
bind mounts must be host paths; the stack is torn down at the end and must leave nothing behind.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.compose import ComposeStack, compose_stack
from harness.model_cluster import assert_gapless
from harness.waiting import eventually_sync

# The first test pays for the images: a cold build (the base bootstrapped from Debian) takes minutes.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
# Long enough that every run is still in it when a worker is killed, after all have started.
SLEEP = 20
APPEND_AND_READ: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "input": {"path": "log.txt", "content": "first\n"}}]},
    {
        "tool_calls": [
            {"name": "bash", "input": {"command": f"echo started; sleep {SLEEP}; echo line >> log.txt"}}
        ]
    },
    {"tool_calls": [{"name": "read_file", "input": {"path": "log.txt"}}]},
    {"text": "finished"},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with compose_stack(tmp_path_factory.mktemp("compose")) as running:
        yield running
    # Brought down: nothing of it is left on the engine, while other stacks there were never touched.
    assert running.leftovers() == []


def start(stack: ComposeStack, agent: dict[str, Any]) -> str:
    with stack.client() as api:
        created = api.post("/v1/runs", json={"agent": agent, "input": f"task {secrets.token_hex(4)}"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def events(stack: ComposeStack, run_id: str) -> list[dict[str, Any]]:
    with stack.client() as api:
        return list(api.get(f"/v1/runs/{run_id}/events?limit=5000").json()["data"])


def finished(stack: ComposeStack, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Each run once it has ended; one request a second, well inside the gateway's read limit."""

    def ended() -> dict[str, dict[str, Any]] | None:
        with stack.client() as api:
            runs = {run_id: api.get(f"/v1/runs/{run_id}").json() for run_id in run_ids}
        done = all(run.get("status") in ("completed", "failed", "cancelled") for run in runs.values())
        return runs if done else None

    try:
        return eventually_sync(ended, timeout=timeout, interval=1.0)
    except AssertionError as error:
        raise AssertionError(f"runs did not end: {error}\n{stack.logs()}") from None


def holds(stack: ComposeStack, sandboxes: int) -> bool:
    """Whether the pool, as the brains read it, holds this many sandboxes for runs."""
    with stack.client() as api:
        listed = api.get("/v1/hands")
    return listed.status_code == 200 and sum(w["sandbox_count"] for w in listed.json()["data"]) == sandboxes


def provisioned_on(stack: ComposeStack, run_id: str) -> str:
    """The hands worker the run's sandbox was last made on, as its log says."""
    return str(
        [e for e in events(stack, run_id) if e["type"] == "sandbox.provisioned"][-1]["data"]["hands_id"]
    )


def test_the_demo_agent_runs_through_the_gateway(stack: ComposeStack) -> None:
    demo = yaml.safe_load((ROOT / "examples" / "agents" / "demo.yaml").read_text())
    run_id = start(stack, demo)

    run = finished(stack, [run_id], timeout=120)[run_id]

    assert run["status"] == "completed", run
    assert "sentence_count" in run["result"]
    logged = events(stack, run_id)
    assert_gapless(logged)
    results = [e["data"] for e in logged if e["type"] == "tool.result"]
    # The module's tests ran in a sandbox and passed.
    assert any("Ran 4 tests" in str(r["output"]) and "OK" in str(r["output"]) for r in results), results


def test_runs_spread_over_three_hands_and_outlive_one_killed(stack: ComposeStack) -> None:
    stack.compose("up", "--detach", "--no-build", "--no-recreate", "--scale", "hands=3")
    stack.wait_ready(hands=3)
    agent = {"name": "appender", "model": "scripted", "tools": ["bash", "read_file", "write_file"]}
    run_ids: list[str] = []
    for count in range(1, 7):
        run_ids.append(start(stack, {**agent, "script": APPEND_AND_READ}))
        # Each run is placed once the previous one shows in the registry, as brains read it.
        eventually_sync(functools.partial(holds, stack, count), timeout=60, interval=0.25)

    holders = {run_id: provisioned_on(stack, run_id) for run_id in run_ids}
    assert len(set(holders.values())) == 3, holders
    victim = holders[run_ids[-1]]
    [container] = [c for c in stack.containers("hands") if victim == f"hands-{c.attrs['Config']['Hostname']}"]
    container.kill()

    runs = finished(stack, run_ids, timeout=300)

    assert [run["status"] for run in runs.values()] == ["completed"] * len(run_ids), runs
    moved = [run_id for run_id in run_ids if holders[run_id] == victim]
    for run_id in run_ids:
        logged = events(stack, run_id)
        assert_gapless(logged)
        results = [e["data"] for e in logged if e["type"] == "tool.result"]
        assert results[-1]["output"] == "first\nline\n", (run_id, results)
        if run_id in moved:
            assert "sandbox.lost" in [e["type"] for e in logged], run_id
