"""A cluster whose model is a local server speaking the OpenAI wire format, with helpers to drive runs,
read their logs and the model's own request log, and find the process that holds a run."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from harness.cluster import Cluster
from harness.diagnosis import report
from harness.model_server import FakeModelServer
from harness.processes import LoopdProcess
from harness.servers import RedisServer
from harness.waiting import eventually_sync
from services.local.postgres import EmbeddedPostgres

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}
T = TypeVar("T")


@dataclass
class ModelCluster:
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
            httpx.Client(
                base_url=self.cluster.url, timeout=httpx.Timeout(timeout), headers=self.cluster.headers
            ) as client,
            connect_sse(client, "GET", f"/v1/runs/{run_id}/events/stream") as source,
        ):
            for message in source.iter_sse():
                if not message.data:
                    continue  # a keep-alive ping
                event = json.loads(message.data)
                if predicate(event):
                    return dict(event)
                if event["type"] in TERMINAL or time.monotonic() > deadline:
                    break
        raise AssertionError(f"no matching event for run {run_id}")

    def until(
        self, check: Callable[[], T | None], run_ids: list[str], *, timeout: float, interval: float = 0.05
    ) -> T:
        """Wait until `check` returns something truthy, and return it; past `timeout`, fail with the
        report on `run_ids`."""
        try:
            return eventually_sync(check, timeout=timeout, interval=interval)
        except AssertionError as error:
            raise AssertionError(f"{error.__cause__ or error}\n{self.report(run_ids)}") from None

    def report(self, run_ids: list[str]) -> str:
        """Why runs did not complete: where each one stands (row, lease, last events, wake-ups), what
        the brains' tasks wait on, and the log tail of every process."""
        return report(self.cluster.database_url, self.redis.url, self.cluster.processes, run_ids)

    def lease_owner(self, run_id: str) -> LoopdProcess | None:
        return self.cluster.lease_owner(run_id)

    def hands_holding(self, run_id: str) -> LoopdProcess | None:
        holder = next((w.hands_id for w in self.cluster.registry() if run_id in w.sandboxes), None)
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
    return datetime.fromisoformat(iso).timestamp()


def assert_gapless(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
