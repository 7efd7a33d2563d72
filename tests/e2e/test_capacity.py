"""Fair capacity end to end, on a deployment whose tenant may run a tool call for at most 30 s and whose
one hands worker gives a run and its sub-agents at most half of its 4 slots: a greedy agent spec
cannot lift the ceiling, a run's wall time cuts the call that outlives it, a run that ends or waits
leaves nothing running, sub-agents do not starve another run, and an unreadable path is a note in
the result, not a failed run."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from harness.cluster import Cluster, running_cluster
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.core.settings import Settings
from services.local.postgres import EmbeddedPostgres
from tests.e2e.test_spine import follow
from tests.e2e.test_storable import bash, results

pytestmark = pytest.mark.docker

CEILING = 30


@pytest.fixture(scope="module")
def capped(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("capped")
    settings = {
        "LOOPD_CEILINGS": json.dumps({"tool_timeout_seconds": CEILING}),
        "LOOPD_HANDS_SLOTS": "4",
        "LOOPD_HANDS_RUN_SHARE": "0.5",
    }
    with running_cluster(
        root, database_url=postgres.url, bus_url=redis.url, brains=1, hands=1, **settings
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=Settings().sandbox_docker_host)
    yield client
    client.close()


def agent(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": f"capacity-{secrets.token_hex(3)}", "model": "scripted", "script": list(turns), **fields}


def start(cluster: Cluster, spec: dict[str, Any]) -> str:
    with cluster.client() as api:
        created = api.post("/v1/runs", json={"agent": spec, "input": "go"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def run_of(cluster: Cluster, run_id: str) -> dict[str, Any]:
    with cluster.client() as api:
        return dict(api.get(f"/v1/runs/{run_id}").json())


def events_of(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    with cluster.client() as api:
        return list(api.get(f"/v1/runs/{run_id}/events").json()["data"])


def containers_of(cluster: Cluster, engine: docker.APIClient, run_id: str) -> list[dict[str, Any]]:
    """The containers on the engine of every sandbox the run's log names."""
    named = [
        e["data"]["sandbox_id"] for e in events_of(cluster, run_id) if e["type"] == "sandbox.provisioned"
    ]
    assert named, f"run {run_id} never had a sandbox"
    return [c for sandbox_id in named for c in engine.containers(all=True, filters={"id": sandbox_id})]


def holding_sandboxes(cluster: Cluster, run_ids: list[str]) -> int:
    """How many of these runs hold a sandbox, as the hands registry lists them."""
    held = {run_id for info in cluster.registry() for run_id in info.sandboxes}
    return len(held & set(run_ids))


def until(check: Any, timeout: float = 60) -> Any:
    return eventually_sync(check, timeout=timeout, interval=0.2)


def test_a_greedy_agent_spec_cannot_lift_the_tool_timeout_past_the_ceiling(capped: Cluster) -> None:
    greedy = {"name": "bash", "input": {"command": "sleep 600", "timeout": 86_400}}
    spec = agent({"tool_calls": [greedy]}, {"text": "cut"}, limits={"tool_timeout_seconds": 86_400})
    started = time.monotonic()

    events = follow(capped, start(capped, spec), timeout=CEILING + 60)

    [result] = results(events)
    assert result["error"] == "timeout"
    assert (
        result["error_message"] == f"the call ran longer than {CEILING}s; every process it started was killed"
    )
    assert events[-1]["type"] == "run.completed"
    assert time.monotonic() - started < CEILING + 45


def test_the_runs_wall_time_cuts_the_call_that_outlives_it(capped: Cluster) -> None:
    spec = agent(bash("sleep 600"), {"text": "never"}, limits={"max_wall_time_seconds": 8})
    run_id = start(capped, spec)

    run = until(lambda: (r := run_of(capped, run_id))["status"] == "waiting" and r)

    events = events_of(capped, run_id)
    with capped.client() as api:
        api.post(f"/v1/runs/{run_id}/cancel")
    [result] = results(events)
    assert result["error"] == "timeout"
    assert "the run's wall time ran out during the call" in result["error_message"]
    assert run["waiting_for"]["type"] == "budget" and run["waiting_for"]["limit"] == "max_wall_time"


def test_nothing_a_run_started_keeps_running_once_it_ends_or_waits(
    capped: Cluster, engine: docker.APIClient
) -> None:
    background = bash("sleep 86399 > /dev/null 2>&1 & echo started")
    ended = start(capped, agent(background, {"text": "done"}))
    question = {"name": "ask_user", "input": {"question": "carry on?"}}
    waiting = start(
        capped, agent(background, {"tool_calls": [question]}, {"text": "done"}, tools=["bash", "ask_user"])
    )

    assert follow(capped, ended)[-1]["type"] == "run.completed"
    until(lambda: run_of(capped, waiting)["status"] == "waiting")

    until(lambda: containers_of(capped, engine, ended) == containers_of(capped, engine, waiting) == [])
    with capped.client() as api:
        api.post(f"/v1/runs/{waiting}/cancel")


def test_sub_agents_hold_their_share_of_the_slots_and_another_run_is_not_starved(capped: Cluster) -> None:
    child = agent(bash("sleep 25; echo slept"), {"text": "child done"})
    spawns = [{"name": "spawn_agent", "input": {"agent": child, "input": f"child {n}"}} for n in range(4)]
    parent = start(capped, agent({"tool_calls": spawns}, {"text": "parent done"}, tools=["spawn_agent"]))

    def children() -> list[str]:
        return [e["data"]["child_run_id"] for e in events_of(capped, parent) if e["type"] == "child.started"]

    kids = until(lambda: len(found := children()) == 4 and found)
    until(lambda: holding_sandboxes(capped, kids) == 2)
    started = time.monotonic()
    other = start(capped, agent(bash("echo not starved"), {"text": "done"}))

    events = follow(capped, other)
    elapsed = time.monotonic() - started

    assert results(events)[0]["output"] == "not starved\n"
    assert elapsed < 20, f"the other run took {elapsed:.1f}s"
    assert run_of(capped, parent)["status"] == "waiting"
    assert holding_sandboxes(capped, kids) == 2
    with capped.client() as api:
        api.post(f"/v1/runs/{parent}/cancel")


def test_a_path_too_long_for_the_snapshot_is_a_note_not_a_failed_run(capped: Cluster) -> None:
    deep = 'd=$(printf "%0250d" 0); for i in $(seq 17); do mkdir $d && cd $d; done; echo deep > f; echo made'
    events = follow(capped, start(capped, agent(bash(deep), bash("echo next"), {"text": "went on"})))

    made, following = results(events)
    assert made["ok"] and "File name too long" in made["output"]
    assert "the workspace snapshot left out 1 entry" in made["output"]
    assert following["ok"] and following["output"] == "next\n"
    assert events[-1]["type"] == "run.completed"
