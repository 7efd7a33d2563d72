"""The spine, end to end: an agent launched over REST is stepped by brains, its tools run in Docker
sandboxes on hands over gRPC, the SSE stream shows it live, and its artifacts download intact."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from services.core.settings import Settings
from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.docker

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}

CODING_AGENT = {
    "name": "e2e-coder",
    "model": "scripted",
    "system": "You write files and run commands.",
    "script": [
        {
            "text": "Writing a note.",
            "tool_calls": [
                {"name": "write_file", "input": {"path": "notes/hello.txt", "content": "hello from loopd\n"}},
            ],
        },
        {
            "text": "Checking where I run.",
            "tool_calls": [
                {
                    "name": "bash",
                    "input": {
                        "command": (
                            "cat notes/hello.txt; test -f /.dockerenv && echo in-container; "
                            "echo uid=$(id -u); "
                            "head -c 300000 /dev/urandom > blob.bin; sha256sum blob.bin"
                        )
                    },
                },
            ],
        },
        {"tool_calls": [{"name": "read_file", "input": {"path": "notes/hello.txt"}}]},
        {"text": "All done: wrote notes/hello.txt and blob.bin."},
    ],
}


def follow(deployment: Deployment, run_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Read the SSE stream until the run ends; returns the persisted events in order."""
    seen: list[dict[str, Any]] = []
    with (
        httpx.Client(
            base_url=deployment.url, timeout=httpx.Timeout(timeout), headers=deployment.headers
        ) as client,
        connect_sse(client, "GET", f"/v1/runs/{run_id}/events/stream") as source,
    ):
        for message in source.iter_sse():
            if not message.data:
                continue  # a keep-alive ping on a quiet stream
            event = json.loads(message.data)
            if event.get("seq") is None:
                continue  # a live tool.output delta
            assert message.id == str(event["seq"])
            seen.append(event)
            if event["type"] in TERMINAL:
                return seen
    raise AssertionError(f"stream ended before the run did: {[e['type'] for e in seen]}")


def test_a_scripted_coding_agent_runs_end_to_end(deployment: Deployment) -> None:
    with deployment.client() as api:
        agent_id = f"coder-{secrets.token_hex(3)}"
        assert api.post("/v1/agents", json={**CODING_AGENT, "id": agent_id}).status_code == 201
        created = api.post("/v1/runs", json={"agent_id": agent_id, "input": "write a note"})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        streamed = follow(deployment, run_id)

        run = api.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "completed", (run, deployment.processes.logs())
        assert run["result"] == "All done: wrote notes/hello.txt and blob.bin."
        assert run["usage"]["tool_calls"] == 3

        logged = api.get(f"/v1/runs/{run_id}/events").json()["data"]
        assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
        assert streamed == logged

        types = [e["type"] for e in logged]
        assert types.index("sandbox.provisioned") > types.index("model.response")  # the model came first
        results = [e["data"] for e in logged if e["type"] == "tool.result"]
        assert all(r["ok"] for r in results), results
        bash_output = results[1]["output"]
        assert "hello from loopd" in bash_output  # a file written by one call is read by the next
        sandbox_uid = Settings().sandbox_user.split(":")[0]  # the deployment keeps the default
        assert "in-container" in bash_output and f"uid={sandbox_uid}" in bash_output
        assert results[2]["output"] == "hello from loopd\n"

        artifacts = {a["path"]: a for a in api.get(f"/v1/runs/{run_id}/artifacts").json()["data"]}
        assert set(artifacts) == {"notes/hello.txt", "blob.bin"}
        note = api.get(f"/v1/runs/{run_id}/artifacts/notes/hello.txt")
        assert note.content == b"hello from loopd\n"
        blob = api.get(f"/v1/runs/{run_id}/artifacts/blob.bin").content
        assert len(blob) == 300000
        assert hashlib.sha256(blob).hexdigest() in bash_output  # byte for byte as the sandbox saw it
        assert hashlib.sha256(blob).hexdigest() == artifacts["blob.bin"]["sha256"]


def test_an_unknown_tool_goes_back_to_the_model_as_an_error(deployment: Deployment) -> None:
    agent = {
        "name": "confused",
        "model": "scripted",
        "script": [
            {"tool_calls": [{"name": "teleport", "input": {"to": "mars"}}]},
            {"text": "I could not teleport."},
        ],
    }
    with deployment.client() as api:
        run_id = api.post("/v1/runs", json={"agent": agent, "input": "go"}).json()["id"]
        events = follow(deployment, run_id)
    result = next(e["data"] for e in events if e["type"] == "tool.result")
    assert result["ok"] is False and result["error"] == "unknown_tool"
    assert "teleport" in result["output"]
    assert events[-1]["type"] == "run.completed"
    assert "sandbox.provisioned" not in [e["type"] for e in events]  # no container for a refused call


def test_a_user_message_continues_a_completed_run(deployment: Deployment) -> None:
    agent = {
        "name": "chatty",
        "model": "scripted",
        "script": [{"text": "first answer"}, {"text": "second answer"}],
    }
    with deployment.client() as api:
        run_id = api.post("/v1/runs", json={"agent": agent, "input": "hi"}).json()["id"]
        follow(deployment, run_id)
        assert api.post(f"/v1/runs/{run_id}/messages", json={"content": "and then?"}).status_code == 202

        def second_turn_done() -> bool:
            run: dict[str, Any] = api.get(f"/v1/runs/{run_id}").json()
            return (run["status"], run["result"]) == ("completed", "second answer")

        from harness.waiting import eventually_sync

        eventually_sync(second_turn_done, timeout=60, interval=0.2)


def test_the_hands_pool_is_visible_without_addresses_or_runs(deployment: Deployment) -> None:
    with deployment.client() as api:
        hands = api.get("/v1/hands").json()["data"]
    assert len(hands) == 2
    assert all(h["slots_total"] > 0 and h["state"] == "serving" for h in hands)
    # Where a worker listens and whose sandboxes it holds is for the brains, not for API callers.
    assert not any("address" in h or "sandboxes" in h for h in hands)
    assert all(isinstance(h["sandbox_count"], int) for h in hands)
