"""Tenant quotas end to end, on a deployment of a gateway, two brains and a hands worker as separate
processes sharing PostgreSQL and Redis: with max_running_runs=2, five started runs all complete, never
more than two running at once though both brains take them, and another tenant's runs are not held
up; with max_sandboxes=1, a tenant's runs take turns with the one sandbox, and all complete."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from harness.cluster import Cluster, running_cluster
from harness.servers import RedisServer
from harness.spans import most_at_once, running_spans
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres

pytestmark = pytest.mark.docker

THINKING = {"name": "thinking", "model": "scripted", "script": [{"sleep": 0.5, "text": "done"}]}


@pytest.fixture(scope="module")
def brains(
    postgres: EmbeddedPostgres, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("quotas")
    with running_cluster(
        root, database_url=postgres.url, bus_url=redis.url, brains=2, hands=1, LOOPD_HANDS_WARM_POOL="0"
    ) as cluster:
        yield cluster


def start(api: httpx.Client, headers: dict[str, str] | None = None, agent: dict[str, Any] = THINKING) -> str:
    created = api.post("/v1/runs", json={"agent": agent, "input": "go"}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def completed(api: httpx.Client, run_ids: list[str], headers: dict[str, str] | None = None) -> bool:
    return all(api.get(f"/v1/runs/{r}", headers=headers).json()["status"] == "completed" for r in run_ids)


def spans(api: httpx.Client, run_ids: list[str], headers: dict[str, str] | None = None) -> list[Any]:
    found = []
    for run_id in run_ids:
        events = api.get(f"/v1/runs/{run_id}/events", params={"limit": 1000}, headers=headers).json()["data"]
        found += running_spans(events)
    return found


def new_tenant(api: httpx.Client, **quotas: int) -> dict[str, str]:
    """The headers of an admin of a new tenant with these quotas."""
    created = api.post("/v1/tenants", json={"id": f"t-{secrets.token_hex(4)}", "quotas": quotas})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['admin_key']['key']}"}


def lease_owners(cluster: Cluster, run_ids: list[str]) -> set[str]:
    """The brains that last held these runs' leases (a released lease keeps its owner)."""
    dsn = cluster.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT owner FROM run_leases WHERE run_id = ANY(%s)", (run_ids,)).fetchall()
    return {row[0] for row in rows}


def test_two_brains_keep_a_tenant_to_its_running_runs_and_other_tenants_run_freely(brains: Cluster) -> None:
    with brains.client() as api:
        root = brains.processes.base_env["LOOPD_TENANT"]
        patched = api.patch(f"/v1/tenants/{root}", json={"quotas": {"max_running_runs": 2}})
        assert patched.status_code == 200, patched.text
        others = new_tenant(api)

        held = [start(api) for _ in range(5)]
        free = [start(api, others) for _ in range(3)]

        eventually_sync(lambda: completed(api, free, others), timeout=60, interval=0.2)
        eventually_sync(lambda: completed(api, held), timeout=60, interval=0.2)
        assert most_at_once(spans(api, held)) == 2
        assert most_at_once(spans(api, free, others)) == 3
    brain_ids = {process.env["LOOPD_BRAIN_ID"] for process in brains.brains()}
    assert lease_owners(brains, held) == brain_ids


def calls_running(api: httpx.Client, run_ids: list[str], headers: dict[str, str]) -> list[Any]:
    """When each run's tool calls ran on hands: the `duration_ms` before their result was committed."""
    found = []
    for run_id in run_ids:
        events = api.get(f"/v1/runs/{run_id}/events", params={"limit": 1000}, headers=headers).json()["data"]
        for event in events:
            if event["type"] == "tool.result":
                ended = datetime.fromisoformat(event["at"])
                found.append((ended - timedelta(milliseconds=event["data"]["duration_ms"]), ended))
    return found


def test_a_tenants_runs_take_turns_with_its_one_sandbox(brains: Cluster) -> None:
    working = {
        "name": "working",
        "model": "scripted",
        "script": [{"tool_calls": [{"name": "bash", "input": {"command": "sleep 1"}}]}, {"text": "done"}],
    }
    with brains.client() as api:
        tenant = new_tenant(api, max_sandboxes=1)

        run_ids = [start(api, tenant, working) for _ in range(3)]

        eventually_sync(lambda: completed(api, run_ids, tenant), timeout=120, interval=0.2)
        assert most_at_once(calls_running(api, run_ids, tenant)) == 1
        for run_id in run_ids:
            events = api.get(f"/v1/runs/{run_id}/events", headers=tenant).json()["data"]
            assert [e["data"]["ok"] for e in events if e["type"] == "tool.result"] == [True]
