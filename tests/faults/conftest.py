"""A cluster for fault tests: its own PostgreSQL and Redis (so they can be restarted), a local model
server that speaks the OpenAI wire format and logs every request, and helpers to find and kill the
process that holds a run."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from httpx_sse import connect_sse

from services.local.postgres import EmbeddedPostgres
from tests.fakes.model_server import FakeModelServer
from tests.support.cluster import Cluster, running_cluster
from tests.support.processes import LoopdProcess
from tests.support.servers import RedisServer

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}


@dataclass
class FaultCluster:
    cluster: Cluster
    postgres: EmbeddedPostgres
    redis: RedisServer
    model: FakeModelServer

    def agent(self, name: str = "faulty", **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "model": "openai/fake-model",
            "tools": ["bash", "read_file", "write_file", "edit_file", "list_files"],
            **extra,
        }

    def use_script(self, script: list[dict[str, Any]]) -> None:
        """Every run's k-th model call gets the k-th reply (the request log starts afresh)."""
        self.model.state.reset(script)

    def start_run(self, **agent: Any) -> str:
        with self.cluster.client() as api:
            created = api.post(
                "/v1/runs", json={"agent": self.agent(**agent), "input": f"task {secrets.token_hex(6)}"}
            )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def events(self, run_id: str) -> list[dict[str, Any]]:
        with self.cluster.client() as api:
            return list(api.get(f"/v1/runs/{run_id}/events?limit=5000").json()["data"])

    def run(self, run_id: str) -> dict[str, Any]:
        with self.cluster.client() as api:
            return dict(api.get(f"/v1/runs/{run_id}").json())

    def wait_for_event(self, run_id: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """Follow the live stream (live-only deltas included) until an event matches."""
        deadline = time.monotonic() + timeout
        with (
            httpx.Client(base_url=self.cluster.url, timeout=httpx.Timeout(timeout)) as client,
            connect_sse(client, "GET", f"/v1/runs/{run_id}/events/stream") as source,
        ):
            for message in source.iter_sse():
                event = json.loads(message.data)
                if predicate(event):
                    return dict(event)
                if event["type"] in TERMINAL or time.monotonic() > deadline:
                    break
        raise AssertionError(f"no matching event for run {run_id}")

    def lease_owner(self, run_id: str) -> LoopdProcess | None:
        dsn = self.postgres.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT owner FROM run_leases WHERE run_id = %s AND expires_at > now()", (run_id,)
            ).fetchone()
        if row is None:
            return None
        return next((p for p in self.cluster.brains() if p.env.get("LOOPD_BRAIN_ID") == row[0]), None)

    def hands_holding(self, run_id: str) -> LoopdProcess | None:
        with self.cluster.client() as api:
            workers = api.get("/v1/hands").json()["data"]
        holder = next((w["hands_id"] for w in workers if run_id in w["sandboxes"]), None)
        return next((p for p in self.cluster.hands() if p.env.get("LOOPD_HANDS_ID") == holder), None)

    def model_requests_for(self, run_id: str) -> list[tuple[int, float]]:
        """(turn, received_at) of every model request this run made; turn = assistant messages sent."""
        user_input = self.events(run_id)[0]["data"]["input"]
        found = []
        for request in self.model.requests:
            messages = (request.body or {}).get("messages") or []
            first_user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
            if first_user == user_input:
                found.append((sum(1 for m in messages if m.get("role") == "assistant"), request.received_at))
        return found

    def assert_no_committed_model_call_repeated(self, run_id: str) -> None:
        committed_at = [_epoch(e["at"]) for e in self.events(run_id) if e["type"] == "model.response"]
        for turn, received_at in self.model_requests_for(run_id):
            if turn < len(committed_at):
                assert received_at <= committed_at[turn], (
                    f"turn {turn} of {run_id} was asked again after its commit"
                )


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def assert_gapless(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    pg_root = Path(tempfile.mkdtemp(prefix="loopd-faults-pg-"))
    pg_root.chmod(0o755)
    postgres = EmbeddedPostgres(pg_root / "data")
    postgres.start()
    redis = RedisServer()
    redis.start()
    model = FakeModelServer(by_turn=True)
    model.start()
    root = tmp_path_factory.mktemp("faults")
    try:
        with running_cluster(
            root,
            database_url=postgres.url,
            bus_url=redis.url,
            LOOPD_OPENAI_BASE_URL=model.openai_base_url,
            LOOPD_OPENAI_API_KEY="test-key",
            LOOPD_LEASE_SECONDS="3",
            LOOPD_SWEEP_INTERVAL_SECONDS="1",
        ) as cluster:
            yield FaultCluster(cluster, postgres, redis, model)
    finally:
        model.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
